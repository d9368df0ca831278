"""Confidence intervals from a crossed bootstrap's replicates (evalstudy.bootstrap):
percentile intervals at BCa's levels, rescaled by the spread correction and kept inside
the statistic's range on its logit scale (`intervals`); t intervals for small groups
(`t_intervals`); and the choice between the two per group (`spread_intervals`). Shares
resting on a few dozen rankings or fewer (a pairs study's pair table) get Wilson's score
interval on their effective number of rankings instead (`score_intervals`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special
from scipy import stats as sps

from .bootstrap import Spread


def _column_quantiles(reps: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(K, G) quantiles of each column of reps (B, G) at its own levels probs (K, G),
    NaN ignored, linear interpolation between order statistics (numpy's default)."""
    ordered = np.sort(reps, axis=0)  # NaN last
    n = np.isfinite(reps).sum(axis=0)
    pos = probs * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    cols = np.arange(reps.shape[1])
    frac = pos - lo
    return ordered[lo, cols] * (1 - frac) + ordered[hi, cols] * frac


def intervals(estimates: np.ndarray, replicates: np.ndarray, level: float,
              shrink: np.ndarray | None = None, low: ArrayLike = -np.inf, high: ArrayLike = np.inf,
              accel: ArrayLike | None = None) -> np.ndarray:
    """(G, 2) intervals from (B, G) replicates, each inside its statistic's range.

    `low`, `high` (scalars or (G,) arrays) are the range of the statistic's population
    value (`analysis.data.parameter_range`): 0 and 1 for a rate, [0, inf) for a mean
    error, [-1, 1] for a difference of rates. Not the range of the values observed: no
    resample leaves that one, but the parameter may (a difference from a variant whose
    every answer was right starts at 0 there, and an interval kept inside it never holds 0).

    Method: the percentile interval, at BCa's adjusted levels when `accel` is given,
    with each end's distance from the estimate multiplied by `shrink`, on the logit
    scale of the range, y = logit((x - low) / (high - low)), and mapped back. Why this one:
    * The product-weight bootstrap's spread is wrong by a factor that is known
      (`shrink_factors`), so its percentiles must be rescaled; BCa alone would keep the
      wrong spread, and plain percentiles cannot be rescaled at all.
    * BCa's acceleration (`acceleration`, from the linearised contributions) moves the
      levels towards the side where the standard error grows with the estimate. With a
      few raters from a mixed crowd (some always one too many), the mean error is skewed
      to the right, and the misses were almost all on one side (the truth above the
      interval); the acceleration took back about a quarter of the shortfall in
      bench/coverage.py. Its bias correction z0 is not used: with it (the share of
      resamples below the estimate, clipped to +-0.5) coverage moved by at most 0.02 either
      way between scenarios, no consistent gain for a noisier interval.
    * Rescaled on the statistic's own scale, an end moves past the possible range
      whenever the factor exceeds one (a cell's mean error of 0.5 from errors in
      [0, 2] got [0, 9.42]); clipping then leaves an interval that is too short on
      one side and says nothing true on the other. On the logit scale the distances
      can be rescaled freely and every end stays strictly inside (low, high); near a
      bound, where the bootstrap distribution is skewed, the logit scale is the one
      on which it is closer to symmetric, as for a proportion.
    * The factor is a ratio of standard deviations, which a smooth monotone
      transformation keeps to first order (delta method), so the same factor
      serves on either scale.
    Without a finite range (or when the estimate sits on a bound, which for a mean
    means every value equals it) the ends move on the original scale and are clipped.
    NaN replicates (resamples that left the statistic undefined) are ignored; with
    fewer than 10 defined ones, or a NaN shrink, the interval is NaN.
    """
    est = np.asarray(estimates, dtype=float)
    reps = np.asarray(replicates, dtype=float)
    c = np.ones(len(est)) if shrink is None else np.asarray(shrink, dtype=float)
    lo = np.broadcast_to(np.asarray(low, dtype=float), est.shape)
    hi = np.broadcast_to(np.asarray(high, dtype=float), est.shape)
    out = np.full((len(est), 2), np.nan)
    if reps.size == 0:
        return out
    tail = (1.0 - level) / 2.0
    defined = np.isfinite(reps).sum(axis=0)
    a = np.zeros(len(est)) if accel is None else np.nan_to_num(np.asarray(accel, dtype=float))
    probs = np.vstack([np.full(len(est), tail), np.full(len(est), 1.0 - tail)])
    if np.any(a != 0):
        zq = sps.norm.ppf(probs)
        denom = 1.0 - a * zq
        # Efron's adjusted levels with z0 = 0 (see the docstring); a level whose
        # denominator vanishes would go past every resample: the extreme one is used.
        adj = np.where(denom > 0, sps.norm.cdf(zq / np.where(denom > 0, denom, 1.0)),
                       np.where(zq > 0, 1.0, 0.0))
        probs = np.clip(adj, 0.0, 1.0)
    q = _column_quantiles(reps, probs)  # (2, G)
    ok = (defined >= 10) & np.isfinite(est) & np.isfinite(c)
    span = hi - lo
    logit_ok = ok & np.isfinite(span) & (span > 0) & (est > lo) & (est < hi)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y_est = special.logit((est - lo) / span)
        for end in (0, 1):
            u = np.clip((q[end] - lo) / span, 0.0, 1.0)
            # A percentile on a bound stays there (logit +-inf); c = 0 leaves the estimate.
            moved = np.where(c > 0, special.expit(y_est + c * (special.logit(u) - y_est)),
                             (est - lo) / span)
            linear = est + c * (q[end] - est)
            out[:, end] = np.where(logit_ok, lo + span * moved, np.where(ok, linear, np.nan))
    return np.clip(out, lo[:, None], hi[:, None])


def t_intervals(estimates: ArrayLike, var: ArrayLike, df: ArrayLike, level: float, low: ArrayLike = -np.inf,
                high: ArrayLike = np.inf) -> np.ndarray:
    """(G, 2) intervals est -+ t_{df} sqrt(var), each inside its statistic's range.

    An end that leaves the open range (low, high) is taken instead from the same interval
    on the logit scale of the range, y = logit((x - low) / (high - low)), whose standard
    error is sqrt(var) / (x - low) / (high - x) * (high - low) (delta method): that end then
    lies strictly inside the range, nearer the bound the closer the estimate is to it.
    Without a finite range, or with the estimate on a bound (every value equal), the
    ends are clipped. NaN where var or df is."""
    est = np.asarray(estimates, dtype=float)
    lo = np.broadcast_to(np.asarray(low, dtype=float), est.shape)
    hi = np.broadcast_to(np.asarray(high, dtype=float), est.shape)
    var = np.asarray(var, dtype=float)
    df = np.asarray(df, dtype=float)
    ok = np.isfinite(est) & np.isfinite(var) & (var >= 0) & np.isfinite(df)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = sps.t.ppf((1.0 + level) / 2.0, np.where(ok & (df >= 1), df, 1.0)) * np.sqrt(np.where(ok, var, 0.0))
        linear = est[:, None] + np.array([-1.0, 1.0])[None, :] * half[:, None]
        span = hi - lo
        p = (est - lo) / span
        logit_ok = np.isfinite(span) & (span > 0) & (p > 0) & (p < 1)
        half_y = half / np.where(logit_ok, span * p * (1.0 - p), 1.0)
        y = special.logit(np.where(logit_ok, p, 0.5))
        on_logit = lo[:, None] + span[:, None] * special.expit(
            y[:, None] + np.array([-1.0, 1.0])[None, :] * half_y[:, None])
        inside = (linear > lo[:, None]) & (linear < hi[:, None])
        out = np.where(inside | ~logit_ok[:, None], linear, on_logit)
    out = np.clip(out, lo[:, None], hi[:, None])
    return np.where(ok[:, None], out, np.nan)


def spread_intervals(estimates: ArrayLike, replicates: ArrayLike, level: float, spread: Spread,
                     low: ArrayLike = -np.inf, high: ArrayLike = np.inf) -> np.ndarray:
    """(G, 2) intervals for statistics whose linearised `Spread` is known: `intervals`
    (the bootstrap's percentiles, rescaled, at BCa's levels) for groups of SMALL_GROUP
    units or more, `t_intervals` for the smaller ones.

    Why the small groups differ: with five images per cell the bootstrap distribution is
    a lumpy thing of a few dozen distinct values, its tails and skewness (the
    acceleration from five items) are noise, and every such noise widens the interval
    (a nonzero acceleration moves one level out by more than it moves the other in). In
    bench/coverage.py's crowds with 8 and 24 raters (300 studies each) the cells of five
    images covered 0.974-0.990 with the rescaled percentiles and 0.934-0.961 with this t
    interval (target 0.95), which is 14-21% narrower. Larger groups keep the bootstrap's shape: for a
    variant's mean error over a few skewed raters it is what keeps the misses from
    falling all on one side."""
    est = np.asarray(estimates, dtype=float)
    reps = np.asarray(replicates, dtype=float)
    lo = np.broadcast_to(np.asarray(low, dtype=float), est.shape)
    hi = np.broadcast_to(np.asarray(high, dtype=float), est.shape)
    small = np.asarray(spread.small, dtype=bool)
    big = ~small
    out = np.empty((len(est), 2))
    out[big] = intervals(est[big], reps[:, big], level, spread.shrink[big], lo[big], hi[big], spread.accel[big])
    out[small] = t_intervals(est[small], spread.var[small], spread.df[small], level, lo[small], hi[small])
    return out


def score_intervals(estimates: ArrayLike, var: ArrayLike, var_independent: ArrayLike, n: ArrayLike,
                    level: float) -> np.ndarray:

    """(G, 2) Wilson score intervals for shares p in [0, 1] on an effective number of
    rankings, n_eff = p (1 - p) / V (Kish's: the rankings that, independent, would give the
    share the variance V it has), Wilson's interval for p out of n_eff.

    `var` is the share's variance from the crossed design (`bootstrap.Spread.var`: captions
    and raters), `var_independent` what it would be were its rankings independent (the sum
    of the squared linearised contributions), `n` the number of rankings it is a share of.
    V = max(var, var_independent): a design effect of at least one, since raters and captions
    that judge several rankings of a pair only add to its variance. Where p is 0 or 1 the
    variance is 0 and says nothing; n_eff = n there (the rankings taken as independent).

    Why not the rescaled bootstrap percentiles or est +- t sqrt(V): with ten or so rankings
    a share's sampling distribution is a few lumpy values and skewed near 0 and 1; an
    interval symmetric about the estimate (or the bootstrap's lumps) missed the truth on
    one side. Wilson's interval is the set of p that a score test of p does not reject, so
    it is asymmetric by construction and stays inside [0, 1] with no clipping; it gives a
    non-empty interval where every ranking went one way. Measured on a pairs study's win
    rates (bench/pairs_crowds.py, docs/statistics.md "The pairs design"). NaN where var is
    NaN (fewer than two captions or raters: no crossed variance)."""
    p = np.asarray(estimates, dtype=float)
    v = np.maximum(np.asarray(var, dtype=float), np.asarray(var_independent, dtype=float))
    n = np.asarray(n, dtype=float)
    z = sps.norm.ppf((1.0 + level) / 2.0)
    inside = (p > 0) & (p < 1) & (v > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(inside, p * (1.0 - p) / np.where(inside, v, 1.0), n)
        z2n = z * z / n_eff
        centre = (p + z2n / 2.0) / (1.0 + z2n)
        half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / n_eff + z2n / (4.0 * n_eff))
        out = np.column_stack([centre - half, centre + half])
    ok = np.isfinite(p) & np.isfinite(np.asarray(var, dtype=float)) & (p >= 0) & (p <= 1) & (n_eff > 0)
    return np.where(ok[:, None], np.clip(out, 0.0, 1.0), np.nan)
