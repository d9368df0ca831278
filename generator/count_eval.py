"""Counting accuracy of trained checkpoints, read by the automatic counter.

    python -m generator.count_eval --checkpoints fixtures/checkpoints --per-count 40 --json

For every checkpoint folder under --checkpoints (or each --checkpoint given), generates
`per-count` images for every object kind and count 1..5 ("three red circles"; colours
cycle through the palette), counts the objects of any colour in each image, and reports
the exact-match ratio and mean absolute error. Every variant gets the same prompts and
seeds. With --json, one line per variant: {"variant", "exact_match", "mean_abs_error", "n"};
--detail adds the per-kind, per-count cells.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from generator.checkpoint import WEIGHTS_FILE
from generator.counter import count_objects
from generator.defaults import CFG_SCALE
from generator.metrics import count_accuracy
from generator.sample import load_sampler
from generator.synthetic import COLOURS, KINDS, MAX_COUNT, MIN_COUNT, Scene


def eval_prompts(per_count: int, seed: int = 0) -> tuple[list[Scene], list[int]]:
    """(scenes, seeds): per_count items for each kind and count; seeds shared across cells."""
    colours = tuple(COLOURS)
    scenes, seeds = [], []
    for kind in KINDS:
        for count in range(MIN_COUNT, MAX_COUNT + 1):
            for j in range(per_count):
                scenes.append(Scene(kind, colours[j % len(colours)], count))
                seeds.append(seed + j)
    return scenes, seeds


def evaluate(checkpoint: Path, per_count: int, steps: int, cfg_scale: float, batch_size: int, seed: int = 0) -> dict:
    """count_accuracy(...) of one checkpoint, with "variant" set to its folder name."""
    sampler = load_sampler(checkpoint)
    scenes, seeds = eval_prompts(per_count, seed)
    images = sampler.generate([s.caption for s in scenes], seeds, cfg_scale, steps, batch_size)
    result = count_accuracy(
        [s.count for s in scenes], [count_objects(im) for im in images], [s.kind for s in scenes]
    )
    name = checkpoint.name if checkpoint.is_dir() else checkpoint.stem
    return {"variant": name, **result}


def find_checkpoints(root: Path) -> list[Path]:
    """Sub-folders of `root` holding a model.safetensors, sorted by name."""
    found = sorted(p.parent for p in root.glob(f"*/{WEIGHTS_FILE}"))
    if not found:
        raise SystemExit(f"no */{WEIGHTS_FILE} under {root}")
    return found


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints", type=Path, help="folder of checkpoint folders")
    p.add_argument("--checkpoint", type=Path, action="append", default=[], help="one checkpoint (repeatable)")
    p.add_argument("--per-count", type=int, default=40, help="images per (kind, count)")
    # 25 DPM-Solver++ steps: the counts do not change beyond ~20 steps on the demo
    # models, and the evaluation stays a few CPU-minutes per variant.
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg-scale", type=float, default=CFG_SCALE)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true", help="one JSON line per variant")
    p.add_argument("--detail", action="store_true", help="include per-kind, per-count cells")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    checkpoints = list(args.checkpoint) + (find_checkpoints(args.checkpoints) if args.checkpoints else [])
    if not checkpoints:
        p.error("give --checkpoints or --checkpoint")

    results = []
    for ckpt in checkpoints:
        r = evaluate(ckpt, args.per_count, args.steps, args.cfg_scale, args.batch_size, args.seed)
        results.append(r)
        row = {k: r[k] for k in ("variant", "exact_match", "mean_abs_error", "n")}
        if args.detail:
            row["by_group"] = r["by_group"]
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(f"{'variant':<24} {'exact_match':>11} {'mean_abs_error':>14} {'n':>5}")
        for r in results:
            print(f"{r['variant']:<24} {r['exact_match']:>11.3f} {r['mean_abs_error']:>14.3f} {r['n']:>5}")
    return results


if __name__ == "__main__":
    main()
