"""The position-bias test's size and power in crowds unlike evalstudy.simulate's.

Each study lays its rankings out by the project's own plan (`design.plan_assignments`:
Williams rows balanced over raters and captions) and draws the ranks from this file's
crowd model: utility of variant v in a ranking = quality_v + a caption effect per variant
(normal, or t with 2 or 3 df: heavy tails) + the rater's taste per variant + noise (a
share of raters three times as noisy) + `bias` if v is shown leftmost. With a tie margin,
a rater ties images whose utilities share a cell of a grid at a random offset (mid-ranks,
as the analysis scores them). With dropouts, a share of raters stop part-way through their
list, so the layouts are no longer balanced within them.

Rows: the share of studies with p <= 0.05 (no bias: the size, which should be 0.05; with
a bias: the power) with its binomial standard error, for `stats.position_permutation_test`
as it is now and, with --baseline COMMIT, as it was at that commit (its evalstudy/stats.py
read from git), on the same studies.

    nice -n 10 .venv/bin/python bench/position_test.py [--studies 1000] [--baseline 3cd81c7] [--write]
    nice -n 10 .venv/bin/python bench/position_test.py --only dropouts --studies 2000 --append
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header, save_result  # noqa: E402
from evalstudy import stats  # noqa: E402
from evalstudy.design import plan_assignments  # noqa: E402

ALPHA = 0.05
N_PERM = 199  # p = (1 + exceed) / 200: rejecting at p <= 0.05 has size exactly 0.05 under exchangeability


@dataclass(frozen=True)
class Crowd:
    name: str
    n_captions: int
    n_raters: int
    overlap: int
    m: int                       # images per ranking
    taste_sd: float = 0.7        # rater's taste per variant
    caption_df: float = 3.0      # t degrees of freedom of caption effects (inf: normal)
    noisy: float = 0.3           # share of raters three times as noisy
    tie_margin: float = 0.0
    dropouts: float = 0.0        # share of raters who stop after 30-90% of their list
    bias: float = 0.0            # utility added to the leftmost image


CROWDS = [
    Crowd("30 captions, 10 raters, overlap 4, 4 images", 30, 10, 4, 4),
    Crowd("strong tastes, t(2) captions, 10 raters, ov 4", 30, 10, 4, 4, taste_sd=1.5, caption_df=2.0),
    Crowd("few raters: 4, overlap 2, 24 captions, 4 images", 24, 4, 2, 4),
    Crowd("many raters: 48, overlap 3, 80 captions", 80, 48, 3, 4),
    Crowd("pairwise with ties, 12 raters, overlap 3", 40, 12, 3, 2, tie_margin=0.5),
    Crowd("3 images with ties, 9 raters, overlap 3", 36, 9, 3, 3, tie_margin=0.4),
    Crowd("5 images with ties, 6 raters, overlap 2", 30, 6, 2, 5, tie_margin=0.4),
    Crowd("6 images, 12 raters, overlap 5", 30, 12, 5, 6, caption_df=np.inf),
    Crowd("dropouts: 40% of 10 raters stop early, ov 3", 40, 10, 3, 4, dropouts=0.4),
]
# Appended after the power rows, so that every earlier row keeps its seed: the dropout
# crowd without noisy raters (is the dropout crowd's excess the raters' unequal noise?).
MORE_CROWDS = [
    Crowd("dropouts as above, no noisy raters", 40, 10, 3, 4, noisy=0.0, dropouts=0.4),
]
POWER_CROWDS = [
    Crowd("30 captions, 10 raters, overlap 4, 4 images", 30, 10, 4, 4, bias=0.3),
    Crowd("pairwise with ties, 12 raters, overlap 3", 40, 12, 3, 2, tie_margin=0.5, bias=0.3),
    Crowd("dropouts: 40% of 10 raters stop early, ov 3", 40, 10, 3, 4, dropouts=0.4, bias=0.3),
]


def draw_study(crowd: Crowd, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ranks (N, m) mid-ranks 1 = best, positions (N, m), caption (N,), rater (N,))."""
    m = crowd.m
    plans = plan_assignments([], [f"c{k}" for k in range(crowd.n_captions)], crowd.n_raters,
                             crowd.overlap, int(rng.integers(1 << 30)), n_variants=m)
    quality = np.linspace(0.0, 1.0, m)
    if np.isfinite(crowd.caption_df):
        caption = 0.5 * rng.standard_t(crowd.caption_df, (crowd.n_captions, m))
    else:
        caption = 0.5 * rng.normal(size=(crowd.n_captions, m))
    taste = rng.normal(0.0, crowd.taste_sd, (crowd.n_raters, m))
    noise = np.where(rng.random(crowd.n_raters) < crowd.noisy, 1.2, 0.4)
    stops = np.where(rng.random(crowd.n_raters) < crowd.dropouts,
                     rng.uniform(0.3, 0.9, crowd.n_raters), 1.0)
    positions, caption_of, rater_of = [], [], []
    for plan in plans:
        shown = [i for t, i in plan.items if t == "rank"]
        for item in shown[: int(round(stops[plan.slot] * len(shown)))]:
            pos = np.empty(m, dtype=int)
            pos[np.array(plan.positions[item])] = np.arange(m)  # layout: variants left to right
            positions.append(pos)
            caption_of.append(int(item[1:]))
            rater_of.append(plan.slot)
    pos_a, cap, rat = np.array(positions), np.array(caption_of), np.array(rater_of)
    u = (quality + caption[cap] + taste[rat] + rng.normal(size=pos_a.shape) * noise[rat, None]
         + crowd.bias * (pos_a == 0))
    if crowd.tie_margin > 0:  # images in one cell of a randomly offset grid are tied
        u = np.floor(u / crowd.tie_margin + rng.random((len(u), 1)))
    ranks = np.apply_along_axis(sps.rankdata, 1, -u)  # mid-ranks, 1 = best
    return ranks, pos_a, cap, rat


def load_baseline(commit: str) -> types.ModuleType:
    """evalstudy/stats.py as it was at `commit`, as a module."""
    src = subprocess.run(["git", "show", f"{commit}:evalstudy/stats.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    module = types.ModuleType(f"stats_at_{commit}")
    exec(compile(src, f"{commit}:evalstudy/stats.py", "exec"), module.__dict__)
    return module


def rejection_rates(crowd: Crowd, tests: dict[str, Callable], n_studies: int,
                    seed: int, index: int) -> dict[str, float]:
    """Share of `n_studies` studies of the crowd with p <= ALPHA, per test (same studies)."""
    rng = np.random.default_rng([seed, index, int(crowd.bias > 0)])
    hits = {name: 0 for name in tests}
    for s in range(n_studies):
        study = draw_study(crowd, rng)
        for name, test in tests.items():
            out = test(*study, n_perm=N_PERM, rng=np.random.default_rng([seed, index, s]))
            # a baseline from before stats.PositionTestResult returns a dict
            p = out["p_value"] if isinstance(out, dict) else out.p_value
            hits[name] += p <= ALPHA
    return {name: h / n_studies for name, h in hits.items()}


def main(args: argparse.Namespace) -> str:
    started = time.time()
    tests: dict[str, Callable] = {"now": stats.position_permutation_test}
    if args.baseline:
        tests[f"at {args.baseline}"] = load_baseline(args.baseline).position_permutation_test
    lines = [*result_header("The position-bias test's size and power in crowds unlike evalstudy.simulate's "
                            "(bench/position_test.py)"),
             f"layouts by design.plan_assignments (Williams rows); {N_PERM} permutations per test; "
             f"reject at p <= {ALPHA}; tests: " + ", ".join(tests),
             "",
             f"{'crowd':<50}{'bias':>5}{'studies':>8}"
             + "".join(f"{name:>16}{'s.e.':>7}" for name in tests)]
    footer = ["", "rate: share of studies with p <= 0.05 (bias 0: the size, target 0.05; bias > 0: the "
              "power); s.e.: its binomial standard error (one study per entry). Captions' effects t(3) "
              "unless named, raters' tastes sd 0.7 of a quality spread of 1.0, 30% of raters three "
              "times as noisy."]
    runs = [(i, c, args.studies) for i, c in enumerate(CROWDS)]
    runs += [(len(CROWDS) + i, c, args.power_studies) for i, c in enumerate(POWER_CROWDS)]
    runs += [(len(CROWDS) + len(POWER_CROWDS) + i, c, args.studies) for i, c in enumerate(MORE_CROWDS)]
    runs = [r for r in runs if args.only in r[1].name]
    for done, (index, crowd, n) in enumerate(runs, start=1):
        rates = rejection_rates(crowd, tests, n, args.seed, index)
        lines.append(f"{crowd.name:<50}{crowd.bias:>5.1f}{n:>8}"
                     + "".join(f"{r:>16.4f}{np.sqrt(r * (1 - r) / n):>7.4f}" for r in rates.values()))
        print(lines[-1], flush=True)
        if args.write and done < len(runs) and not args.append:
            save_result("position_test", "\n".join(lines + footer + [
                f"partial: {done} of {len(runs)} rows after {time.time() - started:.0f} s"]))
    lines += footer + [result_footer(started)]
    if args.append:  # another table under the day's file (e.g. more studies of some crowds)
        print(f"wrote {save_result('position_test', chr(10).join(lines) + chr(10) * 2, append=True)}",
              file=sys.stderr)
        return "\n".join(lines)
    return emit_result("position_test", "\n".join(lines), write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=1000, help="null studies per crowd")
    parser.add_argument("--power-studies", type=int, default=300, help="studies per biased crowd")
    parser.add_argument("--baseline", default="", help="a commit whose test to run on the same studies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run the crowds whose name contains this")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--append", action="store_true", help="add the table to the day's file")
    main(parser.parse_args())
