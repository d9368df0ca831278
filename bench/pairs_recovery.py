"""Does a pairs study's analysis recover known Bradley-Terry strengths?

Each replication simulates a pairs study (preference_task.design "pairs") answered by a crowd
that follows Davidson's model exactly (`simulate.simulate_bradley_terry_pairs`, laid out by
`design.plan_assignments(design="pairs")`), analyses it (`analysis.analyze`), and records: the
Spearman correlation of the fitted strengths with the true ones, the share of variants whose
95% strength interval holds the true strength, and of pairs whose 95% win-rate interval
(ties left out) holds the true one, and the tie parameter's estimate. Rows per setting: the
means over the replications, with the coverage's binomial standard error.

    nice -n 10 .venv/bin/python bench/pairs_recovery.py [--reps 40] [--n-boot 400] [--write]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header  # noqa: E402
from evalstudy.analysis import analyze  # noqa: E402
from evalstudy.simulate import simulate_bradley_terry_pairs, synthetic_protocol  # noqa: E402

# (variants, captions, raters, overlap, tie parameter)
SETTINGS = ((8, 60, 30, 8, 0.4), (8, 60, 30, 8, 0.0), (16, 120, 40, 10, 0.4))


def true_strengths(n: int) -> np.ndarray:
    """Strengths spread over a factor of 8 (log-linear), summing to 1."""
    s = 2.0 ** (3 * np.arange(n) / (n - 1))
    return s / s.sum()


def one_study(n: int, captions: int, raters: int, overlap: int, nu: float, seed: int, n_boot: int) -> dict:
    variants = [f"m{i:02d}" for i in range(n)]
    truth = true_strengths(n)
    proto = synthetic_protocol(variants, objects=(), n_captions=captions, n_evaluators=raters, overlap=overlap,
                               design="pairs", allow_ties=nu > 0)
    table = simulate_bradley_terry_pairs(proto, dict(zip(variants, truth, strict=True)), tie_parameter=nu,
                                         seed=seed)
    res = analyze(table, proto, n_boot=n_boot, seed=seed)
    by = {s.variant: s for s in res.preference.by_variant}
    fitted = np.array([by[v].bt_strength for v in variants])
    cover = [by[v].bt_strength_ci[0] <= t <= by[v].bt_strength_ci[1] for v, t in zip(variants, truth, strict=True)]
    index = {v: k for k, v in enumerate(variants)}
    pair_cover = []
    for p in res.preference.pairs:
        sa, sb = truth[index[p.a]], truth[index[p.b]]
        lo, hi = p.win_rate_ci
        if lo is not None and hi is not None:
            pair_cover.append(lo <= sa / (sa + sb) <= hi)
    return {"spearman": float(sps.spearmanr(fitted, truth).statistic), "cover": float(np.mean(cover)),
            "n_cover": len(cover), "pair_cover": float(np.mean(pair_cover)), "n_pair": len(pair_cover),
            "nu": res.preference.bt_tie_parameter}


def main(args: argparse.Namespace) -> None:
    started = time.time()
    lines = result_header("Pairs design: recovery of known Bradley-Terry-Davidson strengths") + [
        f"{args.reps} replications per row, {args.n_boot} bootstrap resamples; true strengths log-linear over a "
        "factor of 8; crowd: Davidson's model exactly, no rater or caption effects", "",
        " variants captions raters overlap  nu   spearman  strength coverage (s.e.)  win-rate coverage (s.e.)  nu^",
    ]
    for n, captions, raters, overlap, nu in SETTINGS:
        runs = [one_study(n, captions, raters, overlap, nu, seed, args.n_boot) for seed in range(args.reps)]
        cov = np.mean([r["cover"] for r in runs])
        n_cov = sum(r["n_cover"] for r in runs)
        pcov = np.mean([r["pair_cover"] for r in runs])
        n_pcov = sum(r["n_pair"] for r in runs)
        nus = [r["nu"] for r in runs if r["nu"] is not None]
        lines.append(f" {n:>8} {captions:>8} {raters:>6} {overlap:>7} {nu:>4.1f}   "
                     f"{np.mean([r['spearman'] for r in runs]):.3f}     "
                     f"{cov:.3f} ({math.sqrt(cov * (1 - cov) / n_cov):.3f})           "
                     f"{pcov:.3f} ({math.sqrt(pcov * (1 - pcov) / n_pcov):.3f})          "
                     f"{np.mean(nus) if nus else float('nan'):.3f}")
        print(lines[-1], file=sys.stderr)
    lines.append("(the coverage's s.e. treats the variants and pairs of one study as independent: too small)")
    lines.append(result_footer(started))
    emit_result("pairs_recovery", "\n".join(lines) + "\n", write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--n-boot", type=int, default=400)
    parser.add_argument("--write", action="store_true", help="save under bench/results/")
    main(parser.parse_args())
