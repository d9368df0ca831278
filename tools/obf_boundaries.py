"""Which O'Brien-Fleming-type convention evalstudy.sequential uses, checked exactly.

For four equally spaced looks at two-sided alpha = 0.05 it prints evalstudy's boundaries,
the probability that a Brownian motion observed at the looks first crosses each boundary
(scipy's multivariate normal CDF, Cov(Z_j, Z_k) = sqrt(t_j / t_k), no simulation), and the
same for the one-sided-spending convention of gsDesign / rpact / ldbounds (alpha / 2 per
side spent by 2 - 2 Phi(z_(1 - alpha/4) / sqrt(t)), symmetric boundaries).

    .venv/bin/python -m tools.obf_boundaries
"""

import numpy as np
from scipy import optimize
from scipy import stats as sps

from evalstudy.sequential import boundaries, obf_spending

ALPHA = 0.05
T = np.array([0.25, 0.5, 0.75, 1.0])


def _cov(t: np.ndarray) -> np.ndarray:
    return np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))


MVN_SEED = 0


def no_crossing_by(c: np.ndarray, t: np.ndarray, k: int) -> float:
    """P(|Z_j| < c_j for j <= k), exactly (up to scipy's integration error: a randomized
    quasi-Monte Carlo rule, about 3e-4 relative at ten looks; seeded, so that a check of
    the boundaries gives the same number every run instead of an error drawn anew)."""
    mvn = sps.multivariate_normal(mean=np.zeros(k), cov=_cov(t[:k]), seed=MVN_SEED)
    lo, hi = -np.asarray(c[:k]), np.asarray(c[:k])
    return float(mvn.cdf(hi, lower_limit=lo))


def spent(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cumulative two-sided alpha spent by each look."""
    return np.array([1.0 - no_crossing_by(c, t, k) for k in range(1, len(t) + 1)])


def one_sided_convention(t: np.ndarray, alpha: float) -> np.ndarray:
    """Boundaries whose upper-side crossing spends alpha/2 by the O'Brien-Fleming-type
    function of alpha/2 (the gsDesign / rpact tables), solved look by look exactly."""
    side = 2.0 - 2.0 * sps.norm.cdf(sps.norm.ppf(1.0 - alpha / 4.0) / np.sqrt(t))
    c: list[float] = []
    for k in range(1, len(t) + 1):
        def total(x: float, k: int = k) -> float:
            return 1.0 - no_crossing_by(np.array(c + [x]), t, k) - 2.0 * side[k - 1]
        c.append(optimize.brentq(total, 0.5, 10.0, xtol=1e-8))
    return np.array(c)


def main() -> None:
    ours = boundaries(T, ALPHA)
    print(f"looks at t = {T.tolist()}, two-sided alpha = {ALPHA}")
    print("evalstudy (alpha(t) = 2 - 2 Phi(z_(1-alpha/2) / sqrt t) on |Z|):")
    print("  boundaries      ", np.round(ours, 4).tolist())
    print("  alpha spent (mvn)", np.round(spent(ours, T), 6).tolist())
    print("  spending target  ", np.round(obf_spending(T, ALPHA), 6).tolist())
    other = one_sided_convention(T, ALPHA)
    print("gsDesign / rpact convention (alpha/2 per side, z_(1-alpha/4)):")
    print("  boundaries      ", np.round(other, 4).tolist())
    print("  alpha spent (mvn)", np.round(spent(other, T), 6).tolist())


if __name__ == "__main__":
    main()
