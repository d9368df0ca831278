"""Attention maps of a U-ViT, per layer (the paper's Figure 8).

    python -m generator.attention --checkpoint PATH --out fig.png [--prompt TEXT ...]

For every U-ViT block (in.0 ... mid ... out.k) the capture records the softmax
weights averaged over heads and the batch; repeated forward calls (the caller's
timesteps) are averaged with equal weight. From those means:

    image_to_image  (N, N)  patch queries -> patch keys
    text_to_image   (N, T)  patch queries -> text keys; only in blocks where text and
                            image meet (role 'concat' or 'cross'), absent in image-only
                            blocks, which never see the text
    singular values of each text_to_image map (the paper's low-rank argument)

Border tokens: the time token sits at the border of the image stream, and the first
and last text tokens (start-of-text / [CLS], and the final pad or end token of a
fixed-length sequence) are where attention sinks usually sit. drop_border=True
removes them, so the maps show patch-to-patch and patch-to-word attention; the
remaining entries are left as they are (rows are not renormalised). Whether the
paper removed exactly these tokens is our reading, not something it spells out.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from generator.defaults import CFG_SCALE
from generator.model import UViT

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TEXT_BORDER = (1, 1)  # text tokens dropped at the (start, end) when drop_border=True

#################################################################################
#                                    Capture                                    #
#################################################################################


class AttentionMaps:
    """Running means, per layer, of head- and batch-averaged attention weights."""

    def __init__(self, model: UViT):
        cfg = model.cfg
        self.text_len, self.num_patches = cfg.text_len, cfg.num_patches
        self.roles = {name: role for name, _, role in model.named_blocks()}
        self._sum: dict[str, torch.Tensor] = {}
        self._count: dict[str, int] = {}

    def _recorder(self, name: str) -> Callable[[torch.Tensor], None]:
        def record(weights: torch.Tensor) -> None:  # (B, H, Lq, Lk)
            m = weights.float().mean(dim=(0, 1)).cpu()  # (Lq, Lk)
            self._sum[name] = self._sum[name] + m if name in self._sum else m
            self._count[name] = self._count.get(name, 0) + 1

        return record

    @property
    def layers(self) -> list[str]:
        """Recorded layers in forward order."""
        return [n for n in self.roles if n in self._sum]

    @property
    def calls(self) -> int:
        """Forward calls averaged so far."""
        return max(self._count.values(), default=0)

    def mean(self, layer: str) -> torch.Tensor:
        """(Lq, Lk) mean weights of one layer, in the block's own token order."""
        return self._sum[layer] / self._count[layer]

    def _index(self, role: str, drop_border: bool) -> tuple[slice | torch.Tensor, slice | torch.Tensor, slice | None]:
        """(image query rows, image key cols, text key cols) of a role's weight matrix: slices, or
        index tensors for the concat role (its image rows skip the text tokens in between)."""
        T, N = self.text_len, self.num_patches
        head, tail = TEXT_BORDER if drop_border else (0, 0)
        img0 = 1 if drop_border else 0  # the time token is index 0 of the image stream
        if role == "image":  # q = k = [time, patches]
            return slice(img0, 1 + N), slice(img0, 1 + N), None
        if role == "concat":  # q = k = [time, text, patches]
            rows = [0] if not drop_border else []
            # Keep the time token in front of the patches when it is not dropped.
            idx = torch.tensor(rows + list(range(1 + T, 1 + T + N)))
            return idx, idx, slice(1 + head, 1 + T - tail)
        # cross: q = [time, patches], k = [time, patches, text]
        return slice(img0, 1 + N), slice(img0, 1 + N), slice(1 + N + head, 1 + N + T - tail)

    def image_to_image(self, drop_border: bool = True) -> dict[str, torch.Tensor]:
        """{layer: (N, N)} (or (1+N, 1+N) with the time token) for every recorded layer."""
        out = {}
        for name in self.layers:
            rows, cols, _ = self._index(self.roles[name], drop_border)
            out[name] = self.mean(name)[rows][:, cols]
        return out

    def text_to_image(self, drop_border: bool = True) -> dict[str, torch.Tensor]:
        """{layer: (N, T')} for the layers where text and image meet."""
        out = {}
        for name in self.layers:
            rows, _, text = self._index(self.roles[name], drop_border)
            if text is not None:
                out[name] = self.mean(name)[rows][:, text]
        return out

    def singular_values(self, drop_border: bool = True) -> dict[str, torch.Tensor]:
        """{layer: descending singular values of its text_to_image map}."""
        return {k: torch.linalg.svdvals(v.double()).float() for k, v in self.text_to_image(drop_border).items()}


@contextlib.contextmanager
def capture_attention(model: UViT) -> Iterator[AttentionMaps]:
    """Record attention maps of every U-ViT block during the forward calls inside the block.

    Capturing computes the weights explicitly instead of with SDPA (slower, more memory);
    the model's outputs are the same up to float rounding.
    """
    maps = AttentionMaps(model)
    blocks = model.named_blocks()
    for name, blk, _ in blocks:
        blk.attn.record = maps._recorder(name)
    try:
        yield maps
    finally:
        for _, blk, _ in blocks:
            blk.attn.record = None


@torch.no_grad()
def collect_attention(
    model: UViT,
    context: torch.Tensor,
    x0: torch.Tensor | None = None,
    timesteps: list[int] | None = None,
    seed: int = 0,
    timestep_convention: str = "index",
) -> AttentionMaps:
    """Maps averaged over forward passes at `timesteps` on x_t = add_noise(x0, noise, t).

    context (B, T, text_dim); x0 (B, C, H, W) model-space images (e.g. samples of the
    model itself); None stands in standard-normal images drawn from `seed`.
    timesteps (noise-level indices into alphas_cumprod) default to 10 evenly spaced over
    [0, 1000); the network gets each under its checkpoint's `timestep_convention` (an
    imported U-ViT checkpoint expects i + 1 at alphas_cumprod[i]).
    """
    from generator.diffusion import NUM_TRAIN_TIMESTEPS, add_noise, alphas_cumprod, network_timesteps

    cfg = model.cfg
    device = next(model.parameters()).device
    context = context.to(device)
    B = context.shape[0]
    gen = torch.Generator().manual_seed(seed)
    shape = (B, cfg.in_chans, cfg.img_size, cfg.img_size)
    if x0 is None:
        x0 = torch.randn(shape, generator=gen)
    if timesteps is None:
        timesteps = torch.linspace(0, NUM_TRAIN_TIMESTEPS - 1, 10).round().long().tolist()
    ac = alphas_cumprod()
    was_training = model.training
    model.eval()
    with capture_attention(model) as maps:
        for t in timesteps:
            tt = torch.full((B,), int(t), dtype=torch.long)
            xt = add_noise(x0.float().cpu(), torch.randn(shape, generator=gen), tt, ac)
            model(xt.to(device), network_timesteps(tt, timestep_convention).to(device), context)
    model.train(was_training)
    return maps


#################################################################################
#                                    Figure                                     #
#################################################################################


def plot_attention(maps: AttentionMaps, drop_border: bool = True, title: str = "") -> Figure:
    """Figure: a column per layer (image-to-image map over text-to-image map) and a panel
    of normalised singular-value spectra of the text-to-image maps. Returns the Figure."""
    # The object-oriented Figure needs no pyplot state or GUI backend (safe in workers).
    from matplotlib.figure import Figure

    ii, ti = maps.image_to_image(drop_border), maps.text_to_image(drop_border)
    sv = maps.singular_values(drop_border)
    layers = maps.layers
    n = len(layers)
    fig = Figure(figsize=(1.6 * n + 1, 6.8), layout="constrained")
    grid = fig.add_gridspec(3, n, height_ratios=[1, 1, 1.2])
    for j, name in enumerate(layers):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(ii[name].numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(f"{name}\n({maps.roles[name]})", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        if j == 0:
            ax.set_ylabel("image-to-image", fontsize=8)
        ax = fig.add_subplot(grid[1, j])
        if name in ti:
            ax.imshow(ti[name].numpy(), cmap="magma", aspect="auto", interpolation="nearest")
        else:
            ax.text(0.5, 0.5, "no text", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        ax.set_xticks([]), ax.set_yticks([])
        if j == 0:
            ax.set_ylabel("text-to-image\n(patches x words)", fontsize=8)
    ax = fig.add_subplot(grid[2, :])
    for name, s in sv.items():
        ax.semilogy(range(1, len(s) + 1), (s / s[0].clamp_min(1e-12)).numpy(), marker=".", label=name)
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma_i / sigma_1 (text-to-image)")
    if sv:
        ax.legend(fontsize=7, ncol=min(len(sv), 7))
    border = "border tokens removed" if drop_border else "border tokens kept"
    fig.suptitle(f"{title}  attention averaged over heads and {maps.calls} forward calls; {border}".strip(),
                 fontsize=9)
    return fig


#################################################################################
#                                      CLI                                      #
#################################################################################

DEFAULT_PROMPTS = [
    "three red circles on a white background",
    "a dog sitting next to two cats",
    "a bowl of fruit on a wooden table",
    "two people riding bicycles down a street",
]


def main(args: argparse.Namespace) -> None:
    from generator.checkpoint import load_ema
    from generator.diffusion import sample_cfg
    from generator.encoders import load_text_encoder

    device = torch.device(args.device)
    state, meta = load_ema(args.checkpoint)
    model = UViT(meta.config)
    model.load_state_dict(state)
    model.to(device).eval().requires_grad_(False)
    cfg = model.cfg
    # Only the text encoder is needed: the maps are taken in model space, nothing is decoded.
    text_encoder = load_text_encoder(meta.text_encoder, args.clip_path).to(device)
    prompts = args.prompt or DEFAULT_PROMPTS
    context = text_encoder.encode(prompts).to(device)  # (B, T, D)
    uncond = text_encoder.encode([""]).to(device).expand(len(prompts), -1, -1)  # (B, T, D)
    # The maps are taken on noised versions of the model's own samples, so the image
    # content matches the prompts at every timestep.
    gen = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(len(prompts), cfg.in_chans, cfg.img_size, cfg.img_size, generator=gen).to(device)
    convention = meta.timestep_convention
    x0 = sample_cfg(model, noise, context, uncond, args.cfg_scale, args.sample_steps,
                    prediction_type=meta.prediction_type, timestep_convention=convention)
    timesteps = torch.linspace(0, 999, args.timesteps).round().long().tolist()
    maps = collect_attention(model, context, x0, timesteps, args.seed, timestep_convention=convention)
    fig = plot_attention(maps, not args.keep_border, title=meta.name)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out} ({len(maps.layers)} layers, {maps.calls} timesteps, {len(prompts)} prompts)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Per-layer attention maps of a checkpoint (paper Figure 8).")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder or its model.safetensors")
    p.add_argument("--out", required=True, help="output image (png, pdf, svg)")
    p.add_argument("--prompt", action="append", help="prompt (repeatable); default: a few fixed prompts")
    p.add_argument("--timesteps", type=int, default=10, help="evenly spaced timesteps to average over")
    p.add_argument("--sample-steps", type=int, default=20, help="DPM-Solver++ steps for the clean samples")
    p.add_argument("--cfg-scale", type=float, default=CFG_SCALE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-border", action="store_true", help="keep the time token and text border tokens")
    p.add_argument("--device", default="cpu")
    p.add_argument("--clip-path", default=None, help="local CLIP text encoder folder (CLIP-conditioned models)")
    p.add_argument("--dpi", type=int, default=150)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
