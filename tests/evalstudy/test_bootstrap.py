"""The crossed bootstrap's machinery against brute force and hand-worked variances."""

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from evalstudy import bootstrap as bs
from evalstudy import confidence


def test_weights_are_multinomial_counts():
    w = bs.draw_weights(7, 50, np.random.default_rng(0))
    assert w.shape == (50, 7)
    assert (w.sum(axis=1) == 7).all() and (w >= 0).all()


def test_crossed_sums_equal_a_loop_over_resamples():
    rng = np.random.default_rng(1)
    n = 300
    unit, ev, group = rng.integers(0, 12, n), rng.integers(0, 9, n), rng.integers(0, 4, n)
    values = rng.normal(size=n)
    w, v = bs.draw_weights(12, 30, rng), bs.draw_weights(9, 30, rng)
    fast = bs.crossed_sums(unit, ev, group, values, 4, w, v)
    slow = np.zeros((30, 4))
    for b in range(30):
        for r in range(n):
            slow[b, group[r]] += w[b, unit[r]] * v[b, ev[r]] * values[r]
    assert fast == pytest.approx(slow)


def test_shrink_for_one_to_one_items_and_evaluators_by_hand():
    # One response per item and per evaluator: the three variance components are equal
    # (V), the product weights give 3V, the target is 2 V n/(n-1) - V (the one-way parts
    # unbiased), and the t quantile replaces the normal one. Its df is Satterthwaite's for
    # T = Vu' + Ve' - Vc with Var(T) = Var(Vu') + Var(Ve') - Var(Vc), each part on n - 1 df
    # (values +-1: every item and evaluator contributes alike, so the effective numbers
    # are n): T^2 (n - 1) / (2 Vu'^2 - V^2) = (n + 1)^2 (n - 1) / (n^2 + 2n - 1), about
    # n - 1, as items and evaluators are one and the same here.
    n = 50
    c = bs.ratio_shrink(np.arange(n), np.arange(n), np.zeros(n, dtype=int), np.tile([1.0, -1.0], n // 2),
                        np.ones(n), 1, 0.95)
    t_over_z = sps.t.ppf(0.975, (n + 1) ** 2 * (n - 1) / (n ** 2 + 2 * n - 1)) / sps.norm.ppf(0.975)
    assert c[0] == pytest.approx(np.sqrt((2 * n / (n - 1) - 1) / 3) * t_over_z)


def test_shrink_is_near_one_for_a_fully_crossed_design():
    # Every evaluator saw every item: the cells are single responses, V_cells is small
    # against V_items + V_evaluators, and the factor stays close to 1.
    n_items, n_ev = 40, 30
    rng = np.random.default_rng(3)
    unit = np.repeat(np.arange(n_items), n_ev)
    ev = np.tile(np.arange(n_ev), n_items)
    y = rng.normal(size=n_items)[unit] + rng.normal(size=n_ev)[ev] + 0.1 * rng.normal(size=len(unit))
    c = bs.ratio_shrink(unit, ev, np.zeros(len(unit), dtype=int), y, np.ones(len(unit)), 1, 0.95)
    assert 0.95 < c[0] < 1.1


def test_uneven_loads_lower_the_centring_factor_below_n_minus_1_over_n():
    # Equal shares: kappa = (n - 1) / n. One evaluator with half of the answers pulls the
    # estimate half-way to themselves: kappa = 1 - 2 sum a^3 / sum a^2 + sum a^2.
    g = np.zeros(10, dtype=int)
    assert bs.centring_factors(np.arange(10), g, np.ones(10), 1)[0] == pytest.approx(0.9)
    key = np.r_[np.zeros(9, dtype=int), np.arange(1, 10)]  # evaluator 0 answers 9 of 18
    a = np.r_[0.5, np.full(9, 0.5 / 9)]
    want = 1 - 2 * (a ** 3).sum() / (a ** 2).sum() + (a ** 2).sum()
    got = bs.centring_factors(key, np.zeros(18, dtype=int), np.ones(18), 1)[0]
    assert got == pytest.approx(want) and got < 0.6


def test_centring_factor_makes_an_uneven_evaluator_part_unbiased():
    """Evaluators with i.i.d. effects and very uneven loads: the linearised evaluator part
    divided by kappa averages the true variance of the load-weighted mean; divided by
    n / (n - 1) it falls well short."""
    rng = np.random.default_rng(11)
    loads = np.array([60, 25, 8, 3, 2, 1, 1])
    ev = np.repeat(np.arange(len(loads)), loads)
    a = loads / loads.sum()
    true_var = (a ** 2).sum()  # effects of variance 1
    ratios_kappa, ratios_plain = [], []
    for _ in range(4000):
        x = rng.normal(size=len(loads))[ev]
        z = (x - x.mean()) / len(x)
        _, ve, _, _, ne, _, _, _, _ = bs.linearised_variances(np.arange(len(x)), ev, np.zeros(len(x), dtype=int), z, 1)
        kappa = bs.centring_factors(ev, np.zeros(len(x), dtype=int), np.ones(len(x)), 1)
        ratios_kappa.append(ve[0] / kappa[0] / true_var)
        ratios_plain.append(ve[0] * ne[0] / (ne[0] - 1) / true_var)
    assert 0.95 < np.mean(ratios_kappa) < 1.05
    assert np.mean(ratios_plain) < 0.7


def test_ratio_shrink_applies_the_centring_factors_of_uneven_loads():
    # One evaluator with most of the answers: ratio_shrink must unbias with kappa, which
    # here is far below (n - 1) / n, so its factor is larger than the equal-load one.
    rng = np.random.default_rng(13)
    loads = np.array([40, 5, 3, 2])
    ev = np.repeat(np.arange(len(loads)), loads)
    unit = np.arange(len(ev))
    x = rng.normal(size=len(loads))[ev] + rng.normal(size=len(ev))
    g, ones = np.zeros(len(ev), dtype=int), np.ones(len(ev))
    z = (x - x.mean()) / len(x)
    vu, ve, vc, nu, ne, ku, ke, nc, kc = bs.linearised_variances(unit, ev, g, z, 1)
    c_unit, c_eval = (bs.centring_factors(k, g, ones, 1) for k in (unit, ev))
    want = bs.shrink_factors(vu, ve, vc, nu, ne, 0.95, ku, ke, c_unit, c_eval, nc, kc)[0]
    got = bs.ratio_shrink(unit, ev, g, x, ones, 1, 0.95)[0]
    assert got == pytest.approx(want, rel=1e-12)
    assert got > bs.shrink_factors(vu, ve, vc, nu, ne, 0.95, ku, ke)[0] * 1.05


def test_one_dominant_item_lowers_the_degrees_of_freedom():
    # A rare very hard image: one item's contribution dwarfs the others', so the item part
    # of the variance rests on about one item and its t factor must be far above z.
    unit = np.arange(30)
    x = np.r_[np.zeros(29), 30.0]
    vu, ve, vc, nu, ne, ku, ke, _, _ = bs.linearised_variances(unit, unit, np.zeros(30, dtype=int),
                                                         x - x.mean(), 1)
    assert nu[0] == 30 and ku[0] < 3.5
    assert bs.effective_df(vu, ve, nu, ne, ku, ke)[0] < 8  # both parts rest on that one
    assert bs.effective_df(vu, ve, nu, ne)[0] > 50


def _implied_over_actual(unit, ev, sd_unit, sd_eval, sd_cell, cells: bool, reps=2000, seed=0):
    """Mean of 2 T^2 / df (the variance of the variance estimate T that the df implies) over
    its Monte Carlo variance, in a two-way normal random-effects model."""
    rng = np.random.default_rng(seed)
    g, one = np.zeros(len(unit), dtype=int), np.ones(len(unit))
    cu, ce = bs.centring_factors(unit, g, one, 1), bs.centring_factors(ev, g, one, 1)
    t_all, implied = [], []
    for _ in range(reps):
        y = (sd_unit * rng.normal(size=unit.max() + 1)[unit] + sd_eval * rng.normal(size=ev.max() + 1)[ev]
             + sd_cell * rng.normal(size=len(unit)))
        vu, ve, vc, nu, ne, ku, ke, nc, kc = bs.linearised_variances(unit, ev, g, (y - y.mean()) / len(y), 1)
        t = max(vu[0] / cu[0] + ve[0] / ce[0] - vc[0], vu[0] / cu[0], ve[0] / ce[0])
        extra = (vc, nc, kc) if cells else ()
        df = bs.effective_df(vu, ve, nu, ne, ku, ke, cu, ce, *extra)[0]
        t_all.append(t)
        implied.append(2 * t * t / df)
    return np.mean(implied) / np.var(t_all)


def test_degrees_of_freedom_follow_the_variance_of_the_variance_estimate():
    """The df must say how noisy T = Vu' + Ve' - Vc is, whether each evaluator has one cell in
    the group (a cell of five images, three raters each, all different: Ve' is Vc again and
    their noise cancels) or many (a variant's 300 answers by 6 raters). Plug-in estimates
    overstate Var(T) by about 1 + 2 / df in both; what matters is that the factor is the
    same. Welch's df of Vu' + Ve' (no cell term) gives 0.6 of the big design's factor in
    the small one, i.e. too many degrees of freedom for the cells."""
    Design = tuple[np.ndarray, np.ndarray, float, float, float]  # (unit, ev, sd_unit, sd_eval, sd_cell)
    small: Design = (np.repeat(np.arange(5), 3), np.arange(15), 1.0, 0.5, 0.5)
    rng = np.random.default_rng(1)
    raters = np.concatenate([rng.choice(6, 3, replace=False) for _ in range(100)])
    big: Design = (np.repeat(np.arange(100), 3), raters, 0.5, 0.7, 1.0)
    with_cells = [_implied_over_actual(*d, cells=True) for d in (small, big)]
    welch = [_implied_over_actual(*d, cells=False) for d in (small, big)]
    assert 0.85 < with_cells[0] / with_cells[1] < 1.15
    assert welch[0] / welch[1] < 0.75


def test_no_interval_from_a_single_item():
    c = bs.ratio_shrink(np.zeros(5, dtype=int), np.arange(5), np.zeros(5, dtype=int),
                        np.arange(5.0), np.ones(5), 1, 0.95)
    assert np.isnan(c[0])


def _one(estimate, replicates, level, shrink=1.0, bounds=(-np.inf, np.inf), accel=0.0):
    """confidence.intervals for a single statistic, as a [low, high] list."""
    return confidence.intervals(np.array([estimate]), np.asarray(replicates, dtype=float)[:, None], level,
                        np.array([shrink]), bounds[0], bounds[1], np.array([accel]))[0].tolist()


def test_interval_without_shrink_is_the_percentile_interval():
    reps = np.random.default_rng(4).normal(size=(1000, 1))
    lo, hi = confidence.intervals(np.array([0.0]), reps, 0.95)[0]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(reps[:, 0], [2.5, 97.5])))
    lo2, hi2 = _one(0.0, reps[:, 0], 0.95, shrink=0.5)
    assert (lo2, hi2) == pytest.approx((lo / 2, hi / 2))
    assert _one(0.0, reps[:, 0], 0.95, shrink=3.0, bounds=(-1.0, 1.0)) == [-1.0, 1.0]


def test_undefined_replicates_are_ignored_and_too_few_give_nan():
    reps = np.full((100, 1), np.nan)
    reps[:5, 0] = 1.0
    assert np.isnan(confidence.intervals(np.array([1.0]), reps, 0.95)).all()


def test_acceleration_of_a_mean_is_efron_s_jackknife_value():
    """One evaluator answering every item: the evaluator part vanishes (its summed
    contributions are zero), and a is Efron's sum U^3 / (6 (sum U^2)^1.5) from the
    jackknife values of the mean."""
    x = np.random.default_rng(5).exponential(size=40)
    n = len(x)
    jack = (x.sum() - x) / (n - 1)
    u = jack.mean() - jack
    want = (u ** 3).sum() / (6 * (u ** 2).sum() ** 1.5)
    got = bs.ratio_corrections(np.arange(n), np.zeros(n, dtype=int), np.zeros(n, dtype=int), x, np.ones(n), 1,
                               0.95)[1]
    assert want > 0.01
    assert got[0] == pytest.approx(want, rel=1e-9)
    # A mirrored sample is skewed the other way.
    assert bs.ratio_corrections(np.arange(n), np.zeros(n, dtype=int), np.zeros(n, dtype=int), -x, np.ones(n),
                                1, 0.95)[1][0] == pytest.approx(-want, rel=1e-9)


def test_acceleration_moves_both_ends_towards_the_skewed_side():
    reps = np.random.default_rng(6).normal(size=(4000, 1))
    plain = _one(0.0, reps[:, 0], 0.95)
    skewed = _one(0.0, reps[:, 0], 0.95, accel=0.1)
    assert skewed[0] > plain[0] and skewed[1] > plain[1]
    # the levels are Efron's: Phi(z / (1 - a z)) with z0 = 0
    z = sps.norm.ppf([0.025, 0.975])
    want = np.quantile(reps[:, 0], sps.norm.cdf(z / (1 - 0.1 * z)))
    assert skewed == pytest.approx(want.tolist(), rel=1e-9)


def test_groups_of_few_units_get_the_t_interval_and_the_others_the_bootstrap():
    """A cell of five images (fewer than SMALL_GROUP units) gets est -+ t_df sqrt(var) and
    ignores the replicates; a group of 40 units keeps the rescaled percentiles."""
    rng = np.random.default_rng(21)
    unit = np.r_[np.repeat(np.arange(5), 3), 5 + np.repeat(np.arange(40), 3)]
    group = np.r_[np.zeros(15, dtype=int), np.ones(120, dtype=int)]
    ev = np.concatenate([rng.choice(8, 3, replace=False) for _ in range(45)])
    x = rng.integers(0, 3, len(unit)).astype(float)
    spread = bs.ratio_corrections(unit, ev, group, x, np.ones(len(x)), 2, 0.95)
    assert spread.small.tolist() == [True, False]
    # The small group's variance has the floor Vc (here it binds, and max(Vu', Ve') is lower).
    z, _ = bs.ratio_contributions(group, x, np.ones(len(x)), 2)
    vu, ve, vc, *_ = bs.linearised_variances(unit, ev, group, z, 2)
    cu, ce = (bs.centring_factors(k, group, np.ones(len(x)), 2) for k in (unit, ev))
    assert spread.var == pytest.approx(bs.variance_target(vu / cu, ve / ce, vc, [True, False]))
    assert spread.var[0] > bs.variance_target(vu / cu, ve / ce, vc, [False, False])[0]
    est = np.array([x[group == g].mean() for g in (0, 1)])
    low = np.array([x[group == g].min() for g in (0, 1)])
    high = np.array([x[group == g].max() for g in (0, 1)])
    reps = rng.normal(est, 0.3, (500, 2)) ** 2  # anything: the small group must not use them
    ci = confidence.spread_intervals(est, reps, 0.95, spread, low, high)
    half = sps.t.ppf(0.975, spread.df[0]) * np.sqrt(spread.var[0])
    assert low[0] < est[0] - half and est[0] + half < high[0]  # inside: plain linear t
    assert ci[0] == pytest.approx([est[0] - half, est[0] + half])
    boot = confidence.intervals(est[1:], reps[:, 1:], 0.95, spread.shrink[1:], low[1:], high[1:], spread.accel[1:])
    assert ci[1] == pytest.approx(boot[0])


def test_a_t_interval_end_past_the_range_moves_to_the_logit_scale():
    # Mean error 0.5 from errors in [0, 2]: the linear lower end (-0.74) leaves the range,
    # so it comes from the logit scale; the upper end (1.74) is inside and stays linear.
    est, var, df = np.array([0.5]), np.array([0.2]), np.array([4.0])
    lo, hi = confidence.t_intervals(est, var, df, 0.95, 0.0, 2.0)[0]
    half = sps.t.ppf(0.975, 4.0) * np.sqrt(0.2)
    p = 0.25
    assert hi == pytest.approx(0.5 + half)
    assert lo == pytest.approx(2.0 * special.expit(np.log(p / (1 - p)) - half / (2.0 * p * (1 - p))))
    assert 0.0 < lo < 0.5
    # every value equal (the estimate on a bound): a point, not NaN
    point = confidence.t_intervals(np.array([0.0]), np.array([0.0]), np.array([3.0]), 0.95, 0.0, 0.0)
    assert point[0].tolist() == [0.0, 0.0]
    assert np.isnan(confidence.t_intervals(est, np.array([np.nan]), df, 0.95, 0.0, 2.0)).all()


def test_the_variance_target_floor_depends_on_the_group_size():
    """Vu' + Ve' - Vc, floored at max(Vu', Ve') for groups of SMALL_GROUP units or more and at
    Vc for smaller ones, where the one-way floor is biased upwards (see variance_target)."""
    vu2, ve2, vc = np.array([1.0, 1.0, 3.0]), np.array([0.5, 0.5, 2.0]), np.array([2.0, 2.0, 1.0])
    got = bs.variance_target(vu2, ve2, vc, [False, True, True])
    assert got.tolist() == [1.0, 2.0, 4.0]


def test_a_given_floor_replaces_the_default_floors():
    """A paired difference passes its own floor (`difference_floor`): the target is then
    Vu' + Ve' - Vc wherever that is above it, even where max(Vu', Ve') is higher."""
    vu2, ve2, vc = np.array([1.0, 1.0]), np.array([0.5, 0.5]), np.array([0.8, 0.8])
    assert bs.variance_target(vu2, ve2, vc, [False, False]).tolist() == [1.0, 1.0]
    got = bs.variance_target(vu2, ve2, vc, [False, True], floor=np.array([0.1, 0.9]))
    assert got.tolist() == pytest.approx([0.7, 0.9])


def test_difference_floor_is_the_cauchy_schwarz_bound():
    rng = np.random.default_rng(3)
    a = rng.normal(0.0, 2.0, 100_000)
    b = a + rng.normal(0.0, 0.1, 100_000)  # nearly the same: Var(a - b) near its least value
    floor = bs.difference_floor(np.var(a), np.var(b))
    assert floor <= np.var(a - b)
    assert bs.difference_floor(4.0, 1.0) == pytest.approx(1.0)
    assert bs.difference_floor(np.array([np.nan, 1.0]), np.array([1.0, 1.0])).tolist() == [0.0, 0.0]
