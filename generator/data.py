"""Training data sources: model-space images and their text tokens, batch by batch.

A source never runs an encoder inside the training loop: the synthetic source renders
its images and embeds its few distinct captions once, at start-up; the COCO source reads
the cache written by `python -m generator.coco encode`. Batches are drawn with a
caller-supplied torch.Generator, so a training step is a function of its seed.

    source.batch(batch_size, generator) -> (x0 (B, C, H, W) float32, context (B, T, D) float32)
    source.empty                         -> (T, D) the empty caption's tokens (for CFG dropout)
    source.preview(k)                    -> (captions, contexts (k, T, D)) for sample grids
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from generator.synthetic import SyntheticCounting, all_scenes

if TYPE_CHECKING:
    from generator.encoders import TextEncoder


class SyntheticSource:
    """The synthetic counting images in pixel space, [-1, 1]."""

    def __init__(self, text_encoder: TextEncoder, n: int = 30000, size: int = 32, seed: int = 0) -> None:
        data = SyntheticCounting(n, size, seed)
        self.images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W) uint8
        captions = sorted({s.caption for s in all_scenes()})
        index = {c: i for i, c in enumerate(captions)}
        self.captions = captions
        self.caption_ids = torch.tensor([index[c] for c in data.captions])  # (N,)
        self.table = text_encoder.encode(captions + [""]).cpu()  # (K+1, T, D)
        self.empty = self.table[-1]
        self.spec = {"name": "synthetic", "n": n, "size": size, "seed": seed}

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.images), (batch_size,), generator=generator)
        x0 = self.images[idx].float() / 127.5 - 1.0  # (B, 3, H, W)
        return x0, self.table[self.caption_ids[idx]]

    def preview(self, k: int) -> tuple[list[str], torch.Tensor]:
        """The first k distinct captions, spread over kinds and counts."""
        step = max(1, len(self.captions) // k)
        chosen = self.captions[::step][:k]
        return chosen, self.table[[self.captions.index(c) for c in chosen]]


ENCODE_COMMAND = ("python -m generator.coco encode --images COCO/train2014 "
                  "--captions COCO/annotations/captions_train2014.json --out {out}")


def check_cache(folder: Path) -> None:
    """SystemExit, saying what to run, unless `folder` holds a complete cache (meta.json,
    which `generator.coco encode` writes last, in this cache format)."""
    from generator.coco import CACHE_FORMAT, PROGRESS_FILE

    run = f"run `{ENCODE_COMMAND.format(out=folder)}`"
    if not folder.is_dir():
        raise SystemExit(f"no COCO cache at {folder}: {run} first")
    if not (folder / "meta.json").is_file():
        if (folder / PROGRESS_FILE).is_file():
            done = json.loads((folder / PROGRESS_FILE).read_text())
            n = -(-done["plan"]["n_images"] // done["plan"]["batch_size"])
            raise SystemExit(f"the COCO cache at {folder} is partial ({done['done_batches']} of {n} batches "
                             f"encoded): rerun the same `python -m generator.coco encode ... --out {folder}` to "
                             "finish it")
        looks_raw = any(folder.glob("*.jpg")) or (folder / "annotations").is_dir() or (folder / "train2014").is_dir()
        what = "holds COCO's images, not the encoded cache" if looks_raw else "is not a finished cache (no meta.json)"
        raise SystemExit(f"{folder} {what}: {run}")
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("format") != CACHE_FORMAT:
        raise SystemExit(f"{folder} is a cache of format {meta.get('format')!r}, not {CACHE_FORMAT!r}: {run} again")


class CocoCacheSource:
    """Latent moments and caption tokens cached by `generator.coco encode`.

    Each item is an image; its caption is drawn uniformly from that image's captions
    (U-ViT's MS-COCO loader does the same), and its latent is sampled from the cached
    posterior, scale * (mean + std * noise), as if the VAE ran on the fly.
    """

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        check_cache(folder)
        self.meta = json.loads((folder / "meta.json").read_text())
        self.moments = np.load(folder / "moments.npy", mmap_mode="r")  # (N, 2, C, h, w) float32
        self.text = np.load(folder / "text.npy", mmap_mode="r")  # (M, T, D) float16
        self.offsets = torch.from_numpy(np.load(folder / "caption_offsets.npy"))  # (N+1,) int64
        self.empty = torch.from_numpy(np.load(folder / "empty_text.npy")).float()  # (T, D)
        self.captions = json.loads((folder / "captions.json").read_text())  # list of lists
        self.scale = float(self.meta["codec"].get("scale_factor", 1.0))
        self.spec = {"name": "coco-cache", "path": str(folder), "n": len(self.moments)}

    def __len__(self) -> int:
        return len(self.moments)

    def _captions_of(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        lo, hi = self.offsets[idx], self.offsets[idx + 1]
        u = torch.rand(len(idx), generator=generator, dtype=torch.float64)
        n = hi - lo
        # min() guards the one-in-2^50 case where u * n rounds up to n.
        return lo + torch.minimum((u * n).long(), n - 1)

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.moments), (batch_size,), generator=generator)
        cap = self._captions_of(idx, generator)
        m = torch.from_numpy(np.stack([self.moments[i] for i in idx.tolist()])).float()  # (B, 2, C, h, w)
        noise = torch.randn(m[:, 0].shape, generator=generator)
        x0 = self.scale * (m[:, 0] + m[:, 1] * noise)
        ctx = torch.from_numpy(np.stack([self.text[i] for i in cap.tolist()])).float()  # (B, T, D)
        return x0, ctx

    def preview(self, k: int) -> tuple[list[str], torch.Tensor]:
        idx = torch.arange(min(k, len(self.moments)))
        first = self.offsets[idx]
        ctx = torch.from_numpy(np.stack([self.text[i] for i in first.tolist()])).float()
        return [self.captions[i][0] for i in idx.tolist()], ctx
