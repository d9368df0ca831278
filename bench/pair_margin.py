"""The interval of a pairs-design win margin, (a wins - b wins) / rankings of the pair, at
true margins from 0 to the bound 1, with and without ties: coverage and width of the crossed
bootstrap's interval (the analysis before the score intervals), of Wilson's interval of the
ties-half win share mapped through 2 q - 1 (the analysis before this bench), and of Tango's
trinomial score interval (`analysis.data.margin_intervals`, what the analysis reports now).

A study here is one pair of variants: each caption is ranked by `overlap` raters, one
ranking each, won by a, tied or won by b. The crowds are bench/rate_bounds.py's (`iid`,
`captions`, `raters`, `extreme`, `spam`) with Davidson's trinomial in place of a Bernoulli
answer: with s = mu + a_caption + b_rater, P(a wins) = e^(s/2) / D, P(b wins) = e^(-s/2) / D,
P(tie) = nu / D, D = e^(s/2) + e^(-s/2) + nu; nu = 0 (ties not allowed) or 1 (a third of the
rankings tied where a and b are even). A crowd's always-1 raters always rank a first (a fan
of one model). mu is set so that the crowd's margin (effects integrated out by Gauss-Hermite
quadrature) is the target; at a target of 1 every ranking is won by a.

Intervals, all from the same rankings:
* `bootstrap`: the crossed bootstrap's rescaled percentiles of the margin (t under 10
  captions), range [-1, 1] (`confidence.spread_intervals`, as `pairdesign._ratio_intervals`);
* `ties-half`: Wilson's interval of q = (wins + ties / 2) / n on the effective number of
  rankings with t on the crossed df (`data.rate_intervals`), mapped through 2 q - 1;
* `tango`: Tango's score interval for the trinomial's margin on the effective number of
  rankings with t on the same df (`data.margin_intervals`). Without ties it is `ties-half`.

    nice -n 10 .venv/bin/python bench/pair_margin.py [--studies 400] [--n-boot 200] [--crowds iid,...] [--write]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, interval_coverage, result_footer, result_header  # noqa: E402
from bench.rate_bounds import CROWDS, GH_NODES, Crowd, assign_raters  # noqa: E402
from evalstudy import bootstrap as bs  # noqa: E402
from evalstudy import confidence  # noqa: E402
from evalstudy.analysis.data import margin_intervals, rate_intervals  # noqa: E402

LEVEL = 0.95
METHODS = ("bootstrap", "ties-half", "tango")
MARGINS = (0.0, 0.5, 0.9, 0.98, 1.0)
# Davidson's tie parameter: rankings without ties, and with a third tied between even variants
TIES = (0.0, 1.0)
# (captions, raters, raters per caption): a pilot's 8 rankings of a pair, 24, 90
SIZES = ((4, 4, 2), (8, 6, 3), (30, 10, 3))


def outcome_shares(s: np.ndarray, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """(P(a wins), P(b wins)) of Davidson's trinomial at log-strength differences s."""
    up, down = np.exp(s / 2.0), np.exp(-s / 2.0)
    total = up + down + nu
    return up / total, down / total


def crowd_margin(crowd: Crowd, mu: float, nu: float) -> float:
    """The crowd's margin: P(a wins) - P(b wins) over its captions, raters and fans of a."""
    x, w = np.polynomial.hermite_e.hermegauss(GH_NODES)
    w = w / w.sum()
    win, loss = outcome_shares(mu + math.hypot(crowd.item_sd, crowd.rater_sd) * x, nu)
    return crowd.always + (1.0 - crowd.always) * float((w * (win - loss)).sum())


def solve_margin_mu(crowd: Crowd, target: float, nu: float) -> float:
    """mu giving the crowd the margin `target` (+inf at 1: a wins every ranking)."""
    if target >= 1.0:
        return math.inf
    return optimize.brentq(lambda m: crowd_margin(crowd, m, nu) - target, -60.0, 60.0, xtol=1e-12)


def simulate_margin(crowd: Crowd, mu: float, nu: float, n_items: int, n_raters: int, overlap: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(caption, rater, a won, b won) per ranking of one study."""
    raters = assign_raters(crowd, n_items, n_raters, overlap, rng)
    item = np.repeat(np.arange(n_items), overlap)
    rater = raters.ravel()
    a = rng.normal(0.0, crowd.item_sd, n_items)
    b = rng.normal(0.0, crowd.rater_sd, n_raters)
    fan = rng.random(n_raters) < crowd.always
    if math.isfinite(mu):
        win, loss = outcome_shares(mu + a[item] + b[rater], nu)
    else:
        win, loss = np.ones(len(item)), np.zeros(len(item))
    u = rng.random(len(item))
    won = (u < win) | fan[rater]
    lost = ~won & (u >= 1.0 - loss)
    return item, rater, won.astype(float), lost.astype(float)


def all_intervals(item: np.ndarray, rater: np.ndarray, won: np.ndarray, lost: np.ndarray, n_boot: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The three intervals (2,) of the margin (sum(won) - sum(lost)) / rankings."""
    _, unit = np.unique(item, return_inverse=True)
    _, ev = np.unique(rater, return_inverse=True)
    group = np.zeros(len(won), dtype=np.int64)
    ones = np.ones(len(won))
    margin = won - lost
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        w_units = bs.draw_weights(int(unit.max()) + 1, n_boot, rng)
        v_eval = bs.draw_weights(int(ev.max()) + 1, n_boot, rng)
        reps = bs.ratio_replicates(bs.crossed_sums(unit, ev, group, margin, 1, w_units, v_eval),
                                   bs.crossed_sums(unit, ev, group, ones, 1, w_units, v_eval))
        spread = bs.ratio_corrections(unit, ev, group, margin, ones, 1, LEVEL)
        est = np.array([margin.mean()])
        boot = confidence.spread_intervals(est, reps, LEVEL, spread, -1.0, 1.0)[0]
        half = 2.0 * rate_intervals(unit, ev, group, (margin + 1.0) / 2.0, ones, 1, LEVEL)[0] - 1.0
        tango = margin_intervals(unit, ev, group, won, lost, 1, LEVEL)[0]
    return {"bootstrap": boot, "ties-half": half, "tango": tango}


def rows(studies: int, n_boot: int, crowds: list[str], sizes: tuple[tuple[int, int, int], ...] = SIZES,
         margins: tuple[float, ...] = MARGINS) -> tuple[list[str], list[dict[str, tuple[float, float, float, float]]]]:
    """The table's lines and, per row, the tally (coverage, s.e., width, zero-width share)."""
    lines = [" crowd     ties rankings margin  sweep  tied  " + "  ".join(f"{m + ' cov (se) width':<26}"
                                                                          for m in METHODS)
             + "  bootstrap zero-width"]
    tallies = []
    for name in crowds:
        crowd = CROWDS[name]
        for nu in TIES:
            for n_items, n_raters, overlap in sizes:
                for target in margins:
                    mu = solve_margin_mu(crowd, target, nu)
                    rng = np.random.default_rng([n_items, int(round(target * 1000)), int(nu), len(name)])
                    runs, sweeps, tied = [], 0, 0.0
                    for _ in range(studies):
                        item, rater, won, lost = simulate_margin(crowd, mu, nu, n_items, n_raters, overlap, rng)
                        sweeps += int(won.min() == 1.0)
                        tied += float(1.0 - won.mean() - lost.mean())
                        runs.append(all_intervals(item, rater, won, lost, n_boot, rng))
                    tally = interval_coverage(runs, target, METHODS)
                    tallies.append(tally)
                    cells = "  ".join(f"{c:.3f} ({s:.3f}) {w:.3f}".ljust(26) for c, s, w, _ in tally.values())
                    lines.append(f" {name:<9} {'yes' if nu else 'no':<4} {n_items * overlap:>8} {target:>6.2f}  "
                                 f"{sweeps / studies:>5.2f}  {tied / studies:>4.2f}  {cells}  "
                                 f"{tally['bootstrap'][3]:.2f}")
                    print(lines[-1], file=sys.stderr, flush=True)
    return lines, tallies


def verdict(tallies: list[dict[str, tuple[float, float, float, float]]]) -> list[str]:
    """The adoption rule, computed for Tango's interval against the bootstrap: coverage at
    least the bootstrap's over all rows, and at least 0.93 in every row where the bootstrap is
    never of zero width; and how it compares with the ties-half interval it replaces."""
    cov = {m: np.array([t[m][0] for t in tallies]) for m in METHODS}
    width = {m: np.array([t[m][2] for t in tallies]) for m in METHODS}
    nondegenerate = np.array([t["bootstrap"][3] for t in tallies]) == 0
    lines = [f"mean coverage over all {len(tallies)} rows: " + ", ".join(f"{m} {cov[m].mean():.3f}" for m in METHODS)
             + "; lowest: " + ", ".join(f"{m} {cov[m].min():.3f}" for m in METHODS),
             "mean width: " + ", ".join(f"{m} {width[m].mean():.3f}" for m in METHODS)]
    if nondegenerate.any():
        lines.append(f"rows where the bootstrap is never of zero width: {int(nondegenerate.sum())}; lowest coverage "
                     "there: " + ", ".join(f"{m} {cov[m][nondegenerate].min():.3f}" for m in METHODS))
    passed = bool(cov["tango"].mean() >= cov["bootstrap"].mean()
                  and (not nondegenerate.any() or cov["tango"][nondegenerate].min() >= 0.93))
    lines.append("adoption rule for tango (mean coverage >= the bootstrap's, >= 0.93 wherever the bootstrap is not "
                 f"degenerate): {'met' if passed else 'NOT met'}")
    return lines


def main(args: argparse.Namespace) -> None:
    started = time.time()
    sizes = tuple(s for s in SIZES if s[0] * s[2] in args.rankings) if args.rankings else SIZES
    table, tallies = rows(args.studies, args.n_boot, args.crowds.split(","), sizes)
    lines = result_header("Win margins of the pairs design, from 0 to the bound: coverage and width") + [
        f"{args.studies} studies per row, {args.n_boot} bootstrap resamples, 95% intervals; crowds and intervals in "
        "bench/pair_margin.py's docstring; ties: Davidson's nu = 1 (yes) or 0 (no); rankings: of the pair per study; "
        "sweep: share of studies where a won every ranking; tied: mean share of tied rankings; cov (binomial s.e. "
        "over studies) and mean width per interval; bootstrap zero-width: share of its intervals of zero width", "",
        *table, "", *verdict(tallies), result_footer(started)]
    emit_result("pair_margin", "\n".join(lines) + "\n", write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--crowds", default="iid,captions,raters,extreme")
    parser.add_argument("--rankings", type=int, nargs="*", help="only the sizes with these rankings per pair")
    parser.add_argument("--write", action="store_true", help="save under bench/results/")
    main(parser.parse_args())
