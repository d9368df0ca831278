"""bench/pair_margin.py: Tango's score interval for a trinomial win margin (checked against
Wilson's interval where nothing is tied and against the score statistic computed another way
where something is), the crowd's trinomial, and the table and verdict that compare it with
the ties-half interval the analysis reports."""
import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from bench.pair_margin import (
    METHODS,
    crowd_margin,
    rows,
    rule,
    simulate_margin,
    solve_margin_mu,
    trinomial_margin_interval,
)
from bench.rate_bounds import CROWDS

Z = float(sps.norm.ppf(0.975))


@pytest.mark.parametrize(("wins", "n"), [(12, 12), (0, 5), (7, 12), (30, 40), (1, 20), (50, 100)])
def test_without_ties_it_is_wilsons_interval_of_the_win_share_mapped(wins, n):
    low, high = proportion_confint(wins, n, alpha=0.05, method="wilson")
    assert trinomial_margin_interval(wins, n - wins, n, 1.0, Z) == pytest.approx((2 * low - 1, 2 * high - 1),
                                                                                  abs=1e-9)


def _score_statistic(wins: int, ties: int, losses: int, d0: float) -> float:
    """Tango's statistic at d0 with the restricted maximum found by a numerical search over the
    loss share (not the closed-form root the bench uses)."""
    n = wins + ties + losses

    def minus_loglik(pl: float) -> float:
        shares = ((wins, pl + d0), (losses, pl), (ties, 1 - 2 * pl - d0))
        return -sum(k * math.log(max(p, 1e-300)) for k, p in shares if k)

    pl = optimize.minimize_scalar(minus_loglik, bounds=(max(0.0, -d0), (1 - d0) / 2), method="bounded",
                                  options={"xatol": 1e-12}).x
    return (wins - losses - n * d0) / math.sqrt(n * (2 * pl + d0 * (1 - d0)))


# Newcombe's (1998) four paired examples read as wins (his f), ties (e + h) and losses (g):
# 36/12/2/0 and 18/12/2/18 are both (12, 36, 2); and some of a pilot's.
@pytest.mark.parametrize(("wins", "ties", "losses"), [(12, 36, 2), (0, 54, 0), (30, 0, 0), (9, 3, 0), (5, 10, 5),
                                                      (2, 20, 7), (1, 1, 1)])
def test_with_ties_the_ends_are_where_the_score_statistic_reaches_the_quantile(wins, ties, losses):
    low, high = trinomial_margin_interval(wins, losses, wins + ties + losses, 1.0, Z)
    d = (wins - losses) / (wins + ties + losses)
    for end, sign in ((low, 1.0), (high, -1.0)):
        if abs(end) < 1.0:
            assert sign * _score_statistic(wins, ties, losses, end) == pytest.approx(Z, abs=1e-5)
        else:  # at a bound only where the estimate is that bound
            assert end == pytest.approx(d)
    for d0 in np.linspace(max(low, -0.999), min(high, 0.999), 7)[1:-1]:
        assert abs(_score_statistic(wins, ties, losses, d0)) < Z + 1e-9
    if low > -1:
        assert _score_statistic(wins, ties, losses, low - 0.01) > Z


def test_every_ranking_tied_and_a_design_effect():
    n = 12
    assert trinomial_margin_interval(0, 0, n, 1.0, Z) == pytest.approx((-Z * Z / (n + Z * Z), Z * Z / (n + Z * Z)),
                                                                       abs=1e-9)
    # A variance four times the independent one: the interval of the same shares from a quarter
    # of the rankings.
    assert trinomial_margin_interval(40, 8, 100, 4.0, Z) == pytest.approx(trinomial_margin_interval(10, 2, 25, 1.0, Z),
                                                                         abs=1e-9)


@pytest.mark.parametrize("nu", [0.0, 1.0, 4.0])
def test_the_crowds_margin_is_the_target_and_shows_in_its_rankings(nu):
    crowd = CROWDS["captions"]
    mu = solve_margin_mu(crowd, 0.5, nu)
    assert crowd_margin(crowd, mu, nu) == pytest.approx(0.5, abs=1e-9)
    item, rater, won, lost = simulate_margin(crowd, mu, nu, 400, 40, 3, np.random.default_rng(0))
    assert not (won * lost).any()
    assert (won - lost).mean() == pytest.approx(0.5, abs=0.08)
    assert ((1 - won - lost).mean() > 0.1) == (nu > 0)


def test_at_a_sweep_the_bootstrap_is_zero_width_and_the_score_intervals_are_not():
    lines, tallies = rows(10, 50, ["iid"], ((4, 4, 2),), margins=(1.0,), ties=(0.0,))
    assert len(lines) == 2
    (t,) = tallies
    assert set(t) == set(METHODS)
    assert t["bootstrap"][2] == 0.0 and t["bootstrap"][3] == 1.0
    for m in ("ties-half", "tango"):  # [1 - 2 t^2 / (8 + t^2), 1]: about 0.86 wide on 5 df
        assert t[m][0] == 1.0 and t[m][2] > 0.5 and t[m][3] == 0.0


def test_the_rule_compares_coverage_where_the_old_interval_is_not_degenerate():
    def row(old, new, zero):
        return {"old": (old, 0.0, 0.1, zero), "new": (new, 0.0, 0.1, 0.0)}
    assert not rule([row(0.95, 0.90, 0.0), row(0.5, 1.0, 0.6)], "old", "new")[0]
    assert rule([row(0.95, 0.95, 0.0), row(0.5, 0.90, 0.6)], "old", "new")[0]
    assert not rule([row(0.95, 0.94, 0.0), row(0.96, 0.95, 0.0)], "old", "new")[0]  # lower mean
