"""Confidence intervals from a crossed bootstrap's replicates (evalstudy.bootstrap):
percentile intervals at BCa's levels, rescaled by the spread correction and kept inside
the statistic's range on its logit scale (`intervals`); t intervals for small groups
(`t_intervals`); and the choice between the two per group (`spread_intervals`). Rates (a
match ratio, a win rate, a skip rate, the left image's share) get Wilson's score interval on
their effective number of trials instead (`score_intervals`), which has no zero width at 0
or 1, and a difference of two correlated rates Newcombe's hybrid score interval built from
theirs (`paired_score_difference`).
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
                    level: float, df: ArrayLike | None = None) -> np.ndarray:
    """(G, 2) Wilson score intervals for rates p in [0, 1] (a share of rankings, a match
    ratio, a skip rate) on an effective number of trials, n_eff = p (1 - p) / V (Kish's: the
    trials that, independent, would give the rate the variance V it has): Wilson's interval
    for p out of n_eff, with the quantile of t on `df` degrees of freedom (the normal's where
    `df` is None).

    `var` is the rate's variance from the crossed design (`bootstrap.Spread.var`: items and
    raters), `var_independent` what it would be were its trials independent (the sum of the
    squared linearised contributions, p (1 - p) / n for n trials of weight one), `n` the
    number of trials it is a rate of, `df` the variance's degrees of freedom
    (`bootstrap.Spread.df`, Satterthwaite's). V = max(var, var_independent): a design effect
    of at least one, since raters and items that judge several trials only add to the variance.

    This is Korn and Graubard's effective-sample-size interval for a proportion from a
    complex sample (Korn and Graubard 1998, "Confidence intervals for proportions with small
    expected number of positive counts estimated from survey data", Survey Methodology 24,
    193-201) with Wilson's interval in place of Clopper-Pearson's. Their degrees-of-freedom
    adjustment, n_eff (z / t_df)^2, is the same as Wilson's interval with t_df in place of z
    (the interval depends on z and n only through z^2 / n): the variance rests on a few raters
    or items when a few carry it (raters who always pick the left image, say), and the t
    quantile widens the interval by what that costs.

    Where p is 0 or 1 the estimated variance is 0 and says nothing about the design effect;
    there n_eff = n, a design effect of one, as Korn and Graubard set it. Why one and not a
    larger floor: with rater and item effects on the logit scale (bench/rate_bounds.py's
    crowds), a rate's between-rater variance shrinks like (p (1 - p))^2 near a bound while the
    binomial part shrinks like p (1 - p), so the true design effect itself goes to one there;
    and with the first answer that breaks the unanimity the crossed variance is that one
    answer's, whose design effect is again about one, so n_eff does not jump at the bound.
    The df do: at the bound they are the variance's largest (`effective_df`'s du + de), with
    one dissenting answer the few of its item and rater, so the interval widens as the first
    dissent arrives (at a true rate of 0.99 with 30 items it over-covers a little, 0.96-0.98).
    For n trials all successes it is [n / (n + q^2), 1], q the quantile: never of zero width.
    Measured against the crossed bootstrap and Wilson's plain interval at true rates 0.5-1.0
    in bench/rate_bounds.py (docs/statistics.md, "Rates"): it covered 0.933-0.997 over true
    rates 0.5-0.99, the same interval with z 0.907-0.983, the crossed bootstrap's 0.16-0.18 at
    0.99 with 8 items.

    Why not the rescaled bootstrap percentiles or est +- t sqrt(V): with ten or so trials a
    rate's sampling distribution is a few lumpy values and skewed near 0 and 1; an interval
    symmetric about the estimate (or the bootstrap's lumps) missed the truth on one side,
    and where every trial went one way every resample gives the same value and the interval
    is [1, 1]. Wilson's interval is the set of p that a score test of p does not reject, so
    it is asymmetric by construction and stays inside [0, 1] with no clipping. NaN where
    var is NaN (fewer than two items or raters: no crossed variance) or df is."""
    p = np.asarray(estimates, dtype=float)
    v = np.maximum(np.asarray(var, dtype=float), np.asarray(var_independent, dtype=float))
    n = np.asarray(n, dtype=float)
    tail = (1.0 + level) / 2.0
    if df is None:
        q = np.full(p.shape, sps.norm.ppf(tail))
    else:
        d = np.asarray(df, dtype=float)
        usable = np.isfinite(d) & (d >= 1)
        q = np.where(usable, sps.t.ppf(tail, np.where(usable, d, 1.0)), np.nan)
    inside = (p > 0) & (p < 1) & (v > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(inside, p * (1.0 - p) / np.where(inside, v, 1.0), n)
        q2n = q * q / n_eff
        centre = (p + q2n / 2.0) / (1.0 + q2n)
        half = q / (1.0 + q2n) * np.sqrt(p * (1.0 - p) / n_eff + q2n / (4.0 * n_eff))
        # At a bound the end there is the bound itself, exactly (not 1 - 1e-16 by rounding).
        out = np.column_stack([np.where(p <= 0, 0.0, centre - half), np.where(p >= 1, 1.0, centre + half)])
    ok = (np.isfinite(p) & np.isfinite(np.asarray(var, dtype=float)) & np.isfinite(q)
          & (p >= 0) & (p <= 1) & (n_eff > 0))
    return np.where(ok[:, None], np.clip(out, 0.0, 1.0), np.nan)


def paired_score_difference(estimates_a: ArrayLike, intervals_a: ArrayLike, estimates_b: ArrayLike,
                            intervals_b: ArrayLike, correlation: ArrayLike) -> np.ndarray:
    """(G, 2) intervals for differences of two correlated rates p_a - p_b from each rate's
    own score interval [l, u] (`score_intervals`) and the correlation phi of the two
    estimates: Newcombe's hybrid score interval for paired proportions (Newcombe 1998,
    "Improved confidence intervals for the difference between binomial proportions based on
    paired data", Statistics in Medicine 17, 2635-2650, method 10),

        L = d - sqrt((p_a - l_a)^2 - 2 phi (p_a - l_a) (u_b - p_b) + (u_b - p_b)^2)
        U = d + sqrt((u_a - p_a)^2 - 2 phi (u_a - p_a) (p_b - l_b) + (p_b - l_b)^2).

    Each end takes from each rate the distance to the end of its own interval on the side
    the difference moves that way, and adds them as the variance of a difference adds
    (Zou and Donner's MOVER, 2008: the Wald interval's algebra with each half-width taken
    from an interval that is right near the bounds). So where both rates are 1 the interval
    is [-(1 - l_a), 1 - l_b], never [0, 0], and an interval for a difference between
    variants whose every answer was right is as wide as the score intervals of the rates say.

    phi outside [-1, 1] is clipped, NaN reads as 0 (Newcombe's rule where a margin is 0: no
    correlation can be estimated there). The ends are kept in [-1, 1]. NaN where either
    rate or its interval is."""
    pa, pb = np.asarray(estimates_a, dtype=float), np.asarray(estimates_b, dtype=float)
    ia, ib = np.asarray(intervals_a, dtype=float), np.asarray(intervals_b, dtype=float)
    phi = np.clip(np.nan_to_num(np.asarray(correlation, dtype=float), nan=0.0), -1.0, 1.0)
    below_a, above_a = pa - ia[:, 0], ia[:, 1] - pa
    below_b, above_b = pb - ib[:, 0], ib[:, 1] - pb
    d = pa - pb
    with np.errstate(invalid="ignore"):
        # max(., 0): with phi = 1 and equal distances the sum is 0 up to rounding.
        low = d - np.sqrt(np.maximum(below_a ** 2 - 2 * phi * below_a * above_b + above_b ** 2, 0.0))
        high = d + np.sqrt(np.maximum(above_a ** 2 - 2 * phi * above_a * below_b + below_b ** 2, 0.0))
    return np.clip(np.column_stack([low, high]), -1.0, 1.0)
