"""Is the data pipeline the bottleneck? The training loop's steps/s with real data
against the same loop fed tensors already in memory.

    python bench/train_throughput.py [--device cpu] [--preset demo-cross-intermediate] [--save]

Both runs are `generator.train.main` on the same cache of latents and caption tokens
(random values, written here in `generator.coco`'s cache format with the preset's shapes:
what a step reads costs the same whatever the values):
    loader   the run as it trains: the DataLoader (--workers processes, --prefetch, pinned
             memory on CUDA) reads the memory-mapped cache step by step
    memory   every step's batch drawn before the loop starts (the loop only takes the next
             one): what the loop would do if data cost nothing
steps/s is read from each run's log.jsonl between its first and last log lines (the
first --log-every steps are the warm-up). Runs alternate, --repeats each, and each mode's
best run counts. The data pipeline keeps up when loader/memory is at least 0.95.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import load_average, save_result, torch_device_description
from generator import train, train_batches
from generator.coco import CACHE_FORMAT
from generator.recipes import ALL_PRESETS, recipe_for

if TYPE_CHECKING:
    import torch

    from generator.data import CocoCacheSource, SyntheticSource


TARGET = 0.95


def write_random_cache(folder: Path, preset: str, n_images: int = 512, captions_per_image: int = 5,
                       seed: int = 0) -> Path:
    """A training cache of random values in the cache format, shaped for the preset."""
    cfg = ALL_PRESETS[preset]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape = (cfg.in_chans, cfg.img_size, cfg.img_size)
    moments = rng.standard_normal((n_images, 2, *shape), dtype=np.float32)
    moments[:, 1] = np.abs(moments[:, 1]) * 0.1
    np.save(folder / "moments.npy", moments)
    n_captions = n_images * captions_per_image
    np.save(folder / "text.npy", rng.standard_normal((n_captions, cfg.text_len, cfg.text_dim)).astype(np.float16))
    np.save(folder / "caption_offsets.npy", np.arange(0, n_captions + 1, captions_per_image, dtype=np.int64))
    np.save(folder / "empty_text.npy", rng.standard_normal((cfg.text_len, cfg.text_dim), dtype=np.float32))
    (folder / "captions.json").write_text(json.dumps([[f"image {i}"] * captions_per_image for i in range(n_images)]))
    codec = {"name": "sd-vae", "scale_factor": 0.2301} if cfg.in_chans == 4 else {"name": "pixel", "channels": 3}
    meta = {
        "format": CACHE_FORMAT, "codec": codec,
        "text_encoder": {"name": "random", "text_len": cfg.text_len, "dim": cfg.text_dim},
        "latent_shape": list(shape), "image_size": cfg.img_size * (8 if cfg.in_chans == 4 else 1),
        "n_images": n_images, "n_captions": n_captions, "captions_file": "random",
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _in_memory_loader(source: SyntheticSource | CocoCacheSource, args: argparse.Namespace, start: int, process: int,
                      local_batch: int, pin_memory: bool) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every step's batch drawn up front, in the training process (the 'memory' mode)."""
    return [train_batches.StepBatches(source, args, start, process, local_batch)[i] for i in range(args.steps - start)]


def steps_per_s(log: Path) -> tuple[float, float]:
    """(steps/s between the first and last log lines, seconds the loop waited for data there)."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    first, last = rows[0], rows[-1]
    return ((last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"]),
            last["data_wait_s"] - first["data_wait_s"])


def one_run(mode: str, cache: Path, out: Path, args: argparse.Namespace) -> tuple[float, float]:
    argv = [
        "--preset", args.preset, "--data", f"coco-cache:{cache}", "--out", str(out), "--steps", str(args.steps),
        "--batch-size", str(args.batch), "--log-every", str(args.log_every), "--ckpt-every", str(10 ** 9),
        "--sample-every", "0", "--log-with", "none", "--no-progress", "--workers", str(args.workers),
        "--prefetch", str(args.prefetch),
    ]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.device == "cpu":  # accelerate picks the GPU when there is one; this asks for the CPU
        os.environ["ACCELERATE_USE_CPU"] = "true"
    original = train.step_loader
    if mode == "memory":
        # The batches in a list stand in for the DataLoader: the training loop only iterates it.
        train.step_loader = _in_memory_loader  # type: ignore[assignment]  # a list for a DataLoader
    try:
        train.main(train.parse_args(argv))
    finally:
        train.step_loader = original
    return steps_per_s(out / "log.jsonl")


def run(args: argparse.Namespace, on_result: Callable[[dict], None] | None = None) -> dict:
    load_start = round(load_average(), 2)
    runs: dict[str, list[tuple[float, float]]] = {"loader": [], "memory": []}
    with tempfile.TemporaryDirectory() as tmp:
        cache = write_random_cache(Path(tmp) / "cache", args.preset)
        for r in range(args.repeats):
            for mode in ("memory", "loader"):
                runs[mode].append(one_run(mode, cache, Path(tmp) / f"{mode}-{r}", args))
                if on_result is not None:
                    on_result(summary(args, runs, load_start))
    return summary(args, runs, load_start)


def summary(args: argparse.Namespace, runs: dict, load_start: float) -> dict:
    import torch

    best = {m: max(r[0] for r in rs) if rs else None for m, rs in runs.items()}
    ratio = best["loader"] / best["memory"] if best["loader"] and best["memory"] else None
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": "python bench/train_throughput.py " + " ".join(args.argv),
        "machine": torch_device_description(torch.device(args.device)),
        "loadavg_start": load_start, "loadavg_end": round(load_average(), 2),
        "preset": args.preset, "batch": args.batch, "steps": args.steps, "log_every": args.log_every,
        "workers": args.workers, "prefetch": args.prefetch, "device": args.device,
        "runs": {m: [{"steps_per_s": s, "data_wait_s": w} for s, w in rs] for m, rs in runs.items()},
        "best_steps_per_s": best, "loader_over_memory": ratio, "target": TARGET,
        "keeps_up": None if ratio is None else ratio >= TARGET,
    }


def format_table(res: dict) -> str:
    lines = [
        f"# train_throughput  {res['date']}  machine: {res['machine']}  load average {res['loadavg_start']} -> "
        f"{res['loadavg_end']}",
        f"# {res['command']}",
        f"# {res['preset']}, batch {res['batch']}, {res['steps']} steps (rate over steps {res['log_every']}-"
        f"{res['steps']}), --workers {res['workers']} --prefetch {res['prefetch']}, device {res['device']}",
        f"{'mode':8s} {'run':>3s} {'steps/s':>9s} {'data wait s':>11s}",
    ]
    for mode, rs in res["runs"].items():
        for i, r in enumerate(rs):
            lines.append(f"{mode:8s} {i:>3d} {r['steps_per_s']:>9.3f} {r['data_wait_s']:>11.3f}")
    if res["loader_over_memory"] is not None:
        verdict = "keeps up" if res["keeps_up"] else "IS THE BOTTLENECK"
        lines.append(f"# best loader / best memory steps/s = {res['loader_over_memory']:.3f} (target >= "
                     f"{res['target']}): the data pipeline {verdict}")
    lines.append("# loader: the training run as it trains (DataLoader over the memory-mapped cache); memory: every "
                 "batch drawn before the loop; data wait s: time the loop waited for its next batch")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--preset", default="demo-cross-intermediate", choices=sorted(ALL_PRESETS))
    p.add_argument("--batch", type=int, help="global batch (default: the preset's recipe)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--log-every", type=int, default=10, help="the first this many steps are the warm-up")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--prefetch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch intra-op threads of the training process")
    p.add_argument("--out", type=Path, help="also rewrite this file with the table after every run")
    p.add_argument("--save", action="store_true", help="append to bench/results/train_throughput-<device>-<date>.txt")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.batch = args.batch or recipe_for(args.preset).batch_size
    if args.steps <= args.log_every:
        p.error("--steps must exceed --log-every (the rate is measured after the first log line)")

    def write(res: dict) -> None:
        if args.out is not None:
            args.out.write_text(format_table(res) + "\n" + json.dumps(res) + "\n")

    started = time.perf_counter()
    res = run(args, on_result=write)
    res["wall_s"] = round(time.perf_counter() - started, 1)
    write(res)
    print(format_table(res))
    if args.save:
        path = save_result(f"train_throughput-{args.device}", format_table(res) + "\n" + json.dumps(res) + "\n\n",
                           append=True)
        print(f"wrote {path}", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
