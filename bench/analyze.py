"""How long does `analyze` take on a large study?

A study of about 100,000 responses is simulated (the paper's four variants; 4
objects x 5 counts x 25 images per prompt and variant, 400 captions, 300
evaluators, each item seen by 28 of them, 2 gold items and 2 repeats each, 5%
careless evaluators so that the exclusion rules remove some and the analysis
runs twice, filtered and unfiltered). `analyze` runs with 2,000 bootstrap
resamples; the best and the median of several runs are reported.

    .venv/bin/python bench/analyze.py [--repeats 3] [--write]

--write saves the printed table under bench/results/analyze-<date>.txt.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import cpu_and_usable_cores, load_average, save_result  # noqa: E402
from evalstudy.analysis import analyze  # noqa: E402
from evalstudy.protocol import DEFAULT_N_BOOT  # noqa: E402
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol  # noqa: E402

VARIANTS = ["concat-early", "concat-intermediate", "cross-early", "cross-intermediate"]
N_BOOT = DEFAULT_N_BOOT  # what a study's analysis runs unless its protocol says otherwise
LIMIT_S = 10.0


def main(args: argparse.Namespace) -> str:
    proto = synthetic_protocol(
        VARIANTS, objects=("circle", "square", "triangle", "star"), images_per_prompt=25,
        n_captions=400, n_evaluators=300, overlap=28, gold=2, repeats=2,
        exclusions={"min_gold_accuracy": 0.5, "min_median_seconds": 1.0})
    sim = RaterSimulator(dict(zip(VARIANTS, (0.5, 0.65, 0.55, 0.75), strict=True)), careless=0.05, seed=3)
    t0 = time.perf_counter()
    table = simulate_study(sim, proto)
    simulate_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        load = load_average()
        t0 = time.perf_counter()
        result = analyze(table, proto, n_boot=N_BOOT, seed=0)
        times.append((time.perf_counter() - t0, load))
    best = min(t for t, _ in times)
    lines = [
        "Run time of evalstudy.analysis.analyze (bench/analyze.py)",
        f"date: {datetime.date.today().isoformat()}   machine: {cpu_and_usable_cores()}",
        f"responses: {len(table)} ({result.unfiltered.data.n_count_responses} count, "
        f"{result.unfiltered.data.n_rankings} rankings x 4 rows, the rest gold and "
        f"repeats); evaluators: {result.exclusions.n_evaluators}, "
        f"{result.exclusions.n_excluded} excluded (so analysed twice)",
        f"bootstrap resamples: {N_BOOT}; simulating the study took {simulate_s:.1f} s",
        "",
        f"{'run':>4}{'seconds':>10}{'load avg (1 min) at start':>28}",
        *[f"{k + 1:>4}{t:>10.2f}{load:>28.2f}" for k, (t, load) in enumerate(times)],
        "",
        f"best {best:.2f} s, median {statistics.median(t for t, _ in times):.2f} s; "
        f"limit {LIMIT_S:.0f} s: {'met' if best < LIMIT_S else 'NOT met'}",
        "The machine is shared: a load average above the core count slows every run.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        path = save_result("analyze", text)
        print(f"wrote {path}", file=sys.stderr)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
