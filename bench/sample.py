"""Sampling throughput: images per second, and where the time goes.

    python bench/sample.py fixtures/checkpoints/cross-intermediate --batch 16 --steps 50
    python bench/sample.py uvit-s-cross-intermediate --batch 2 --steps 10 --device cuda
    python bench/sample.py --save ...    # also writes bench/results/sample-<device>-<date>.txt

A target is a checkpoint folder (its real encoders) or a PRESETS name (random weights;
for the paper presets the codec is an AutoencoderKL with the Stable Diffusion VAE's
architecture, and the text encoder has CLIP ViT-L/14's or MiniLM-L6's architecture, all
randomly initialised: timing needs the shapes, not the weights). One generate call is split into
its stages, timed separately and repeated; the fastest repeat is reported (the machine
may be shared), as images/s and each stage's share of the time:
    text      prompts -> tokens (the prompts and the empty caption)
    backbone  `steps` DPM-Solver++ steps, each one U-ViT forward on 2B inputs (CFG)
    codec     model space -> pixels (SD VAE decoder; identity in pixel space)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import save_result, torch_device_description
from generator.defaults import CFG_SCALE, STEPS
from generator.diffusion import sample_cfg
from generator.encoders import PixelCodec, SDVAECodec, TextEncoder, encoder_specs_for
from generator.model import PRESETS, UViT, build_model
from generator.sample import load_sampler


class _RandomTextTower:
    """The text tower of a spec (CLIP ViT-L/14's or all-MiniLM-L6-v2's architecture) with
    random weights, fed random token ids: timing needs the shapes, not the weights, and a
    preset run then needs no weights and no weight package (the GPU image has neither)."""

    def __init__(self, name: str, text_len: int, device: torch.device):
        config: PretrainedConfig
        from transformers import PretrainedConfig, PreTrainedModel

        if name == "clip":
            from transformers import CLIPTextConfig, CLIPTextModel

            config = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                    num_attention_heads=12, max_position_embeddings=text_len, projection_dim=768)
            model: PreTrainedModel = CLIPTextModel(config)
        else:  # MiniLM-L6: a 6-layer, 384-wide BERT
            from transformers import BertConfig, BertModel

            config = BertConfig(hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                                num_attention_heads=12, max_position_embeddings=512)
            model = BertModel(config, add_pooling_layer=False)
        self.model = model.eval().to(device)
        self.vocab = config.vocab_size
        self.text_len, self.device = text_len, device

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        ids = torch.randint(0, self.vocab, (len(prompts), self.text_len), device=self.device)
        return self.model(input_ids=ids).last_hidden_state


def random_stack(preset: str, device: torch.device) -> tuple[UViT, SDVAECodec | PixelCodec, _RandomTextTower]:
    """(model, codec, text encoder) for a preset, with random weights."""
    cfg = PRESETS[preset]
    model = build_model(cfg).eval().to(device)
    codec_spec, text_spec = encoder_specs_for(cfg)
    codec: SDVAECodec | PixelCodec
    if codec_spec["name"] == "sd-vae":
        # From its module: diffusers' package root reads as a dummy placeholder class to a type checker.
        from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

        vae = AutoencoderKL(  # the SD v1 VAE architecture (its config.json)
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512), sample_size=8 * cfg.img_size,
        )
        codec = SDVAECodec(vae).to(device)
    else:
        codec = PixelCodec()
    return model, codec, _RandomTextTower(text_spec["name"], cfg.text_len, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_stages(model: UViT, codec: SDVAECodec | PixelCodec, text: TextEncoder | _RandomTextTower, batch: int,
                steps: int, device: torch.device) -> dict[str, float]:
    # The prediction type changes only a few elementwise operations per step: timed as eps.
    """Seconds per stage for one generate call of `batch` images."""
    cfg = model.cfg
    prompts = ["three red circles"] * batch
    times = {}
    _sync(device)
    t0 = time.perf_counter()
    ctx = text.encode(prompts).to(device)
    uncond = text.encode([""]).to(device).expand(batch, -1, -1)
    _sync(device)
    times["text"] = time.perf_counter() - t0
    noise = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size, device=device)
    t0 = time.perf_counter()
    z = sample_cfg(model, noise, ctx, uncond, CFG_SCALE, steps)
    _sync(device)
    times["backbone"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    codec.decode(z)
    _sync(device)
    times["codec"] = time.perf_counter() - t0
    return times


def bench(target: str, batch: int, steps: int, repeats: int, device: torch.device) -> dict:
    text: TextEncoder | _RandomTextTower  # random weights for a preset, else the checkpoint's own
    if target in PRESETS:
        model, codec, text = random_stack(target, device)
    else:
        sampler = load_sampler(target, device)
        model, codec, text = sampler.model, sampler.codec, sampler.text_encoder
    with torch.no_grad():
        time_stages(model, codec, text, min(batch, 2), 2, device)  # warm-up: allocations, kernels
        runs = [time_stages(model, codec, text, batch, steps, device) for _ in range(repeats)]
    best = min(runs, key=lambda r: sum(r.values()))
    total = sum(best.values())
    return {
        "target": target, "batch": batch, "steps": steps, "images_per_s": batch / total,
        "s_per_image": total / batch, **{f"{k}_share": v / total for k, v in best.items()},
        "repeats": repeats, "all_runs_s": [round(sum(r.values()), 3) for r in runs],
    }


def format_table(rows: list[dict]) -> str:
    head = (f"{'target':<40} {'batch':>5} {'steps':>5} {'img/s':>9} {'s/img':>9} "
            f"{'backbone':>9} {'codec':>7} {'text':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['target']:<40} {r['batch']:>5} {r['steps']:>5} {r['images_per_s']:>9.3f} {r['s_per_image']:>9.3f} "
            f"{r['backbone_share']:>9.1%} {r['codec_share']:>7.1%} {r['text_share']:>6.1%}"
        )
    lines.append(f"# img/s: images per second of one generate call (prompts and the empty caption encoded, `steps` "
                 f"DPM-Solver++ steps each running the backbone on 2 x batch inputs for CFG at scale {CFG_SCALE}, "
                 "then decoded), from the fastest repeat; backbone / codec / text: each stage's share of that call")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("targets", nargs="+", help="checkpoint folders or PRESETS names")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--save", action="store_true", help="write bench/results/sample-<device>-<date>.txt")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = [bench(t, args.batch, args.steps, args.repeats, device) for t in args.targets]
    header = (
        f"# bench/sample.py {' '.join(argv if argv is not None else sys.argv[1:])}\n"
        f"# date {dt.date.today().isoformat()}, machine: {torch_device_description(device)}, "
        f"torch {torch.__version__}\n"
    )
    text = header + format_table(rows) + "\n"
    print(json.dumps(rows, indent=1) if args.json else text, end="" if not args.json else "\n")
    if args.save:
        save_result(f"sample-{device.type}", text + "\n", append=True)
    return rows


if __name__ == "__main__":
    main()
