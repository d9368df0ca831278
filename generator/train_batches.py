"""Each training step's batch as a function of (seed, step, process): the data source
for --data, the step's random generator, and the DataLoader that prepares steps ahead.

Because a step's draws depend only on (seed, step, process), a resumed run, and a run
with any number of --workers, takes the same batches as an uninterrupted one.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from generator.data import CocoCacheSource, SyntheticSource
from generator.encoders import load_text_encoder

if TYPE_CHECKING:
    from generator.model import UViTConfig



def step_generator(seed: int, step: int, process: int) -> torch.Generator:
    """The CPU generator every random draw of one training step comes from."""
    state = np.random.SeedSequence([seed, step, process]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def build_source(args: argparse.Namespace, cfg: UViTConfig, text_spec: dict[str, Any]
                 ) -> tuple[SyntheticSource | CocoCacheSource, dict, dict]:
    """(source, codec spec, text spec) for --data."""
    if args.data == "synthetic":
        if cfg.in_chans != 3:
            raise SystemExit(f"--data synthetic is pixel space (3 channels); the model has {cfg.in_chans}")
        text_encoder = load_text_encoder(text_spec, args.clip, args.allow_download)
        source = SyntheticSource(text_encoder, args.synthetic_n, cfg.img_size, args.synthetic_seed)
        return source, {"name": "pixel", "channels": 3}, text_spec
    if args.data.startswith("coco-cache:"):
        cache = CocoCacheSource(args.data.split(":", 1)[1])
        meta = cache.meta
        got = (meta["latent_shape"][0], meta["latent_shape"][1],
               meta["text_encoder"]["text_len"], meta["text_encoder"]["dim"])
        want = (cfg.in_chans, cfg.img_size, cfg.text_len, cfg.text_dim)
        if got != want:
            raise SystemExit(f"cache has (channels, size, text_len, text_dim) = {got}, the model needs {want}")
        return cache, meta["codec"], meta["text_encoder"]
    raise SystemExit(f"--data must be 'synthetic' or 'coco-cache:PATH', got {args.data!r}")


def step_batch(source: SyntheticSource | CocoCacheSource, args: argparse.Namespace, step: int, process: int,
               local_batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """(x0, context, generator) of one process at one step; the generator then draws the
    step's timesteps and noise (diffusion_loss), so the whole step is a function of
    (seed, step, process). Captions are replaced by the empty one with --p-uncond."""
    g = step_generator(args.seed, step, process)
    x0, ctx = source.batch(local_batch, g)
    drop = torch.rand(local_batch, generator=g) < args.p_uncond
    return x0, torch.where(drop[:, None, None], source.empty, ctx), g  # ctx (B, T, D)


class StepBatches(torch.utils.data.Dataset):
    """Item i is step `start + i`'s batch of one process: (x0, context, the state of the
    step's generator after drawing them). The training loop rebuilds the generator from
    that state, so a batch prepared ahead in a DataLoader worker gives the same step,
    bit for bit, as one drawn in the loop (exact resume does not depend on --workers)."""

    def __init__(self, source: SyntheticSource | CocoCacheSource, args: argparse.Namespace, start: int, process: int,
                 local_batch: int) -> None:
        self.source, self.args, self.start = source, args, start
        self.process, self.local_batch = process, local_batch

    def __len__(self) -> int:
        return self.args.steps - self.start

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x0, ctx, g = step_batch(self.source, self.args, self.start + i, self.process, self.local_batch)
        return x0, ctx, g.get_state()


def step_loader(source: SyntheticSource | CocoCacheSource, args: argparse.Namespace, start: int, process: int,
                local_batch: int,

                pin_memory: bool) -> torch.utils.data.DataLoader:
    """Steps start..args.steps-1 in order, prepared by --workers processes --prefetch
    batches ahead, in pinned memory for an asynchronous copy to the GPU."""
    workers = args.workers
    return torch.utils.data.DataLoader(
        StepBatches(source, args, start, process, local_batch), batch_size=None, shuffle=False,
        num_workers=workers, pin_memory=pin_memory, prefetch_factor=args.prefetch if workers else None,
    )
