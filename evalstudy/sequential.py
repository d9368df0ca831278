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
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

from .protocol import DEFAULT_POWER

FUTILITY_POWER = 0.10   # conditional power below which a look says "no difference ... likely"
GRID = 1201             # points of the integration grid per look (odd, for Simpson's rule)

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


def obf_spending(t, alpha: float) -> np.ndarray:
    """The error rate spent by information fraction t (0 < t <= 1): Lan-DeMets'
    O'Brien-Fleming-type function, two-sided."""
    t = np.asarray(t, dtype=float)
    return 2.0 - 2.0 * sps.norm.cdf(sps.norm.ppf(1.0 - alpha / 2.0) / np.sqrt(t))


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _simpson_weights(n: int, h: float) -> np.ndarray:
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * h / 3.0


def boundaries(fractions, alpha: float) -> np.ndarray:
    """Two-sided z boundaries c_1..c_K at information fractions 0 < t_1 < ... < t_K (t_K is
    normally 1) such that, for a Brownian motion observed at the t_k, the chance of a first
    crossing |Z_k| >= c_k at look k is alpha(t_k) - alpha(t_(k-1)) (`obf_spending`)."""
    _check_alpha(alpha)
    return np.array(_boundaries(tuple(float(x) for x in np.asarray(fractions, dtype=float)), float(alpha)))


@functools.lru_cache(maxsize=64)  # a study's plan asks for the same boundaries at every look
def _boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    t = np.asarray(fractions, dtype=float)
    if len(t) == 0 or np.any(t <= 0) or np.any(np.diff(t) <= 0) or t[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1], got {t.tolist()}")
    spent = obf_spending(t, alpha)
    c = np.empty(len(t))
    c[0] = sps.norm.ppf(1.0 - spent[0] / 2.0)
    # The sub-density of B = Z sqrt(t) at the last look, on the continuation region.
    b = c[0] * math.sqrt(t[0])
    x = np.linspace(-b, b, GRID)
    f = sps.norm.pdf(x / math.sqrt(t[0])) / math.sqrt(t[0]) * _simpson_weights(GRID, x[1] - x[0])
    for k in range(1, len(t)):
        sd = math.sqrt(t[k] - t[k - 1])
        target = spent[k] - spent[k - 1]

        def crossing(z, x=x, f=f, sd=sd, tk=t[k]):
            bk = z * math.sqrt(tk)
            return float(f @ (sps.norm.sf((bk - x) / sd) + sps.norm.cdf((-bk - x) / sd)))

        if target <= 0:
            c[k] = np.inf
        else:
            c[k] = optimize.brentq(lambda z, goal=target: crossing(z) - goal, 0.0, 40.0, xtol=1e-10)
        bk = c[k] * math.sqrt(t[k]) if np.isfinite(c[k]) else 40.0 * math.sqrt(t[k])
        y = np.linspace(-bk, bk, GRID)
        dens = sps.norm.pdf((y[:, None] - x[None, :]) / sd) / sd @ f  # (GRID,)
        x, f = y, dens * _simpson_weights(GRID, y[1] - y[0])
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


def conditional_power(z: float, t: float, final_boundary: float, drift: float) -> float:
    """P(|Z_final| >= final_boundary | Z at fraction t is z) when the B-value drifts by
    `drift` per unit of information (drift = E[Z] at t = 1)."""
    if t >= 1.0:
        return float(abs(z) >= final_boundary)
    b = z * math.sqrt(t)
    mean = b + drift * (1.0 - t)
    sd = math.sqrt(1.0 - t)
    return float(sps.norm.sf((final_boundary - mean) / sd) + sps.norm.cdf((-final_boundary - mean) / sd))


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


def monitor(looks_data: list[LookInput], planned: tuple[int, ...], alpha: float, effect: float,
            power: float = DEFAULT_POWER) -> tuple[list[LookOutcome], float | None]:
    """Replay the looks taken (`looks_data[k]` at `planned[k]` evaluators); stop at the first
    that crosses its boundary or says futility. Returns the looks' outcomes and the
    evaluators the planned effect would need in all, at the last look's variance, for
    `power` at the last boundary (None when no look has a standard error)."""
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
        if not math.isfinite(z):
            out.append(LookOutcome(k + 1, look.n_evaluators, float(fractions[k]), look.estimate,
                                   look.se, z, float(c[k]), math.nan, CONTINUE))
            continue
        # SE shrinks as 1 / sqrt(evaluators): the planned effect's drift at the last look.
        se_final = look.se * math.sqrt(look.n_evaluators / planned[-1])
        drift = math.copysign(effect / se_final, z if z != 0 else 1.0)
        cp = conditional_power(z, float(fractions[k]), float(c[-1]), drift)
        needed = look.n_evaluators * (look.se * (c[-1] + sps.norm.ppf(power)) / effect) ** 2
        if abs(z) >= c[k]:
            decision = STOP_DIFFERENCE
        elif cp < FUTILITY_POWER or k == len(planned) - 1:
            decision = STOP_FUTILITY
        else:
            decision = CONTINUE
        out.append(LookOutcome(k + 1, look.n_evaluators, float(fractions[k]), look.estimate,
                               look.se, z, float(c[k]), cp, decision))
        if decision != CONTINUE:
            break
    return out, needed
