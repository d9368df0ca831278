"""A paired difference of two rates (two variants' match ratios on the same items and raters)
gets Newcombe's hybrid score interval from the rates' own score intervals
(`confidence.paired_score_difference`, `analysis.data.rate_difference_interval`): never [0, 0]
where both rates sit at a bound, and with independent trials it is Newcombe's (1998) method 10."""

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from evalstudy import bootstrap as bs
from evalstudy.analysis import analyze
from evalstudy.analysis.data import _CountData, _evaluator_codes, paired_rate_correlation
from evalstudy.analysis.significance import planned_difference
from evalstudy.confidence import paired_score_difference, score_intervals
from evalstudy.responses import responses_from_rows
from tests.narrow import present

V = ["a-early", "a-intermediate"]


def _newcombe_method_10(e: int, f: int, g: int, h: int) -> tuple[float, float]:
    """Method 10 on the paired 2 x 2 table (e both 1, f first only, g second only, h neither),
    through the analysis' pieces with independent trials: each rate's Wilson interval is
    `score_intervals` with the binomial variance (design effect 1) and the normal quantile,
    the correlation `paired_rate_correlation` on the binomial variances and covariance."""
    n = e + f + g + h
    p1, p2 = (e + f) / n, (e + g) / n
    v1, v2 = p1 * (1 - p1) / n, p2 * (1 - p2) / n
    cov = (e * h - f * g) / n ** 3
    ci = score_intervals(np.array([p1, p2]), np.array([v1, v2]), np.array([v1, v2]), np.array([n, n]), 0.95)
    # The score part is Wilson's own interval (statsmodels as the reference).
    for k, successes in enumerate((e + f, e + g)):
        assert ci[k] == pytest.approx(proportion_confint(successes, n, method="wilson"), abs=1e-12)
    phi = paired_rate_correlation(v1, v2, v1 + v2 - 2 * cov, n, n)
    lo, hi = paired_score_difference(np.array([p1]), ci[:1], np.array([p2]), ci[1:], np.atleast_1d(phi))[0]
    return float(lo), float(hi)


# Newcombe 1998, Table II, method 10 (95%): the four paired examples and their limits.
@pytest.mark.parametrize(("table", "limits"), [
    ((36, 12, 2, 0), (0.0569, 0.3404)),
    ((18, 12, 2, 18), (0.0562, 0.3290)),
    ((53, 0, 0, 1), (-0.0729, 0.0729)),
    ((0, 30, 0, 0), (0.8395, 1.0)),
])
def test_newcombe_1998_table_ii_method_10(table, limits):
    assert _newcombe_method_10(*table) == pytest.approx(limits, abs=5e-5)


def test_the_continuity_correction_lowers_only_a_positive_correlation():
    # The 18/12/2/18 table: phi = 300 / 600 = 0.5 before the correction, (300 - 25) / 600 after.
    n = 50
    v1 = v2 = 0.6 * 0.4 / n
    cov = 300 / n ** 3
    assert paired_rate_correlation(v1, v2, v1 + v2 - 2 * cov, n, n, continuity=False) == pytest.approx(0.5)
    assert paired_rate_correlation(v1, v2, v1 + v2 - 2 * cov, n, n) == pytest.approx(275 / 600)
    assert paired_rate_correlation(v1, v2, v1 + v2 + 2 * cov, n, n) == pytest.approx(-0.5)
    # A rate with no variance (all 1) has no correlation to estimate.
    assert paired_rate_correlation(0.0, v2, v2, n, n) == 0.0


def test_one_rater_per_item_gives_the_phi_coefficient_of_the_pairs():
    # Each item its own rater: the crossed variances are the binomial ones times one common
    # factor, so their correlation is the 2 x 2 table's phi, (AD - BC) / sqrt(EFGH).
    e, f, g, h = 18, 12, 2, 18
    first = np.array([1] * e + [1] * f + [0] * g + [0] * h, dtype=float)
    second = np.array([1] * e + [0] * f + [1] * g + [0] * h, dtype=float)
    n = len(first)
    unit = np.tile(np.arange(n), 2)
    group = np.repeat([0, 1], n)
    num = np.concatenate([first, second])
    den = np.ones(2 * n)
    own = bs.ratio_corrections(unit, unit, group, num, den, 2, 0.95)
    _, spread = planned_difference(unit, unit, group, num, den, 0, 1, 2, 0.95, own.var)
    phi = paired_rate_correlation(own.var[0], own.var[1], spread.var[0], n, n, continuity=False)
    assert phi == pytest.approx((e * h - f * g) / math.sqrt((e + f) * (g + h) * (e + g) * (f + h)))


def _count_row(ev, item, variant, answer, seed):
    return {"task": "count", "item_id": item, "evaluator_id": ev, "variant": variant,
            "prompt": "3 cats", "object": "cat", "true_count": 3, "answer_count": answer, "rank": "",
            "skipped": 0, "skip_reason": "", "position": "", "seconds": 4, "is_gold": 0, "seed": seed}


def _all_right_study(n_units: int = 8):
    """Both variants: every one of 8 units answered right by 3 of 6 raters."""
    rows = []
    rng = np.random.default_rng(3)
    for u in range(n_units):
        for e in rng.choice(6, 3, replace=False):
            rows += [_count_row(f"r{e}", f"{v}:{u}", v, 3, u) for v in V]
    return responses_from_rows(rows)


def test_two_all_correct_match_ratios_differ_by_an_interval_not_by_exactly_zero():
    res = analyze(_all_right_study(), n_boot=200)
    (test,) = [t for t in res.tests.paired if t.measure == "match_ratio"]
    assert test.difference == 0.0
    lo, hi = present(test.difference_ci[0]), present(test.difference_ci[1])
    # Each rate's interval is [l, 1] with l < 1 (24 answers); the difference's ends are
    # -(1 - l_a) and 1 - l_b: as far from 0 as each rate's own interval is from 1.
    lows = {s.variant: present(s.match_ratio_ci[0]) for s in res.count.by_variant}
    a, b = test.a, test.b
    assert lo == pytest.approx(-(1.0 - lows[a])) and hi == pytest.approx(1.0 - lows[b])
    assert -0.5 < lo < 0.0 < hi < 0.5


def _uneven_study():
    """30 units, 3 of 10 raters each; a-early misses more often, hard units for both."""
    rng = np.random.default_rng(11)
    rows = []
    for u in range(30):
        hard = rng.random() < 0.3
        for e in rng.choice(10, 3, replace=False):
            for v, miss in zip(V, (0.3, 0.1), strict=True):
                wrong = rng.random() < miss + (0.3 if hard else 0.0)
                rows.append(_count_row(f"r{e}", f"{v}:{u}", v, 4 if wrong else 3, u))
    return responses_from_rows(rows)


def _count_rows(table):
    ev_code, _ = _evaluator_codes(table)
    c = _CountData.build(table, ev_code, V, ["cat"])
    return c.unit, c.evaluator, c.variant, c.match, c.answered


def test_the_planned_match_ratio_difference_gets_newcombes_interval_on_the_fewer_df():
    table = _uneven_study()
    res = analyze(table, n_boot=200)
    (test,) = [t for t in res.tests.paired if t.measure == "match_ratio"]
    ia, ib = V.index(test.a), V.index(test.b)
    unit, ev, var, num, den = _count_rows(table)
    own = bs.ratio_corrections(unit, ev, var, num, den, 2, 0.95)
    diff, spread = planned_difference(unit, ev, var, num, den, ia, ib, 2, 0.95, own.var)
    assert present(test.difference) == pytest.approx(diff)
    # Here the pairing leaves the difference fewer df than either rate has.
    assert spread.df[0] < own.df.min()
    p = np.array([num[var == k].sum() / den[var == k].sum() for k in (0, 1)])
    trials = np.array([den[var == k].sum() for k in (0, 1)])
    independent = p * (1 - p) / trials  # every answer of weight one

    def newcombe(df):
        ci = score_intervals(p, own.var, independent, trials, 0.95, df)
        va, vb = own.var[ia], own.var[ib]
        phi = max((va + vb - spread.var[0]) / 2 - 0.5 / (trials[ia] * trials[ib]), 0.0) / math.sqrt(va * vb)
        lo_a, hi_a = p[ia] - ci[ia][0], ci[ia][1] - p[ia]
        lo_b, hi_b = p[ib] - ci[ib][0], ci[ib][1] - p[ib]
        return (diff - math.sqrt(lo_a ** 2 - 2 * phi * lo_a * hi_b + hi_b ** 2),
                diff + math.sqrt(hi_a ** 2 - 2 * phi * hi_a * lo_b + lo_b ** 2))

    reported = (present(test.difference_ci[0]), present(test.difference_ci[1]))
    assert reported == pytest.approx(newcombe(np.minimum(own.df, spread.df[0])), abs=1e-12)
    # On the rates' own df it would be narrower.
    own_df = newcombe(own.df)
    assert reported[1] - reported[0] > own_df[1] - own_df[0] + 1e-3
    assert reported[0] < diff < reported[1]
