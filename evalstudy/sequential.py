"""A group-sequential stopping rule: when may a study stop paying for evaluators?

The rule (Jennison and Turnbull 2000, ch. 7; Lan and DeMets 1983)
-----------------------------------------------------------------
A primary comparison's estimate D (a difference between two variants) is looked at only
at the planned looks, numbers of evaluators n_1 < ... < n_K fixed in the hashed protocol
before any data. At look k its standardised value Z_k = D_k / SE_k is compared with a
boundary c_k: |Z_k| >= c_k stops the study with a difference shown. The boundaries spend
the two-sided error rate alpha over the looks by Lan and DeMets' O'Brien-Fleming-type
spending function

    alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)),   t = n_k / n_K,

so that under no difference P(some |Z_k| >= c_k) = alpha exactly, for Z_k with the
covariance of sums of independent increments (Cov(Z_j, Z_k) = sqrt(t_j / t_k)). Almost
nothing is spent early (four equally spaced looks at alpha = 0.05: c = 3.92, 2.77, 2.30,
2.04), so the last boundary stays near the fixed design's 1.96 and so does the power
(checked against two million simulated Brownian paths: first crossings 0.0001, 0.0054,
0.0181, 0.0264, total 0.0500, the spending function's own increments). The boundaries
come from the recursive numerical integration of Armitage, McPherson and Rowe (1969) on a
grid (`boundaries`).

SE_k is the crossed-bootstrap standard error of the analysis (the variance the bootstrap
spread is scaled to: items and evaluators, `evalstudy.bootstrap.variance_target`), and
D_k / SE_k is mapped to the normal scale through its t distribution with Satterthwaite's
degrees of freedom (same p-value), so a look with few evaluators is not read as if its
standard error were known.

Futility, non-binding: at a look that does not cross, the conditional power, the chance
of crossing at the last look if the true difference were the planned effect (in the
direction of the estimate), is computed from the B-value B_k = Z_k sqrt(t_k) (Lan and
Wittes 1988). Below FUTILITY_POWER the rule says "stop: no difference of the planned size
is likely". Stopping for futility can only lower the false-positive rate, so the
boundaries are not changed for it. At the last look a comparison that has not crossed
stops that way too.

Several primary comparisons share alpha equally (Bonferroni): each is monitored at
alpha / (number of comparisons).

After the stop: the stage-wise ordering (Jennison and Turnbull 2000, ch. 8)
---------------------------------------------------------------------------
A study that stops early does so because its estimate happened to be large, so among such
studies the naive D_k is biased away from zero and D_k +- z SE_k undercovers. The outcomes
a study can end with, (look k, Z_k), are ordered stage-wise: a crossing of the upper
boundary at an earlier look is more extreme than any outcome at a later one, and at one
look a larger Z is more extreme. For a drift theta (E[Z] at t = 1, as in `conditional_power`) the stage-wise
p-value of the observed (k, z) is

    P_theta(an upper crossing at some look j < k) + P_theta(no crossing before k, Z_k >= z),

which increases with theta. The median-unbiased estimate is the theta at which it is 1/2,
the 1 - alpha interval the thetas at which it is alpha/2 and 1 - alpha/2, and the
two-sided p-value twice its value at theta = 0 (`stagewise_inference`). Ending at the
first look gives the fixed-sample z estimate and interval; ending at the last look differs
from them only through the chance, under each drift, of having crossed earlier: little for
a small Z, more for a large one, which a drift that large would mostly have stopped at an
earlier look (docs/statistics.md has numbers). The probabilities come from the
boundaries' own grid: the sub-densities of the B-value on each look's continuation
region are computed once under theta = 0, and a drift only tilts them by the likelihood
ratio exp(theta B - theta^2 t / 2) of a Brownian motion with drift. Only the efficacy
boundaries enter: futility is non-binding, so the ordering is that of a design that would
have gone on past a futility stop. A study stopped for futility before its last look has
no outcome in this ordering, and none is computed for it.

Did the crowd change between looks? (`crowd_drift_p`)
------------------------------------------------------
The boundaries hold for evaluators who arrive in exchangeable order: the ones after a look
like the ones before it. At look k >= 2 the looks' data are split into the k arrival batches
between looks (first n_1 evaluators, the next n_2 - n_1, ...); batch j's own estimate is
read off the cumulative ones, (n_j D_j - n_(j-1) D_(j-1)) / (n_j - n_(j-1)), with variance
sigma^2 / (n_j - n_(j-1)), sigma^2 = n_k SE*_k^2 (the monitor's own assumption that the
variance shrinks as 1 / evaluators, at the latest look's test-based SE). Cochran's Q, the
batches' weighted squared deviations from D_k, is chi^2 with k - 1 df when every batch
estimates the same difference. Captions are shared by the batches, so their part of the
variance cancels between batches and the test is conservative (bench/sequential.py measures
its size and power); a small p-value says that later evaluators judge differently from
earlier ones and that the looks' error rate no longer holds, not which batch is right.

On the estimate's scale: Z_k is D_k / SE_k mapped to the normal scale through its t
distribution (`z_from_t`), that is D_k / SE*_k, where SE*_k = SE_k T_k / Z_k is the
standard error a normal test would need to give D_k the p-value its t statistic has (the
test-based standard error, Miettinen 1976; `normal_equivalent_se`: SE_k when df is
infinite, larger with few df). A drift theta is the difference theta sqrt(t_k) SE*_k, its
mean Z at look k times that standard error. So a single look gives back D_k, with the
interval D_k +- z_(1-alpha/2) SE*_k (the fixed-sample z interval when df is infinite), and
the interval excludes zero exactly when the stage-wise p-value is below alpha. Why SE*_k:
with few df, Z_k is well below T_k, so theta sqrt(t_k) SE_k would pull every estimate
towards zero, and mapping back through the t quantiles (the inverse of `z_from_t`)
stretches the interval's far end into the t's tail. Where Z_k is normal only
approximately (few df), the estimate is median-unbiased and the interval covers only
approximately: bench/sequential_estimate.py measures both.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special
from scipy import stats as sps

from .protocol import DEFAULT_POWER

FUTILITY_POWER = 0.10   # conditional power below which a look says "no difference ... likely"
GRID = 1201             # points of the integration grid per look (odd, for Simpson's rule)
_CUT = 40.0             # standard deviations: where a look that cannot be crossed is cut

CONTINUE = "continue"
STOP_DIFFERENCE = "stop: difference shown"
STOP_FUTILITY = "stop: no difference of the planned size is likely"
DECISIONS = (CONTINUE, STOP_DIFFERENCE, STOP_FUTILITY)

RULE = ("group-sequential: Lan-DeMets O'Brien-Fleming-type alpha spending "
        "alpha(t) = 2 - 2 Phi(z_(1-alpha/2) / sqrt(t)) at the planned looks (t = evaluators / "
        "last look's evaluators), boundaries by recursive numerical integration (Armitage, "
        "McPherson and Rowe 1969); Z = difference / crossed-bootstrap standard error, mapped "
        "to the normal scale through its t distribution (Satterthwaite df); non-binding "
        f"futility when the conditional power under the planned effect is below {FUTILITY_POWER}; "
        "alpha shared equally by the primary comparisons")


def obf_spending(t: ArrayLike, alpha: float) -> np.ndarray:
    """The error rate spent by information fraction t (0 < t <= 1): Lan-DeMets'
    O'Brien-Fleming-type function, two-sided."""
    t = np.asarray(t, dtype=float)
    # 2 sf(.), not 2 - 2 Phi(.): at an early look (t = 0.05, alpha 0.05: about 1.8e-18) the
    # difference of two numbers near 1 would round to 0 and the first boundary to infinity.
    return 2.0 * sps.norm.sf(sps.norm.isf(alpha / 2.0) / np.sqrt(t))


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _simpson_weights(n: int, h: float) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * h / 3.0


def _check_fractions(t: np.ndarray) -> None:
    if (t.ndim != 1 or len(t) == 0 or not np.all(np.isfinite(t)) or np.any(t <= 0)
            or np.any(np.diff(t) <= 0) or t[-1] > 1 + 1e-12):
        raise ValueError(f"information fractions must increase within (0, 1], got {t.tolist()}")


def _half_width(c: float, t: float) -> float:
    """The continuation region's half-width on the B-value scale, |B| < c sqrt(t); a look
    that cannot be crossed (c infinite) is cut at 40 standard deviations."""
    return (c if np.isfinite(c) else _CUT) * math.sqrt(t)


def _first_look(c: float, t: float) -> tuple[np.ndarray, np.ndarray]:
    """The grid over look 1's continuation region and the sub-density of B_1 = Z_1 sqrt(t)
    on it under no drift, times the Simpson weights (so that a sum is an integral)."""
    b = _half_width(c, t)
    x = np.linspace(-b, b, GRID)
    return x, sps.norm.pdf(x / math.sqrt(t)) / math.sqrt(t) * _simpson_weights(GRID, x[1] - x[0])


def _next_look(x: np.ndarray, f: np.ndarray, sd: float, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sub-density of B at the next look on (-half_width, half_width), from the
    weighted one `f` on the grid `x` at this look and the increment's s.d. (no drift)."""
    y = np.linspace(-half_width, half_width, GRID)
    dens = sps.norm.pdf((y[:, None] - x[None, :]) / sd) / sd @ f  # (GRID,)
    return y, dens * _simpson_weights(GRID, y[1] - y[0])


def boundaries(fractions: ArrayLike, alpha: float) -> np.ndarray:
    """Two-sided z boundaries c_1..c_K at information fractions 0 < t_1 < ... < t_K (t_K is
    normally 1) such that, for a Brownian motion observed at the t_k, the chance of a first
    crossing |Z_k| >= c_k at look k is alpha(t_k) - alpha(t_(k-1)) (`obf_spending`)."""
    _check_alpha(alpha)
    return np.array(_boundaries(tuple(float(x) for x in np.asarray(fractions, dtype=float)), float(alpha)))


@functools.lru_cache(maxsize=64)  # a study's plan asks for the same boundaries at every look
def _boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    t = np.asarray(fractions, dtype=float)
    _check_fractions(t)
    spent = obf_spending(t, alpha)
    c = np.empty(len(t))
    c[0] = sps.norm.isf(spent[0] / 2.0)  # infinite where nothing representable is spent
    # The sub-density of B = Z sqrt(t) at the last look, on the continuation region.
    x, f = _first_look(c[0], t[0])
    for k in range(1, len(t)):
        sd = math.sqrt(t[k] - t[k - 1])
        target = spent[k] - spent[k - 1]

        def crossing(z: float, x: np.ndarray = x, f: np.ndarray = f, sd: float = sd, tk: float = t[k]) -> float:
            bk = z * math.sqrt(tk)
            return float(f @ (sps.norm.sf((bk - x) / sd) + sps.norm.cdf((-bk - x) / sd)))

        if target <= 0 or crossing(_CUT) >= target:  # less than a crossing at 40 s.d. would spend
            c[k] = np.inf
        else:
            c[k] = optimize.brentq(lambda z, goal=target: crossing(z) - goal, 0.0, _CUT, xtol=1e-10)
        x, f = _next_look(x, f, sd, _half_width(c[k], t[k]))
    return tuple(c.tolist())


def z_from_t(estimate: float, se: float, df: float) -> float:
    """The normal deviate with the same two-sided p-value as estimate / se on t(df)."""
    if not (math.isfinite(estimate) and math.isfinite(se) and se > 0):
        return math.nan
    tval = estimate / se
    if not math.isfinite(df):
        return tval
    p_one = sps.t.sf(abs(tval), max(df, 1.0))
    return math.copysign(float(sps.norm.isf(p_one)), tval)


def normal_equivalent_se(estimate: float, se: float, df: float) -> float:
    """The standard error a normal test would need to give `estimate` the p-value its t(df)
    statistic estimate / se has: estimate / z_from_t(estimate, se, df), in the estimate's
    units; se when df is infinite, and at an estimate of 0 its limit, se phi(0) / f_t(0).
    NaN where the t statistic is not defined."""
    if not (math.isfinite(estimate) and math.isfinite(se) and se > 0):
        return math.nan
    if not math.isfinite(df):
        return se
    tval = estimate / se
    if abs(tval) < 1e-6:  # z_from_t loses its digits near 0, where T / Z is the densities' ratio
        return se * float(sps.norm.pdf(0.0) / sps.t.pdf(0.0, max(df, 1.0)))
    return se * tval / z_from_t(estimate, se, df)


def crowd_drift_p(looks_data: list[LookInput]) -> float:
    """The p-value of Cochran's Q for "every arrival batch between the looks estimates the
    same difference" (the module's docstring, "Did the crowd change between looks?"): chi^2 with one df
    fewer than the looks. NaN with fewer than two looks, or where a look's estimate or the
    last look's standard error is not a finite number, or the looks' evaluators do not grow."""
    if len(looks_data) < 2:
        return math.nan
    n = np.array([look.n_evaluators for look in looks_data], dtype=float)
    d = np.array([look.estimate for look in looks_data], dtype=float)
    last = looks_data[-1]
    se = normal_equivalent_se(last.estimate, last.se, last.df)
    batch = np.diff(n, prepend=0.0)
    if not (np.isfinite(d).all() and math.isfinite(se) and se > 0) or (batch <= 0).any():
        return math.nan
    sigma2 = n[-1] * se * se                      # one evaluator's variance, on the normal scale
    batch_estimate = np.diff(n * d, prepend=0.0) / batch
    q = float(np.sum(batch * (batch_estimate - d[-1]) ** 2) / sigma2)
    return float(sps.chi2.sf(q, len(looks_data) - 1))


def conditional_power(z: float, t: float, final_boundary: float, drift: float) -> float:
    """P(|Z_final| >= final_boundary | Z at fraction t is z) when the B-value drifts by
    `drift` per unit of information (drift = E[Z] at t = 1)."""
    if t >= 1.0:
        return float(abs(z) >= final_boundary)
    b = z * math.sqrt(t)
    mean = b + drift * (1.0 - t)
    sd = math.sqrt(1.0 - t)
    return float(sps.norm.sf((final_boundary - mean) / sd) + sps.norm.cdf((-final_boundary - mean) / sd))


# ---------------------------------------------------------------------------
# After the stop: the stage-wise ordering
# ---------------------------------------------------------------------------

def _check_design(fractions: ArrayLike, bounds: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(fractions, dtype=float)
    c = np.asarray(bounds, dtype=float)
    _check_fractions(t)
    if c.shape != t.shape or np.any(np.isnan(c)) or np.any(c <= 0):
        raise ValueError(f"efficacy boundaries must be positive (or infinite), one per look "
                         f"({len(t)} looks), got {c.tolist()}")
    return t, c


def _check_outcome(t: np.ndarray, c: np.ndarray, look: int, z: float) -> int:
    """The 0-based index of `look` after checking that (look, z) is an outcome a study can
    end with: a crossing at an earlier look, or any finite z at the last one."""
    if not 1 <= look <= len(t):
        raise ValueError(f"look must be in 1..{len(t)}, got {look!r}")
    if not math.isfinite(z):
        raise ValueError(f"z must be finite, got {z!r}")
    if look < len(t) and abs(z) < c[look - 1]:
        raise ValueError(f"a study ends before its last look only by crossing: |z| = {abs(z):.4g} is "
                         f"inside look {look}'s boundary {c[look - 1]:.4g}")
    return look - 1


@functools.lru_cache(maxsize=64)  # every estimate of a design reads the same densities
def _continuation(fractions: tuple[float, ...], bounds: tuple[float, ...]
                  ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per look but the last, the grid over its continuation region and the log of the
    weighted sub-density of B there (no crossing so far) under no drift: the recursion of
    `_boundaries`, for given boundaries."""
    out = []
    x, f = _first_look(bounds[0], fractions[0])
    for k in range(len(fractions) - 1):
        with np.errstate(divide="ignore"):  # a density that underflows is a log of -inf
            log_f = np.log(f)
        x.setflags(write=False)
        log_f.setflags(write=False)
        out.append((x, log_f))
        if k + 1 < len(fractions) - 1:
            sd = math.sqrt(fractions[k + 1] - fractions[k])
            x, f = _next_look(x, f, sd, _half_width(bounds[k + 1], fractions[k + 1]))
    return tuple(out)


def _p_at_or_above(drift: float, t: np.ndarray, c: np.ndarray, k: int, z: float) -> float:
    """P_drift(an upper crossing at a look before k, or no crossing before k and Z_k >= z),
    k 0-based. A drift tilts the no-drift sub-density of B_(j-1) by exp(drift B -
    drift^2 t_(j-1) / 2), the likelihood ratio of a Brownian motion with that drift; each
    term is summed in logs so that a large drift cannot overflow."""
    dens = _continuation(tuple(t.tolist()), tuple(c.tolist()))
    total = 0.0
    for j in range(k + 1):
        threshold = c[j] if j < k else z
        if j == 0:
            total += float(special.ndtr(drift * math.sqrt(t[0]) - threshold))
            continue
        x, log_f = dens[j - 1]
        dt = t[j] - t[j - 1]
        log_terms = (log_f + drift * x - drift * drift * t[j - 1] / 2.0
                     + special.log_ndtr((x + drift * dt - threshold * math.sqrt(t[j])) / math.sqrt(dt)))
        total += float(np.exp(log_terms).sum())
    return total


def stagewise_p(drift: float, fractions: ArrayLike, bounds: ArrayLike, look: int, z: float) -> float:
    """The stage-wise ordering's upper p-value of a study that ended at `look` (1-based) with
    Z = `z`: under `drift` (E[Z] at t = 1), the chance of ending at that outcome or a more
    extreme one upward, under the symmetric two-sided efficacy boundaries `bounds` at
    information fractions `fractions`. Increases with the drift."""
    if not math.isfinite(drift):
        raise ValueError(f"drift must be finite, got {drift!r}")
    t, c = _check_design(fractions, bounds)
    k = _check_outcome(t, c, look, z)
    if z >= 0:
        return _p_at_or_above(drift, t, c, k, z)
    # The boundaries are symmetric: what lies at or above (k, z) is all but what lies below,
    # and that is the mirror image, under -drift, of what lies above (k, -z).
    return 1.0 - _p_at_or_above(-drift, t, c, k, -z)


def _solve_increasing(p: Callable[[float], float], target: float, guess: float, width: float) -> float:
    """The root of p(x) = target for an increasing probability p, to width x 1e-9. On the
    probit scale a stage-wise p-value is nearly linear in the drift (exactly, at a single
    look), so a secant from guess and guess + width mostly lands in three or four steps;
    where it does not, the root is bracketed outwards from guess +- width and found by
    Brent's method."""
    def gap(x: float) -> float:
        # Clipped into (0, 1) so that a probability rounded to 0 or 1 stays finite.
        return float(special.ndtri(min(max(p(x), 1e-300), 1.0 - 1e-16)) - special.ndtri(target))

    x0, x1 = guess, guess + width
    g0, g1 = gap(x0), gap(x1)
    for _ in range(8):
        if g1 == 0.0:
            return float(x1)
        if g1 == g0 or not (g1 - g0) * (x1 - x0) > 0:  # flat or falling: not the secant's case
            break
        x0, g0, x1 = x1, g1, x1 - g1 * (x1 - x0) / (g1 - g0)
        if abs(x1 - x0) <= 1e-9 * width:
            return float(x1)
        g1 = gap(x1)
    lo, hi = guess - width, guess + width
    for step in 2.0 ** np.arange(60):
        if p(lo) > target:
            lo -= width * step
        elif p(hi) < target:
            hi += width * step
        else:
            return float(optimize.brentq(gap, lo, hi, xtol=1e-9 * width))
    raise ValueError(f"no drift gives the stage-wise p-value {target} (bracket [{lo}, {hi}])")


@dataclass(frozen=True)
class StagewiseInference:
    """What a group-sequential study that ended at (`look`, `z`) estimates, on the drift
    scale (E[Z] at t = 1), under the stage-wise ordering and the efficacy boundaries only."""

    look: int                   # 1-based
    z: float
    p_one_sided: float          # P_0(this outcome or one more extreme, in the direction of z)
    p_two_sided: float          # min(1, twice that)
    drift: float                # median-unbiased
    drift_ci: tuple[float, float]
    level: float                # of drift_ci, 1 - alpha


def stagewise_inference(fractions: ArrayLike, bounds: ArrayLike, look: int, z: float,
                        alpha: float) -> StagewiseInference:
    """The stage-wise p-values, median-unbiased drift and 1 - `alpha` interval of a study
    that ended at `look` (1-based) with Z = `z`, for the symmetric efficacy boundaries `bounds`
    at information fractions `fractions` (see the module's docstring)."""
    _check_alpha(alpha)
    t, c = _check_design(fractions, bounds)
    k = _check_outcome(t, c, look, z)
    # Solved for |z| and mirrored (`stagewise_p`): the interval of -z is minus that of z.
    sign, z_abs = (1.0, z) if z >= 0 else (-1.0, -z)

    def p(drift: float) -> float:
        return _p_at_or_above(drift, t, c, k, z_abs)

    # Each search starts from the fixed-sample answer at look k, where p(drift) would be
    # Phi(drift sqrt(t_k) - z), within half its standard error on the drift scale.
    median, low, high = (_solve_increasing(p, target, (z_abs + special.ndtri(target)) / math.sqrt(t[k]),
                                           0.5 / math.sqrt(t[k]))
                         for target in (0.5, alpha / 2.0, 1.0 - alpha / 2.0))
    p_one = p(0.0)
    ends = sorted((sign * low, sign * high))
    return StagewiseInference(look=look, z=float(z), p_one_sided=p_one, p_two_sided=min(1.0, 2.0 * p_one),
                              drift=sign * median, drift_ci=(ends[0], ends[1]), level=1.0 - alpha)


# ---------------------------------------------------------------------------
# The monitor
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LookInput:
    """One look's data: the evaluators it counted, the estimate, its SE and df."""

    n_evaluators: int
    estimate: float
    se: float
    df: float


@dataclass(frozen=True)
class LookOutcome:
    look: int               # 1-based
    n_evaluators: int
    fraction: float
    estimate: float
    se: float
    z: float
    boundary: float
    conditional_power: float
    decision: str
    # On the estimate's scale, at a look the study ended at (a crossing, or the last look):
    # the median-unbiased estimate, its 1 - alpha interval and the two-sided p-value under
    # the stage-wise ordering (`stagewise_inference`); NaN at other looks.
    adjusted_estimate: float = math.nan
    adjusted_estimate_ci: tuple[float, float] = (math.nan, math.nan)
    adjusted_p_value: float = math.nan
    # From the second look on: `crowd_drift_p` of the looks so far (NaN at the first).
    crowd_drift_p: float = math.nan


def adjusted_estimate(data: LookInput, fractions: ArrayLike, bounds: ArrayLike, look: int, alpha: float
                      ) -> tuple[float, tuple[float, float], float]:
    """A study that ended at `look` (1-based) with `data`, under the efficacy boundaries
    `bounds` at information fractions `fractions`: its median-unbiased estimate, 1 - `alpha`
    interval and two-sided p-value under the stage-wise ordering, on the estimate's scale
    (a drift's mean Z at the look times `normal_equivalent_se`; see the module's docstring)."""
    z = z_from_t(data.estimate, data.se, data.df)
    inference = stagewise_inference(fractions, bounds, look, z, alpha)
    scale = math.sqrt(float(np.asarray(fractions, dtype=float)[look - 1])) * normal_equivalent_se(
        data.estimate, data.se, data.df)
    low, high = inference.drift_ci
    return inference.drift * scale, (low * scale, high * scale), inference.p_two_sided


def monitor(looks_data: list[LookInput], planned: tuple[int, ...], alpha: float, effect: float,
            power: float = DEFAULT_POWER, *, adjust: bool = True) -> tuple[list[LookOutcome], float | None]:
    """Replay the looks taken (`looks_data[k]` at `planned[k]` evaluators); stop at the first
    that crosses its boundary or says futility. Returns the looks' outcomes and the
    evaluators the planned effect would need in all, at the last look's variance, for
    `power` at the last boundary (None when no look has a standard error). A look that
    crosses, and the last planned look, carry the stage-wise adjusted estimate, interval
    (1 - `alpha`) and p-value; a stop for futility before the last look carries none, nor
    does any look when `adjust` is False (simulations that want only the decisions: each
    adjusted estimate costs a few root-findings on the grid, milliseconds)."""
    if len(looks_data) > len(planned):
        raise ValueError(f"{len(looks_data)} looks taken but {len(planned)} planned ({list(planned)})")
    if not (math.isfinite(effect) and effect > 0):
        raise ValueError(f"effect must be a positive difference, got {effect!r}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    fractions = np.asarray(planned, dtype=float) / planned[-1]
    c = boundaries(fractions, alpha)
    out: list[LookOutcome] = []
    needed = None
    for k, look in enumerate(looks_data):
        z = z_from_t(look.estimate, look.se, look.df)
        crowd = crowd_drift_p(looks_data[: k + 1])
        if not math.isfinite(z):
            out.append(LookOutcome(k + 1, look.n_evaluators, float(fractions[k]), look.estimate,
                                   look.se, z, float(c[k]), math.nan, CONTINUE, crowd_drift_p=crowd))
            continue
        # SE shrinks as 1 / sqrt(evaluators): the planned effect's drift at the last look.
        se_final = look.se * math.sqrt(look.n_evaluators / planned[-1])
        planned_drift = math.copysign(effect / se_final, z if z != 0 else 1.0)
        cp = conditional_power(z, float(fractions[k]), float(c[-1]), planned_drift)
        needed = look.n_evaluators * (look.se * (c[-1] + sps.norm.ppf(power)) / effect) ** 2
        if abs(z) >= c[k]:
            decision = STOP_DIFFERENCE
        elif cp < FUTILITY_POWER or k == len(planned) - 1:
            decision = STOP_FUTILITY
        else:
            decision = CONTINUE
        adjusted, adjusted_ci, adjusted_p = math.nan, (math.nan, math.nan), math.nan
        if adjust and (decision == STOP_DIFFERENCE or k == len(planned) - 1):
            adjusted, adjusted_ci, adjusted_p = adjusted_estimate(look, fractions, c, k + 1, alpha)
        out.append(LookOutcome(k + 1, look.n_evaluators, float(fractions[k]), look.estimate,
                               look.se, z, float(c[k]), cp, decision, adjusted, adjusted_ci, adjusted_p,
                               crowd_drift_p=crowd))
        if decision != CONTINUE:
            break
    return out, needed
