"""Wilson's score interval on an effective number of rankings (evalstudy.confidence.score_intervals),
the interval of a pairs study's pair shares."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstudy.confidence import score_intervals

Z = 1.959963984540054  # the normal 97.5% quantile


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927) for k successes in n, written out: the p with (k/n - p)^2 = z^2 p (1 - p) / n."""
    a = 1 + Z * Z / n
    b = -(2 * k / n + Z * Z / n)
    c = (k / n) ** 2
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize(("k", "n"), [(7, 10), (1, 12), (25, 40), (3, 3), (0, 9)])
def test_independent_rankings_give_wilsons_interval(k, n):
    p = k / n
    var = p * (1 - p) / n  # what n independent rankings give a share: a design effect of one
    lo, hi = score_intervals(np.array([p]), np.array([var]), np.array([var]), np.array([n]), 0.95)[0]
    assert (lo, hi) == pytest.approx(_wilson(k, n), abs=1e-12)


def test_a_pair_won_every_time_gets_a_proper_interval():
    # Ten rankings all won by a: the variance is 0 and says nothing; n_eff = 10.
    lo, hi = score_intervals(np.array([1.0]), np.array([0.0]), np.array([0.0]), np.array([10]), 0.95)[0]
    assert hi == pytest.approx(1.0)
    assert lo == pytest.approx(10 / (10 + Z * Z))


def test_a_design_effect_widens_and_one_below_one_does_not_narrow():
    p, n = np.array([0.7]), np.array([20])
    srs = p * (1 - p) / n
    plain = score_intervals(p, srs, srs, n, 0.95)[0]
    clustered = score_intervals(p, 2 * srs, srs, n, 0.95)[0]  # design effect 2: as if 10 rankings
    assert clustered == pytest.approx(_wilson(7, 10), abs=1e-12)
    assert clustered[1] - clustered[0] > plain[1] - plain[0]
    # A crossed variance that came out below the independent one is noise: held at it.
    assert score_intervals(p, srs / 3, srs, n, 0.95)[0] == pytest.approx(plain)


def test_no_crossed_variance_no_interval():
    out = score_intervals(np.array([0.5, 0.4]), np.array([np.nan, 0.01]), np.array([0.0, 0.01]),
                          np.array([1, 20]), 0.95)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


@settings(max_examples=200, deadline=None)
@given(p=st.floats(0, 1), deff=st.floats(0.2, 20), n=st.integers(1, 500), level=st.sampled_from([0.8, 0.9, 0.95]))
def test_the_interval_holds_the_estimate_inside_zero_one(p, deff, n, level):
    srs = p * (1 - p) / n
    lo, hi = score_intervals(np.array([p]), np.array([deff * srs]), np.array([srs]), np.array([n]), level)[0]
    assert 0.0 <= lo <= p + 1e-12 and p - 1e-12 <= hi <= 1.0
    assert hi - lo > 0  # never a point, not even at 0 or 1


# ---------------------------------------------------------------------------
# With the variance's degrees of freedom: every rate of the analysis (data.rate_intervals)
# ---------------------------------------------------------------------------

def _t(level: float, df: float) -> float:
    from scipy import stats as sps
    return float(sps.t.ppf((1 + level) / 2, df))


@pytest.mark.parametrize(("k", "n"), [(7, 10), (1, 12), (25, 40), (0, 9), (30, 30), (499, 500)])
def test_independent_trials_reduce_to_statsmodels_wilson(k, n):
    # The reference: statsmodels' Wilson interval for k of n independent trials; with many df the
    # t quantile is the normal's.
    from statsmodels.stats.proportion import proportion_confint

    p = k / n
    var = p * (1 - p) / n
    expected = proportion_confint(k, n, alpha=0.05, method="wilson")
    for df in (None, 1e12):
        got = score_intervals(np.array([p]), np.array([var]), np.array([var]), np.array([n]), 0.95,
                              None if df is None else np.array([df]))[0]
        assert got == pytest.approx(expected, abs=1e-9)


def test_every_trial_a_success_gives_n_over_n_plus_t_squared():
    # Korn and Graubard's design effect of one at the bound, t on the df: [n / (n + t^2), 1], not [1, 1].
    n, df = 90, 12.0
    lo, hi = score_intervals(np.array([1.0]), np.array([0.0]), np.array([0.0]), np.array([n]), 0.95,
                             np.array([df]))[0]
    assert hi == pytest.approx(1.0)
    assert lo == pytest.approx(n / (n + _t(0.95, df) ** 2), abs=1e-12)
    lo0, hi0 = score_intervals(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([n]), 0.95,
                               np.array([df]))[0]
    assert (lo0, hi0) == pytest.approx((1 - hi, 1 - lo), abs=1e-12)


def test_fewer_degrees_of_freedom_widen_the_interval():
    # The df adjustment: Wilson with t_df is Wilson with z on n_eff (z / t_df)^2.
    p, n = np.array([0.3]), np.array([60])
    srs = p * (1 - p) / n
    widths = [np.diff(score_intervals(p, 2 * srs, srs, n, 0.95, np.array([df]))[0])[0] for df in (2, 5, 20, 1e9)]
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))
    q = _t(0.95, 5)
    scaled = srs * (q / Z) ** 2  # the variance of a rate from n (Z / q)^2 independent trials
    as_n = score_intervals(p, scaled, scaled, n * (Z / q) ** 2, 0.95)[0]
    assert score_intervals(p, srs, srs, n, 0.95, np.array([5.0]))[0] == pytest.approx(as_n, abs=1e-12)


def test_an_undefined_df_gives_no_interval():
    out = score_intervals(np.array([0.5]), np.array([0.01]), np.array([0.01]), np.array([20]), 0.95,
                          np.array([np.nan]))
    assert np.isnan(out).all()


@settings(max_examples=300, deadline=None)
@given(k=st.integers(0, 400), n=st.integers(1, 400), deff=st.floats(0.2, 20), df=st.floats(1, 1e4),
       level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_the_interval_holds_the_estimate_and_shrinks_with_n(k, n, deff, df, level):
    k = min(k, n)
    p = k / n

    def interval(trials: int) -> np.ndarray:
        srs = p * (1 - p) / trials
        return score_intervals(np.array([p]), np.array([deff * srs]), np.array([srs]), np.array([trials]),
                               level, np.array([df]))[0]

    lo, hi = interval(n)
    assert 0.0 <= lo <= p + 1e-12 and p - 1e-12 <= hi <= 1.0
    assert hi - lo > 0  # never a point, not even at 0 or 1
    lo2, hi2 = interval(2 * n)  # the same rate from twice the trials
    assert hi2 - lo2 < hi - lo
