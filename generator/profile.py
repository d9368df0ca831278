"""Parameters and forward FLOPs of the U-ViT variants, counted the way the paper did.

    python -m generator.profile [--ablations] [--json]

"Paper method": ptflops 0.7.5, get_model_complexity_info(backend='pytorch') on one
sample at one timestep, GFLOPs = 2 x MACs / 1e9. It counts nn.Linear, nn.Conv2d,
nn.LayerNorm and nn.GELU through module hooks (plus the functional F.gelu that
nn.GELU calls, so GELU is counted twice), but not the attention matmuls: SDPA is
not one of ptflops' patched functions. "With attention" adds QK^T and AV
analytically (2 * Lq * Lk * D MACs per block; the softmax is not counted).

Which architectural detail each paper-method number depends on (U-ViT-S, D=512,
T=77 text tokens, N=256 patches; all within 0.01 GFLOPs of Table 1):
    29.56 concat-early         all 13 blocks and the 6 skip Linears run on 334 tokens;
                               the final norm and decoder_pred run on 257 here (the
                               text tokens are dropped first), on all 334 in U-ViT's
                               code: the same outputs (both act per token), about
                               0.0014 GFLOPs apart (77 x LayerNorm and Linear(512, 16)),
                               below the table's rounding.
                               ptflops counts each Linear's bias add per output
                               element (+0.03) and each GELU twice, by module hook
                               and by the patched F.gelu that nn.GELU calls (+0.02);
                               without both: 29.52.
    25.84 concat-intermediate  the text block runs on 77 tokens; 4+4 image-only blocks
                               and their skips on 257 tokens; the 5 joint blocks and
                               the 2 joint skips on 334. Keeping the text through the
                               last 4 out-blocks would give about 28.1.
    23.82 cross-early          queries, proj and MLP on 257 tokens, but norm1 and the
                               kv projection also run on the 77 text tokens in every
                               block (about 1.05 GFLOPs of the total); skips on 257.
    23.66 cross-intermediate   as cross-early in the 5 joint blocks, plus one text
                               block on 77 tokens; image-only blocks on 257.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn as nn

from generator.model import PAPER_VARIANTS, UViT, UViTConfig, block_roles, build_model
from generator.recipes import ALL_PRESETS, DEMO_PRESETS

# Published numbers from the paper's Table 1 (typed in for display; not computed here).
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "uvit-s-concat-early": {"params_m": 44.69, "gflops": 29.56},
    "uvit-s-concat-intermediate": {"params_m": 47.84, "gflops": 25.84},
    "uvit-s-cross-early": {"params_m": 44.69, "gflops": 23.82},
    "uvit-s-cross-intermediate": {"params_m": 47.84, "gflops": 23.66},
}
ABLATIONS: tuple[str, ...] = (
    "uvit-s-concat-ablation-n0-i4",
    "uvit-s-concat-ablation-n1-i0",
    "uvit-s-cross-ablation-n0-i4",
    "uvit-s-cross-ablation-n1-i0",
)


#################################################################################
#                                   Counting                                    #
#################################################################################


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def attention_macs(cfg: UViTConfig) -> int:
    """MACs of QK^T and AV for one sample: 2 * Lq * Lk * D per attention layer."""
    D, T, N = cfg.embed_dim, cfg.text_len, cfg.num_patches
    lengths = {"image": (1 + N, 1 + N), "concat": (1 + T + N, 1 + T + N), "cross": (1 + N, 1 + N + T)}
    macs = cfg.n_text * 2 * T * T * D  # text-only blocks
    for _, role in block_roles(cfg):
        lq, lk = lengths[role]
        macs += 2 * lq * lk * D
    return macs


class _SingleInput(nn.Module):
    """Wraps the model so ptflops sees one positional tensor (its batch counter wants one)."""

    timesteps: torch.Tensor  # buffers, declared for the type checker (nn.Module's __getattr__ is untyped)
    context: torch.Tensor

    def __init__(self, model: UViT):
        super().__init__()
        self.model = model
        cfg = model.cfg
        self.register_buffer("timesteps", torch.full((1,), 500.0), persistent=False)
        self.register_buffer("context", torch.zeros(1, cfg.text_len, cfg.text_dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.timesteps.expand(x.shape[0]), self.context.expand(x.shape[0], -1, -1))


def paper_method_macs(model: UViT) -> int:
    """Forward MACs of one sample as ptflops 0.7.5 (pytorch backend) counts them."""
    from ptflops import get_model_complexity_info, pytorch_ops

    # The paper-method figure must exclude the attention matmuls; a ptflops that
    # learned to count SDPA would silently change it.
    sdpa = torch.nn.functional.scaled_dot_product_attention
    if sdpa in pytorch_ops.FUNCTIONAL_MAPPING or sdpa in pytorch_ops.TENSOR_OPS_MAPPING:
        raise RuntimeError("this ptflops counts scaled_dot_product_attention; pin ptflops==0.7.5")
    cfg = model.cfg
    was_training = model.training
    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            _SingleInput(model),
            (cfg.in_chans, cfg.img_size, cfg.img_size),
            as_strings=False,
            print_per_layer_stat=False,
            backend="pytorch",
        )
    model.train(was_training)
    if macs is None:
        raise RuntimeError("ptflops failed to count the model")
    return int(macs)


def _uninitialised(cfg: UViTConfig) -> UViT:
    """A zero-filled model built without running the (slow) weight init: FLOP counting
    only needs shapes, and params are counted the same either way."""
    with torch.device("meta"):
        model = build_model(cfg)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.zero_()
    return model


def profile_variant(name: str) -> dict:
    """{'name', 'params', 'gflops_paper_method', 'gflops_with_attention', paper numbers}."""
    cfg = ALL_PRESETS[name]
    model = _uninitialised(cfg)
    macs = paper_method_macs(model)
    paper = PAPER_TABLE1.get(name, {})
    return {
        "name": name,
        "params": count_params(model),
        "gflops_paper_method": 2 * macs / 1e9,
        "gflops_with_attention": 2 * (macs + attention_macs(cfg)) / 1e9,
        "paper_params_m": paper.get("params_m"),
        "paper_gflops": paper.get("gflops"),
    }


def forward_flops_with_attention(cfg: UViTConfig) -> float:
    """Forward FLOPs (2 x MACs) of one sample, attention matmuls included."""
    return 2.0 * (paper_method_macs(_uninitialised(cfg)) + attention_macs(cfg))


#################################################################################
#                                      CLI                                      #
#################################################################################


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main(args: argparse.Namespace) -> None:
    names = list(PAPER_VARIANTS)
    names += list(ABLATIONS) if args.ablations else []
    names += list(DEMO_PRESETS) if args.demo else []
    rows = [profile_variant(n) for n in names]
    if args.json:
        print(json.dumps({"variants": rows}))
        return
    header = (f"{'variant':30s} {'params':>12s} {'paper params':>12s} {'GFLOPs':>8s} {'paper GFLOPs':>12s} "
              f"{'+attention':>10s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        paper_params = _fmt(r["paper_params_m"], ">11.2f") + "M" if r["paper_params_m"] else "-"
        print(
            f"{r['name']:30s} {r['params']:>12,d} {paper_params:>12s} "
            f"{r['gflops_paper_method']:>8.2f} {_fmt(r['paper_gflops'], '>12.2f'):>12s} "
            f"{r['gflops_with_attention']:>10.2f}"
        )
    print(
        "\nGFLOPs = 2 x ptflops 0.7.5 MACs (pytorch backend), one sample, one timestep; "
        "'+attention' adds QK^T and AV.\npaper columns: published Table 1 of arXiv 2403.16530, typed in for comparison."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ablations", action="store_true", help="also profile the [0, 4] and [1, 0] ablations")
    p.add_argument("--demo", action="store_true", help="also profile the CPU demo presets (generator.recipes)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
