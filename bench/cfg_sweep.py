"""Counting accuracy of the demo checkpoints against the classifier-free guidance scale.

    python -m bench.cfg_sweep --scales 0.5 1 3 6 --per-count 16 --seed 777

Samples every checkpoint under --checkpoints (one folder per variant) at each scale,
reads the images with the shape-aware judge (generator.count_eval), and writes one row per
(scale, variant) with exact match, mean absolute error, shape accuracy and prompt match
and their 95% intervals over the images, to bench/results/cfg_sweep-<date>.txt (appended),
with the date, machine, load average and command. Use a sampling --seed other than the
evaluation's (0) so that choosing a scale here does not tune it to the evaluation images.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import cpu_and_usable_cores, load_average, save_result
from generator import count_eval


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints", type=Path, default=Path("fixtures/checkpoints"))
    p.add_argument("--scales", type=float, nargs="+", required=True)
    p.add_argument("--per-count", type=int, default=16)
    p.add_argument("--steps", type=int, default=count_eval.demo_sampling().steps)
    p.add_argument("--seed", type=int, default=777, help="sampling seed (the evaluation uses 0)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if any(s < 0 for s in args.scales):
        p.error("--scales must be 0 or more")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started, load_start = dt.datetime.now(dt.UTC), load_average()
    sources = {"seed-0": {count_eval.checkpoint_label(c): c for c in count_eval.find_checkpoints(args.checkpoints)}}
    lines = [f"{'cfg scale':>9}  {'variant':<22} {'n':>5}  " + count_eval.metric_header()]
    for scale in args.scales:
        judged = count_eval.judge_all(sources, args.per_count, args.steps, scale, 100, args.seed)
        rows, _ = count_eval.table(judged, args.n_boot)
        for r in rows:
            lines.append(f"{scale:>9g}  {r.variant:<22} {r.n:>5}  {count_eval.metric_cells(r)}")
    header = [
        f"# cfg_sweep  {started:%Y-%m-%dT%H:%M} UTC  {cpu_and_usable_cores()}",
        f"# command: python -m bench.cfg_sweep {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"# load average {load_start:.2f} -> {load_average():.2f}",
        f"# checkpoints {args.checkpoints}, {args.steps} solver steps, sampling seed {args.seed}; "
        f"95% intervals over the images ({args.n_boot} draws); judge: generator/judge.py",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    return save_result("cfg_sweep", text, append=True)


if __name__ == "__main__":
    main()
