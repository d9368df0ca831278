"""Rate intervals at true rates from 0.5 to the bound 1, in crowds unlike the one each
interval assumes: coverage and width of the interval the analysis reports for a rate (a
match ratio, an "exact count" rate, a win rate, a skip rate, the left image's share), before
and after rates moved to Wilson's score interval on the effective number of trials.

A study here is one rate: binary answers (a match, a left win) of raters to items, each
item answered by `overlap` raters. The crowds (defined in this file, not by evalstudy's
simulator) answer 1 with probability expit(mu + a_item + b_rater), mu set so that the
crowd's rate (over its items and raters, effects integrated out by Gauss-Hermite
quadrature) is the target:

* `iid`: no item or rater effects, every answer independent: the crowd Wilson's plain
  interval assumes (the reference row);
* `captions`: item effects N(0, 1.5^2): some images are hard for everyone (clustered captions);
* `raters`: rater effects N(0, 1^2) and uneven loads: each item's raters drawn with Zipf
  weights (1 / k), so a few raters give most answers;
* `extreme`: 10% of the raters always answer 1 (always "exact", always the left image), the
  others with item and rater effects N(0, 0.5^2): a few raters carry the variance;
* `spam`: 20% always answer 1, rater effects N(0, 0.5^2), and `raters`' uneven loads: a
  study's variance may rest on one or two heavy always-1 raters, or on none.

At a target of 1.0 every answer is 1 in every crowd: coverage is 1 for any interval that
reaches 1, and the width is what the row shows.

Intervals, all from the same answers:
* `bootstrap`: the crossed bootstrap's rescaled percentiles (`confidence.spread_intervals`, t
  under 10 items), range [0, 1]: the count task's rates, the ranking design's pair table, the
  skip rate and the left share before;
* `wilson`: Wilson's interval on the n answers as if independent (statsmodels'
  `proportion_confint(method="wilson")`), the simple-random-sample reference;
* `score z`: Wilson on the effective number of trials with the normal quantile
  (`confidence.score_intervals` without df): the pairs design's pair table before;
* `score t`: the same with t on the crossed variance's Satterthwaite df, what every rate
  reports now (`analysis.data.rate_intervals`).

A last table takes the pairs design's left-image share in `bench/pairs_crowds.py`'s crowds
with always-left raters (`raters`, `uneven`), that script's own simulator and truth.

    nice -n 10 .venv/bin/python bench/rate_bounds.py [--studies 300] [--left-studies 100] [--n-boot 200] [--write]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, interval_coverage, result_footer, result_header  # noqa: E402
from bench.pairs_crowds import CROWDS as PAIR_CROWDS  # noqa: E402
from bench.pairs_crowds import pair_truth, simulate, true_theta  # noqa: E402
from evalstudy import bootstrap as bs  # noqa: E402
from evalstudy import confidence  # noqa: E402
from evalstudy.analysis.data import rate_intervals  # noqa: E402
from evalstudy.analysis.pairdesign import _PairData, _ratio_intervals  # noqa: E402

LEVEL = 0.95
GH_NODES = 32
METHODS = ("bootstrap", "wilson", "score z", "score t")


@dataclass(frozen=True)
class Crowd:
    """How a crowd answers: P(1) = expit(mu + a_item + b_rater), a ~ N(0, item_sd^2),
    b ~ N(0, rater_sd^2); a share `always` of the raters answer 1 whatever the item; `zipf`:
    each item's raters drawn with weights 1 / k (uneven loads), else in turn (even loads)."""

    name: str
    item_sd: float = 0.0
    rater_sd: float = 0.0
    always: float = 0.0
    zipf: bool = False


CROWDS = {
    "iid": Crowd("iid"),
    "captions": Crowd("captions", item_sd=1.5),
    "raters": Crowd("raters", rater_sd=1.0, zipf=True),
    "extreme": Crowd("extreme", item_sd=0.5, rater_sd=0.5, always=0.1),
    "spam": Crowd("spam", rater_sd=0.5, always=0.2, zipf=True),
}
# (items, raters, raters per item): a cell of a few images, the audit's 30 units and 10 raters, a study
SIZES = ((8, 6, 3), (30, 10, 3), (120, 24, 3))
RATES = (0.5, 0.8, 0.95, 0.99, 1.0)


def crowd_rate(crowd: Crowd, mu: float) -> float:
    """The crowd's rate: P(1) over its items, raters and the always-1 share."""
    x, w = np.polynomial.hermite_e.hermegauss(GH_NODES)
    w = w / w.sum()
    sd = math.hypot(crowd.item_sd, crowd.rater_sd)
    careful = float((w * special.expit(mu + sd * x)).sum())
    return crowd.always + (1.0 - crowd.always) * careful


def solve_mu(crowd: Crowd, target: float) -> float:
    """mu giving the crowd the rate `target` (+inf at 1: every answer is 1)."""
    if target >= 1.0:
        return math.inf
    return optimize.brentq(lambda m: crowd_rate(crowd, m) - target, -30.0, 30.0, xtol=1e-12)


def assign_raters(crowd: Crowd, n_items: int, n_raters: int, overlap: int, rng: np.random.Generator) -> np.ndarray:
    """(n_items, overlap) the raters of each item: drawn by Zipf weights (uneven loads) in a
    `zipf` crowd, else dealt round a shuffled list (even loads)."""
    if crowd.zipf:
        weights = 1.0 / np.arange(1, n_raters + 1)
        weights /= weights.sum()
        return np.stack([rng.choice(n_raters, overlap, replace=False, p=weights) for _ in range(n_items)])
    order = rng.permutation(n_raters)
    return order[(np.arange(n_items)[:, None] * overlap + np.arange(overlap)[None, :]) % n_raters]


def draw_effects(crowd: Crowd, n_items: int, n_raters: int, overlap: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(item, rater, effect, always) per answer of one study: its raters (`assign_raters`),
    the item's plus the rater's normal effect on the logit, and whether the rater is one of
    the crowd's always-1 raters (drawn per rater)."""
    raters = assign_raters(crowd, n_items, n_raters, overlap, rng)
    item = np.repeat(np.arange(n_items), overlap)
    rater = raters.ravel()
    a = rng.normal(0.0, crowd.item_sd, n_items)
    b = rng.normal(0.0, crowd.rater_sd, n_raters)
    always = rng.random(n_raters) < crowd.always
    return item, rater, a[item] + b[rater], always[rater]


def simulate_rate(crowd: Crowd, mu: float, n_items: int, n_raters: int, overlap: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item, rater, answer) per answer of one study."""
    item, rater, effect, always = draw_effects(crowd, n_items, n_raters, overlap, rng)
    prob = special.expit(mu + effect) if math.isfinite(mu) else np.ones(len(item))
    answer = ((rng.random(len(item)) < prob) | always).astype(float)
    return item, rater, answer


def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson's (1927) interval for k successes in n independent trials."""
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def all_intervals(unit: np.ndarray, rater: np.ndarray, answer: np.ndarray, den: np.ndarray, n_boot: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The four intervals (2,) of the rate sum(answer) / sum(den), each row's item `unit`."""
    _, unit = np.unique(unit, return_inverse=True)
    _, rater = np.unique(rater, return_inverse=True)
    group = np.zeros(len(answer), dtype=np.int64)
    w_units = bs.draw_weights(int(unit.max()) + 1, n_boot, rng)
    v_eval = bs.draw_weights(int(rater.max()) + 1, n_boot, rng)
    est = np.array([answer.sum() / den.sum()])
    reps = bs.ratio_replicates(bs.crossed_sums(unit, rater, group, answer, 1, w_units, v_eval),
                               bs.crossed_sums(unit, rater, group, den, 1, w_units, v_eval))
    spread = bs.ratio_corrections(unit, rater, group, answer, den, 1, LEVEL)
    z, _ = bs.ratio_contributions(group, answer, den, 1)
    independent = np.array([(z ** 2).sum()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "bootstrap": confidence.spread_intervals(est, reps, LEVEL, spread, 0.0, 1.0)[0],
            "wilson": np.array(wilson(answer.sum(), den.sum())),
            "score z": confidence.score_intervals(est, spread.var, independent, den.sum(), LEVEL)[0],
            "score t": rate_intervals(unit, rater, group, answer, den, 1, LEVEL, spread)[0],
        }


def rate_rows(studies: int, n_boot: int, crowds: list[str]) -> list[str]:
    lines = [" crowd     items raters  rate  p^=1   " + "  ".join(f"{m + ' cov (se) width':<26}" for m in METHODS)
             + "  bootstrap zero-width"]
    for name in crowds:
        crowd = CROWDS[name]
        for n_items, n_raters, overlap in SIZES:
            for target in RATES:
                mu = solve_mu(crowd, target)
                rng = np.random.default_rng([n_items, int(round(target * 1000)), len(name)])
                runs, at_bound = [], 0
                for _ in range(studies):
                    item, rater, answer = simulate_rate(crowd, mu, n_items, n_raters, overlap, rng)
                    at_bound += int(answer.min() == 1.0)
                    runs.append(all_intervals(item, rater, answer, np.ones(len(answer)), n_boot, rng))
                tally = interval_coverage(runs, target, METHODS)
                cells = "  ".join(f"{c:.3f} ({s:.3f}) {w:.3f}".ljust(26) for c, s, w, _ in tally.values())
                lines.append(f" {name:<9} {n_items:>5} {n_raters:>6} {target:>5.2f} {at_bound / studies:>5.2f}   "
                             f"{cells}  {tally['bootstrap'][3]:.2f}")
                print(lines[-1], file=sys.stderr, flush=True)
    return lines


# (variants, raters, tasks each, overlap): bench/pairs_crowds.py's two smaller sizes
LEFT_SIZES = ((5, 20, 20, 4), (8, 30, 30, 6))


def left_rows(studies: int, n_boot: int) -> list[str]:
    """The left image's share of untied rankings, as `pairdesign.pair_position_bias` computes
    it before (the crossed bootstrap, `_ratio_intervals`) and now (`rate_intervals`)."""
    lines = [" crowd     variants raters  always-left raters (mean)  " + "  ".join(
        f"{m + ' cov (se) width':<26}" for m in METHODS)]
    for name in ("raters", "uneven"):
        crowd = PAIR_CROWDS[name]
        for n, raters, tasks, overlap in LEFT_SIZES:
            theta = true_theta(n, 2.0)
            _, _, share = pair_truth(crowd, theta)
            runs, spammers = [], []
            for seed in range(studies):
                table = simulate(crowd, theta, raters, tasks, overlap, 50_000 + 1000 * n + seed)
                ev_ids, ev_code = np.unique(table["evaluator_id"], return_inverse=True)
                data = _PairData.build(table, ev_code, [f"m{v:02d}" for v in range(n)])
                rows = np.flatnonzero(data.done)
                left = np.where(data.a_left[rows], data.a_win[rows], data.b_win[rows])
                right = np.where(data.a_left[rows], data.b_win[rows], data.a_win[rows])
                decided = (left + right) > 0
                rows, left, den = rows[decided], left[decided], (left + right)[decided]
                rng = np.random.default_rng(seed)
                out = all_intervals(data.ranking_unit[rows], data.ranking_evaluator[rows], left, den, n_boot, rng)
                # The bootstrap as the analysis ran it, on all done rankings (ties in no denominator).
                w_units = bs.draw_weights(data.n_units, n_boot, rng)
                v_eval = bs.draw_weights(len(ev_ids), n_boot, rng)
                done = np.flatnonzero(data.done)
                lw = np.where(data.a_left[done], data.a_win[done], data.b_win[done])
                rw = np.where(data.a_left[done], data.b_win[done], data.a_win[done])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    _, ci, _, _ = _ratio_intervals(data, done, np.zeros(len(done), dtype=np.int64), lw, lw + rw, 1,
                                                   w_units, v_eval, LEVEL, 0.0, 1.0)
                out["bootstrap"] = ci[0]
                runs.append(out)
                by_rater = np.bincount(data.ranking_evaluator[rows], weights=left)
                n_by_rater = np.bincount(data.ranking_evaluator[rows])
                spammers.append(int(((by_rater == n_by_rater) & (n_by_rater >= 5)).sum()))
            tally = interval_coverage(runs, share, METHODS)
            cells = "  ".join(f"{c:.3f} ({s:.3f}) {w:.3f}".ljust(26) for c, s, w, _ in tally.values())
            lines.append(f" {name:<9} {n:>8} {raters:>6}  {np.mean(spammers):>26.2f}  {cells}")
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def main(args: argparse.Namespace) -> None:
    started = time.time()
    crowds = args.crowds.split(",")
    lines = result_header("Rate intervals from 0.5 to the bound: coverage and width") + [
        f"{args.studies} studies per row, {args.n_boot} bootstrap resamples, 95% intervals; crowds and "
        "intervals in bench/rate_bounds.py's docstring; p^=1: share of studies whose every answer was 1; "
        "cov (binomial s.e. over studies) and mean width per interval; bootstrap zero-width: share of its "
        "intervals of zero width", "",
        *rate_rows(args.studies, args.n_boot, crowds)]
    if args.left_studies:
        lines += ["", f"The pairs design's left-image share (bench/pairs_crowds.py's crowds and truth: 6% of raters "
                  f"always pick the left image, 6% pick at random), {args.left_studies} studies per row; "
                  "always-left raters: those of 5+ untied rankings all won by the left image", "",
                  *left_rows(args.left_studies, args.n_boot)]
    lines.append(result_footer(started))
    emit_result("rate_bounds", "\n".join(lines) + "\n", write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--left-studies", type=int, default=100)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--crowds", default=",".join(CROWDS))
    parser.add_argument("--write", action="store_true", help="save under bench/results/")
    main(parser.parse_args())
