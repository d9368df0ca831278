"""What a study that stopped early reports: the naive estimate and interval after the
stopping rule says "stop: difference shown".

Each study's evaluators bring one paired difference each, d_i ~ N(delta, 1), in arrival
order; at the looks LOOKS the rule (`sequential.monitor`, the project's own) reads the
mean of the first n_k differences with SE = sd / sqrt(n_k) and df = n_k - 1, and stops at
the first look that crosses (or says futility). The planned effect is PLANNED, power 0.8.
Rows: the truth delta; the share of studies stopped with a difference shown; among them,
the mean reported estimate (and its ratio to delta); and the share of the naive 95% t
intervals, estimate +- t(n_k - 1) SE at the stopping look, that hold delta, over those
stopped studies and over all studies (each at the look where it stopped).

    nice -n 10 .venv/bin/python bench/sequential_estimate.py [--studies 10000] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header  # noqa: E402
from evalstudy import sequential  # noqa: E402

LOOKS = (10, 20, 30, 40)
ALPHA = 0.05
PLANNED = 0.5
TRUTHS = (0.0, 0.25, 0.5)


def one_study(delta: float, rng) -> tuple[str, int, float, float, float]:
    """(decision, stopping look's evaluators, estimate, SE, df) of one study."""
    d = rng.normal(delta, 1.0, LOOKS[-1])
    looks = []
    for n in LOOKS:
        x = d[:n]
        looks.append(sequential.LookInput(n, float(x.mean()), float(x.std(ddof=1) / np.sqrt(n)), n - 1.0))
    outcomes, _ = sequential.monitor(looks, LOOKS, ALPHA, PLANNED, 0.8)
    last = outcomes[-1]
    k = last.look - 1
    return last.decision, last.n_evaluators, looks[k].estimate, looks[k].se, looks[k].df


def main(args) -> str:
    started = time.time()
    lines = [*result_header("After an early stop: the naive estimate and interval (bench/sequential_estimate.py)"),
             f"d_i ~ N(delta, 1) per evaluator; looks {list(LOOKS)}; alpha {ALPHA}; planned effect {PLANNED}, "
             f"power 0.8; {args.studies} studies per row",
             "",
             f"{'delta':>6}{'P(stop: diff)':>15}{'s.e.':>7}{'mean est | diff':>17}{'x truth':>9}"
             f"  {'by stopping look (mean est, share of studies)':<58}"
             f"{'cover | diff':>13}{'cover all':>11}"]
    for index, delta in enumerate(TRUTHS):
        rng = np.random.default_rng([args.seed, index])
        rows = [one_study(delta, rng) for _ in range(args.studies)]
        shown = [r for r in rows if r[0] == sequential.STOP_DIFFERENCE]
        p = len(shown) / len(rows)

        def covers(r, delta=delta):
            half = sps.t.ppf(0.975, r[4]) * r[3]
            return abs(r[2] - delta) <= half

        by_look = []
        for n in LOOKS:
            at = [r[2] for r in shown if r[1] == n]
            if at and delta:
                by_look.append(f"n={n}: {np.mean(at):.3f} ({len(at) / len(rows):.3f})")
        # With no difference a stop's sign is a coin toss: its mean says nothing, so none is shown.
        mean_est = float(np.mean([r[2] for r in shown])) if shown and delta else float("nan")
        ratio = f"{mean_est / delta:>9.2f}" if delta else f"{'-':>9}"
        cover_shown = float(np.mean([covers(r) for r in shown])) if shown else float("nan")
        lines.append(f"{delta:>6.2f}{p:>15.4f}{np.sqrt(p * (1 - p) / len(rows)):>7.4f}{mean_est:>17.3f}{ratio}  "
                     f"{'; '.join(by_look):<58}{cover_shown:>13.3f}{np.mean([covers(r) for r in rows]):>11.3f}")
        print(lines[-1], flush=True)
    lines += ["", "mean est | diff: the mean reported estimate over the studies stopped with a difference shown; "
              "cover | diff: the share of their naive 95% t intervals (at the stopping look) holding delta; "
              "cover all: the same over every study, at the look where it stopped (futility included).",
              result_footer(started)]
    return emit_result("sequential_estimate", "\n".join(lines), write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
