"""The interval of a pairs-design win margin, (a wins - b wins) / rankings of the pair, at
true margins from 0 to the bound 1, with and without ties: coverage and width of the crossed
bootstrap's interval (the analysis before the score intervals), of Wilson's interval of the
ties-half win share mapped through 2 q - 1 (`pairdesign.margin_interval`, what the analysis
reports), and of Tango's score interval for the trinomial win / tie / loss (measured here,
not adopted: bench/results/pair_margin-2026-12-08.txt, docs/statistics.md).

A study here is one pair of variants: each caption is ranked by `overlap` raters, one
ranking each, won by a, tied or won by b. The crowds are bench/rate_bounds.py's (`iid`,
`captions`, `raters`, `extreme`, `spam`) with Davidson's trinomial in place of a Bernoulli
answer: with s = mu + a_caption + b_rater, P(a wins) = e^(s/2) / D, P(b wins) = e^(-s/2) / D,
P(tie) = nu / D, D = e^(s/2) + e^(-s/2) + nu; nu = 0 (ties not allowed), 1 (a third of the
rankings tied where a and b are even) or 4 (two thirds). A crowd's always-1 raters always rank
a first (a fan of one model). mu is set so that the crowd's margin (effects integrated out by
Gauss-Hermite quadrature) is the target; at a target of 1 every ranking is won by a.

Intervals, all from the same rankings:
* `bootstrap`: the crossed bootstrap's rescaled percentiles of the margin (t under 10
  captions), range [-1, 1] (`confidence.spread_intervals`, as `pairdesign._ratio_intervals`);
* `ties-half`: Wilson's interval of q = (wins + ties / 2) / n on the effective number of
  rankings with t on the crossed df (`data.rate_intervals`), mapped through 2 q - 1;
* `tango`: Tango's score interval for the difference of the two discordant shares of a paired
  2 x 2 table (Tango 1998; a win is the cell b, a loss c, a tie the concordant cells) on the
  margin's effective number of rankings, n / deff, with t on the same df
  (`trinomial_margin_interval`). Without ties it is `ties-half`.

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
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, interval_coverage, result_footer, result_header  # noqa: E402
from bench.rate_bounds import CROWDS, GH_NODES, Crowd, draw_effects  # noqa: E402
from evalstudy import bootstrap as bs  # noqa: E402
from evalstudy import confidence  # noqa: E402
from evalstudy.analysis.data import rate_intervals  # noqa: E402

LEVEL = 0.95
METHODS = ("bootstrap", "ties-half", "tango")
MARGINS = (0.0, 0.5, 0.9, 0.98, 1.0)
# Davidson's tie parameter: rankings without ties, with a third tied between even variants,
# and with two thirds (a crowd that calls most pairs "about the same")
TIES = (0.0, 1.0, 4.0)
# (captions, raters, raters per caption): a pilot's 8 rankings of a pair, 24, 90
SIZES = ((4, 4, 2), (8, 6, 3), (30, 10, 3))


def tango_spread(wins: float, losses: float, n: float, delta: float) -> float:
    """sqrt(2 p_l + delta (1 - delta)): the standard deviation of one ranking's win - loss
    (+1, 0, -1) where the margin is `delta`, at the loss share p_l that maximises the
    trinomial likelihood of `wins` and `losses` out of `n` under that constraint (Tango 1998,
    "Equivalence test and confidence interval for the difference in proportions for the
    paired-sample design", Statistics in Medicine 17, 891-908: the root of
    2n p^2 + (-(w + l) + (2n - w + l) delta) p - l delta (1 - delta))."""
    b = -(wins + losses) + (2.0 * n - wins + losses) * delta
    c = -losses * delta * (1.0 - delta)
    root = (math.sqrt(max(b * b - 8.0 * n * c, 0.0)) - b) / (4.0 * n)
    # The root lies in [max(0, -delta), (1 - delta) / 2]; clipping keeps rounding inside it.
    loss_share = min(max(root, max(0.0, -delta)), (1.0 - delta) / 2.0)
    return math.sqrt(max(2.0 * loss_share + delta * (1.0 - delta), 0.0))


def trinomial_margin_interval(wins: float, losses: float, n: float, deff: float, quantile: float
                              ) -> tuple[float, float]:
    """Tango's score interval for the margin (wins - losses) / n of n rankings, on n / deff
    rankings: the d0 with |d - d0| <= quantile sqrt(deff V(d0) / n), V(d0) = tango_spread^2.
    Scaling the counts by 1 / deff leaves the refitted shares as they are and divides the
    statistic by sqrt(deff). Without ties it is Wilson's interval of the win share mapped
    through 2 p - 1; with every ranking tied, -+ q^2 / (n + q^2)."""
    reach = quantile * math.sqrt(deff / n)
    est = (wins - losses) / n

    def excess(d0: float) -> float:
        return abs(est - d0) - reach * tango_spread(wins, losses, n, d0)

    # Negative just beside d0 = d, positive at the far bound (V(+-1) = 0) unless d is that
    # bound: one root on each side. Beside, not at: where every ranking was won or every one
    # tied, V(d) is 0 and so is the excess there.
    step = 1e-10
    beside = excess(est) >= 0
    low = -1.0 if est <= -1.0 or excess(-1.0) <= 0 else optimize.brentq(
        excess, -1.0, max(est - step, -1.0) if beside else est, xtol=1e-13)
    high = 1.0 if est >= 1.0 or excess(1.0) <= 0 else optimize.brentq(
        excess, min(est + step, 1.0) if beside else est, 1.0, xtol=1e-13)
    return min(low, est), max(high, est)


def tango_interval(unit: np.ndarray, rater: np.ndarray, won: np.ndarray, lost: np.ndarray, level: float
                   ) -> np.ndarray:
    """(2,) `trinomial_margin_interval` of one pair's rankings, deff = the margin's crossed
    variance over what independent rankings would give (at least 1; 1 where every ranking went
    alike), t on the crossed variance's df, as `data.rate_intervals` does for a rate."""
    group = np.zeros(len(won), dtype=np.int64)
    ones = np.ones(len(won))
    margin = won - lost
    spread = bs.ratio_corrections(unit, rater, group, margin, ones, 1, level)
    z, _ = bs.ratio_contributions(group, margin, ones, 1)
    independent = float((z ** 2).sum())
    var, df = float(spread.var[0]), float(spread.df[0])
    if not (math.isfinite(var) and math.isfinite(df) and df >= 1):
        return np.full(2, np.nan)
    deff = max(var / independent, 1.0) if independent > 0 else 1.0
    quantile = float(sps.t.ppf((1.0 + level) / 2.0, df))
    return np.array(trinomial_margin_interval(float(won.sum()), float(lost.sum()), float(len(won)), deff, quantile))


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
    item, rater, effect, fan = draw_effects(crowd, n_items, n_raters, overlap, rng)
    if math.isfinite(mu):
        win, loss = outcome_shares(mu + effect, nu)
    else:
        win, loss = np.ones(len(item)), np.zeros(len(item))
    u = rng.random(len(item))
    won = (u < win) | fan
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
        tango = tango_interval(unit, ev, won, lost, LEVEL)
    return {"bootstrap": boot, "ties-half": half, "tango": tango}


def rows(studies: int, n_boot: int, crowds: list[str], sizes: tuple[tuple[int, int, int], ...] = SIZES,
         margins: tuple[float, ...] = MARGINS, ties: tuple[float, ...] = TIES
         ) -> tuple[list[str], list[dict[str, tuple[float, float, float, float]]]]:
    """The table's lines and, per row, the tally (coverage, s.e., width, zero-width share)."""
    lines = [" crowd       nu rankings margin  sweep  tied  " + "  ".join(f"{m + ' cov (se) width':<26}"
                                                                          for m in METHODS)
             + "  bootstrap zero-width"]
    tallies = []
    for name in crowds:
        crowd = CROWDS[name]
        for nu in ties:
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
                    lines.append(f" {name:<9} {nu:>4g} {n_items * overlap:>8} {target:>6.2f}  "
                                 f"{sweeps / studies:>5.2f}  {tied / studies:>4.2f}  {cells}  "
                                 f"{tally['bootstrap'][3]:.2f}")
                    print(lines[-1], file=sys.stderr, flush=True)
    return lines, tallies


def rule(tallies: list[dict[str, tuple[float, float, float, float]]], old: str, new: str) -> tuple[bool, str]:
    """The adoption rule for `new` against `old`: mean coverage at least old's over all rows,
    and at least 0.93 in every row where old is never of zero width."""
    cov_old = np.array([t[old][0] for t in tallies])
    cov_new = np.array([t[new][0] for t in tallies])
    nondegenerate = np.array([t[old][3] for t in tallies]) == 0
    low = cov_new[nondegenerate].min() if nondegenerate.any() else math.nan
    passed = bool(cov_new.mean() >= cov_old.mean() and (not nondegenerate.any() or low >= 0.93))
    text = (f"adoption rule for {new} against {old} (mean coverage {cov_new.mean():.3f} >= {cov_old.mean():.3f}, "
            f">= 0.93 in the {int(nondegenerate.sum())} rows where {old} is never of zero width: lowest {low:.3f}): "
            f"{'met' if passed else 'NOT met'}")
    return passed, text


def verdict(tallies: list[dict[str, tuple[float, float, float, float]]], labels: list[str]) -> list[str]:
    """Coverage and width over all rows, the adoption rule for each score interval against the
    bootstrap and for Tango's against the ties-half interval, Tango's width relative to it,
    and the rows (`labels`: their first columns) where a score interval covers less than 0.93."""
    cov = {m: np.array([t[m][0] for t in tallies]) for m in METHODS}
    width = {m: np.array([t[m][2] for t in tallies]) for m in METHODS}
    lines = [f"mean coverage over all {len(tallies)} rows: " + ", ".join(f"{m} {cov[m].mean():.3f}" for m in METHODS)
             + "; lowest: " + ", ".join(f"{m} {cov[m].min():.3f}" for m in METHODS),
             "mean width: " + ", ".join(f"{m} {width[m].mean():.3f}" for m in METHODS)]
    lines += [rule(tallies, "bootstrap", m)[1] for m in ("ties-half", "tango")]
    lines.append(rule(tallies, "ties-half", "tango")[1])
    ratio = width["tango"] / width["ties-half"]
    gain = cov["tango"] - cov["ties-half"]
    lines.append(f"tango against ties-half, row by row: width {ratio.min():.2f}-{ratio.max():.2f} times "
                 f"(mean {ratio.mean():.2f}), coverage {gain.min():+.3f} to {gain.max():+.3f}")
    for label, t in zip(labels, tallies, strict=True):
        if min(t["ties-half"][0], t["tango"][0]) < 0.93:
            lines.append(f"below 0.93: {label.strip()}: " + ", ".join(f"{m} {t[m][0]:.3f}" for m in METHODS))
    return lines


def main(args: argparse.Namespace) -> None:
    started = time.time()
    sizes = tuple(s for s in SIZES if s[0] * s[2] in args.rankings) if args.rankings else SIZES
    table, tallies = rows(args.studies, args.n_boot, args.crowds.split(","), sizes,
                          ties=tuple(args.ties) if args.ties else TIES)
    lines = result_header("Win margins of the pairs design, from 0 to the bound: coverage and width") + [
        f"{args.studies} studies per row, {args.n_boot} bootstrap resamples, 95% intervals; crowds and intervals in "
        "bench/pair_margin.py's docstring; nu: Davidson's tie parameter (0: no ties; 1: a third, 4: two thirds tied "
        "between even variants); rankings: of the pair per study; "
        "sweep: share of studies where a won every ranking; tied: mean share of tied rankings; cov (binomial s.e. "
        "over studies) and mean width per interval; bootstrap zero-width: share of its intervals of zero width", "",
        *table, "", *verdict(tallies, [line[:38] for line in table[1:]]), result_footer(started)]
    emit_result("pair_margin", "\n".join(lines) + "\n", write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--crowds", default="iid,captions,raters,extreme")
    parser.add_argument("--rankings", type=int, nargs="*", help="only the sizes with these rankings per pair")
    parser.add_argument("--ties", type=float, nargs="*", help="only these tie parameters nu")
    parser.add_argument("--write", action="store_true", help="save under bench/results/")
    main(parser.parse_args())
