"""The interval of a paired difference of two rates (a planned comparison of two variants'
match ratios) at true rates from 0.5 to the bound 1: coverage and width of the crossed
bootstrap's interval the analysis reported before, against Newcombe's hybrid score interval
built from each rate's own score interval (`analysis.data.rate_difference_interval`).

A study here is two rates on the same items and raters: each item has an image of each
variant and each of its `overlap` raters answers both. The crowds are bench/rate_bounds.py's
(`iid`, `captions`, `raters`, `extreme`, `spam`): an answer to variant v is 1 with probability
expit(mu_v + a_item + b_rater), the item's and the rater's effects shared by both variants
(a hard prompt is hard for both, a careless rater careless with both), so the two rates are
positively correlated wherever the crowd has effects; always-1 raters answer 1 to both. mu_v is
set so that the crowd's rate for v is its target; the truth is the difference of the targets.

Intervals, all from the same answers and the analysis' own functions:
* `bootstrap`: the crossed bootstrap's rescaled percentiles of the difference (t under 10
  items), range [-1, 1], as `significance._tests_section` computed it before
  (`confidence.spread_intervals` with `significance.planned_difference`'s spread);
* `newcombe`: Newcombe's method 10 from each rate's Wilson interval on its effective number of
  trials, with t on the fewer of the rate's df and the difference's (`planned_difference`'s
  Satterthwaite df), and the correlation from the crossed variances with Newcombe's
  continuity correction (`data.rate_difference_interval`), what the analysis reports now;
* `own df`: the same with each rate's t on its own df (`data.rate_intervals` as it is);
* `no corr.`: `newcombe` without the correction of a positive correlation;
* `phi=0`: `newcombe` as if the two rates were independent (Newcombe's unpaired method 10).

At targets of 1 and 1 every answer is 1 in every crowd: every interval that holds 0 covers,
and the width is what the row shows.

    nice -n 10 .venv/bin/python bench/pair_difference.py [--studies 1000] [--n-boot 200] [--crowds iid,...] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, interval_coverage, result_footer, result_header  # noqa: E402
from bench.rate_bounds import CROWDS, SIZES, Crowd, assign_raters, solve_mu  # noqa: E402
from evalstudy import bootstrap as bs  # noqa: E402
from evalstudy import confidence  # noqa: E402
from evalstudy.analysis.data import paired_rate_correlation, rate_difference_interval, rate_intervals  # noqa: E402
from evalstudy.analysis.significance import planned_difference  # noqa: E402

LEVEL = 0.95
METHODS = ("bootstrap", "newcombe", "own df", "no corr.", "phi=0")
# (rate a, rate b): differences of 0 from the middle to the bound, then differences that are not 0
PAIRS = ((0.5, 0.5), (0.8, 0.8), (0.95, 0.95), (0.99, 0.99), (1.0, 1.0), (0.8, 0.5), (0.95, 0.8), (1.0, 0.9))


def simulate_pair(crowd: Crowd, mus: tuple[float, float], n_items: int, n_raters: int, overlap: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(item, rater, variant, answer) per answer of one study: every item's raters answer
    both variants' images."""
    raters = assign_raters(crowd, n_items, n_raters, overlap, rng)
    item = np.tile(np.repeat(np.arange(n_items), overlap), 2)
    rater = np.tile(raters.ravel(), 2)
    variant = np.repeat(np.arange(2), n_items * overlap)
    a = rng.normal(0.0, crowd.item_sd, n_items)
    b = rng.normal(0.0, crowd.rater_sd, n_raters)
    always = rng.random(n_raters) < crowd.always
    mu = np.array(mus)[variant]
    with np.errstate(invalid="ignore"):
        prob = np.where(np.isfinite(mu), special.expit(mu + a[item] + b[rater]), 1.0)
    answer = ((rng.random(len(item)) < prob) | always[rater]).astype(float)
    return item, rater, variant, answer


def all_intervals(item: np.ndarray, rater: np.ndarray, variant: np.ndarray, answer: np.ndarray, n_boot: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The four intervals (2,) of rate(0) - rate(1)."""
    _, unit = np.unique(item, return_inverse=True)
    _, ev = np.unique(rater, return_inverse=True)
    den = np.ones(len(answer))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        own = bs.ratio_corrections(unit, ev, variant, answer, den, 2, LEVEL)
        diff, spread = planned_difference(unit, ev, variant, answer, den, 0, 1, 2, LEVEL, own.var)
        w_units = bs.draw_weights(int(unit.max()) + 1, n_boot, rng)
        v_eval = bs.draw_weights(int(ev.max()) + 1, n_boot, rng)
        reps = bs.ratio_replicates(bs.crossed_sums(unit, ev, variant, answer, 2, w_units, v_eval),
                                   bs.crossed_sums(unit, ev, variant, den, 2, w_units, v_eval))
        boot = confidence.spread_intervals(np.array([diff]), (reps[:, 0] - reps[:, 1])[:, None], LEVEL, spread,
                                           -1.0, 1.0)[0]
        new = rate_difference_interval(unit, ev, variant, answer, den, 0, 1, 2, LEVEL, own, spread)
        trials = np.bincount(variant, weights=den, minlength=2)
        est = np.bincount(variant, weights=answer, minlength=2) / trials
        # The rates' intervals on their own df, and on the fewer of theirs and the difference's.
        own_df = rate_intervals(unit, ev, variant, answer, den, 2, LEVEL, own)
        fewer = rate_intervals(unit, ev, variant, answer, den, 2, LEVEL,
                               own._replace(df=np.minimum(own.df, spread.df[0])))
        phi = paired_rate_correlation(own.var[0], own.var[1], spread.var[0], trials[0], trials[1])
        raw = paired_rate_correlation(own.var[0], own.var[1], spread.var[0], trials[0], trials[1], continuity=False)
        out = {"bootstrap": boot, "newcombe": new}
        for name, ci, r in (("own df", own_df, phi), ("no corr.", fewer, raw), ("phi=0", fewer, 0.0)):
            out[name] = confidence.paired_score_difference(est[:1], ci[:1], est[1:], ci[1:], np.atleast_1d(r))[0]
    return out


def rows(studies: int, n_boot: int, crowds: list[str], sizes: tuple[tuple[int, int, int], ...]
         ) -> tuple[list[str], list[tuple[float, dict[str, tuple[float, float, float, float]]]]]:
    """The table's lines and, per row, (truth, tally)."""
    lines = [" crowd     items raters  rate a rate b  both=1  " + "  ".join(f"{m + ' cov (se) width':<26}"
                                                                      for m in METHODS) + "  bootstrap zero-width"]
    tallies = []
    for name in crowds:
        crowd = CROWDS[name]
        for n_items, n_raters, overlap in sizes:
            for ta, tb in PAIRS:
                mus = (solve_mu(crowd, ta), solve_mu(crowd, tb))
                rng = np.random.default_rng([n_items, int(round(ta * 1000)), int(round(tb * 1000)), len(name)])
                runs, both_one = [], 0
                for _ in range(studies):
                    item, rater, variant, answer = simulate_pair(crowd, mus, n_items, n_raters, overlap, rng)
                    both_one += int(answer.min() == 1.0)
                    runs.append(all_intervals(item, rater, variant, answer, n_boot, rng))
                t = interval_coverage(runs, ta - tb, METHODS)
                tallies.append((ta - tb, t))
                cells = "  ".join(f"{c:.3f} ({s:.3f}) {w:.3f}".ljust(26) for c, s, w, _ in t.values())
                lines.append(f" {name:<9} {n_items:>5} {n_raters:>6}  {ta:>6.2f} {tb:>6.2f}  "
                             f"{both_one / studies:>6.2f}  {cells}  {t['bootstrap'][3]:.2f}")
                print(lines[-1], file=sys.stderr, flush=True)
    return lines, tallies


def verdict(tallies: list[tuple[float, dict[str, tuple[float, float, float, float]]]]) -> list[str]:
    """The adoption rule, computed: the new interval's coverage at least the old one's over
    all rows, and at least 0.93 in every row where the old one is never of zero width."""
    old = np.array([t["bootstrap"][0] for _, t in tallies])
    new = np.array([t["newcombe"][0] for _, t in tallies])
    zero = np.array([t["bootstrap"][3] for _, t in tallies])
    nondegenerate = zero == 0
    lines = [f"mean coverage over all {len(tallies)} rows: bootstrap {old.mean():.3f}, newcombe {new.mean():.3f}; "
             f"lowest: bootstrap {old.min():.3f}, newcombe {new.min():.3f}"]
    if nondegenerate.any():
        lines.append(f"rows where the bootstrap is never of zero width: {int(nondegenerate.sum())}; newcombe's lowest "
                     f"coverage there {new[nondegenerate].min():.3f} (bootstrap {old[nondegenerate].min():.3f})")
    passed = bool(new.mean() >= old.mean() and (not nondegenerate.any() or new[nondegenerate].min() >= 0.93))
    lines.append("adoption rule (mean coverage >= the bootstrap's, >= 0.93 wherever the bootstrap is not "
                 f"degenerate): {'met' if passed else 'NOT met'}")
    return lines


def main(args: argparse.Namespace) -> None:
    started = time.time()
    sizes = tuple(s for s in SIZES if s[0] in args.items) if args.items else SIZES
    table, tallies = rows(args.studies, args.n_boot, args.crowds.split(","), sizes)
    lines = result_header("Paired differences of two rates, from 0.5 to the bound: coverage and width") + [
        f"{args.studies} studies per row, {args.n_boot} bootstrap resamples, 95% intervals; crowds and intervals in "
        "bench/pair_difference.py's docstring; truth: rate a - rate b; both=1: share of studies whose every answer "
        "(both variants) was 1; cov (binomial s.e. over studies) and mean width per interval; bootstrap zero-width: "
        "share of its intervals of zero width", "", *table, "", *verdict(tallies), result_footer(started)]
    emit_result("pair_difference", "\n".join(lines) + "\n", write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--crowds", default=",".join(CROWDS))
    parser.add_argument("--items", type=int, nargs="*", help="only the sizes with these numbers of items")
    parser.add_argument("--write", action="store_true", help="save under bench/results/")
    main(parser.parse_args())
