"""After a group-sequential study stops: the stage-wise p-value, the median-unbiased estimate
and its interval (evalstudy.sequential.stagewise_inference), and what the monitor reports."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evalstudy import sequential
from evalstudy.protocol import DEFAULT_POWER

ALPHA = 0.05
T4 = np.array([0.25, 0.5, 0.75, 1.0])  # four equally spaced looks, as in docs/statistics.md


def _obf(t=T4):
    return sequential.boundaries(t, ALPHA)


# --------------------------------------------------------------------------- reductions

@pytest.mark.parametrize("z", [-3.1, -0.4, 0.0, 1.2, 2.5, 6.0])
def test_a_single_look_gives_the_fixed_sample_estimate_interval_and_p_value(z):
    c = sequential.boundaries([1.0], ALPHA)
    res = sequential.stagewise_inference([1.0], c, 1, z, ALPHA)
    half = sps.norm.ppf(1 - ALPHA / 2)
    assert res.drift == pytest.approx(z, abs=1e-7)
    assert res.drift_ci == pytest.approx((z - half, z + half), abs=1e-7)
    assert res.p_two_sided == pytest.approx(min(1.0, 2 * sps.norm.sf(abs(z))), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("estimate", [-0.3, 0.05, 0.4])
def test_the_monitor_at_a_single_look_reports_the_naive_estimate_and_its_z_interval(estimate):
    se = 0.1
    (out,), _ = sequential.monitor([sequential.LookInput(30, estimate, se, math.inf)], (30,), ALPHA, effect=0.2)
    half = sps.norm.ppf(1 - ALPHA / 2) * se
    assert out.adjusted_estimate == pytest.approx(estimate, abs=1e-8)
    assert out.adjusted_estimate_ci == pytest.approx((estimate - half, estimate + half), abs=1e-8)
    # With a t statistic too the adjusted estimate is the naive one, and the interval the
    # test-based one: its half-width is z_(1-alpha/2) times estimate / Z, so that it holds
    # zero exactly when the t test does not reject.
    (out_t,), _ = sequential.monitor([sequential.LookInput(30, estimate, se, 5.0)], (30,), ALPHA, effect=0.2)
    z = sequential.z_from_t(estimate, se, 5.0)
    half_t = sps.norm.ppf(1 - ALPHA / 2) * estimate / z
    assert out_t.adjusted_estimate == pytest.approx(estimate, abs=1e-8)
    assert out_t.adjusted_estimate_ci == pytest.approx((estimate - half_t, estimate + half_t), abs=1e-8)
    assert (out_t.adjusted_estimate_ci[0] > 0 or out_t.adjusted_estimate_ci[1] < 0) == (
        2 * sps.t.sf(abs(estimate / se), 5.0) < ALPHA)


@pytest.mark.parametrize("df", [1.0, 3.0, 19.0, math.inf])
def test_the_normal_equivalent_se_gives_the_t_statistics_p_value_to_a_normal_test(df):
    se = 0.2
    for estimate in (-1.3, -0.2, 1e-9, 0.05, 0.9):
        star = sequential.normal_equivalent_se(estimate, se, df)
        assert star >= se
        p_t = 2 * sps.t.sf(abs(estimate / se), df)
        assert 2 * sps.norm.sf(abs(estimate / star)) == pytest.approx(p_t, rel=1e-6)
    assert sequential.normal_equivalent_se(0.0, se, df) == pytest.approx(
        sequential.normal_equivalent_se(1e-5, se, df), rel=1e-6)


@pytest.mark.parametrize("z", [-2.2, 0.3, 1.9, 2.9])
def test_the_last_look_after_looks_that_cannot_be_crossed_is_the_fixed_sample_one(z):
    c = np.r_[np.full(3, np.inf), 2.0]
    res = sequential.stagewise_inference(T4, c, 4, z, ALPHA)
    half = sps.norm.ppf(1 - ALPHA / 2)
    assert res.drift == pytest.approx(z, abs=1e-6)
    assert res.drift_ci == pytest.approx((z - half, z + half), abs=1e-6)


def test_at_a_boundary_the_p_value_is_what_the_spending_function_spent_so_far():
    """So the adjusted interval excludes no difference exactly when the rule said "stop:
    difference shown"."""
    c = _obf()
    spent = sequential.obf_spending(T4, ALPHA)
    for k in range(4):
        assert sequential.stagewise_p(0.0, T4, c, k + 1, c[k]) == pytest.approx(spent[k] / 2, abs=1e-8)
        crossing = sequential.stagewise_inference(T4, c, k + 1, c[k] + 1e-4, ALPHA)
        assert crossing.drift_ci[0] > 0 and crossing.p_two_sided < ALPHA
    inside = sequential.stagewise_inference(T4, c, 4, c[-1] - 1e-4, ALPHA)
    assert inside.drift_ci[0] < 0 < inside.drift_ci[1] and inside.p_two_sided > ALPHA


def test_a_negative_z_is_the_mirror_image_of_a_positive_one():
    c = _obf()
    for look, z in ((2, 3.1), (3, 2.5), (4, 1.0), (4, 2.6)):
        up = sequential.stagewise_inference(T4, c, look, z, ALPHA)
        down = sequential.stagewise_inference(T4, c, look, -z, ALPHA)
        assert down.drift == pytest.approx(-up.drift, abs=1e-9)
        assert down.drift_ci == pytest.approx((-up.drift_ci[1], -up.drift_ci[0]), abs=1e-9)
        assert down.p_two_sided == pytest.approx(up.p_two_sided, abs=1e-12)


def test_the_estimate_solves_its_own_p_value_equations():
    c = _obf()
    for look, z in ((1, 4.2), (2, -2.9), (3, 2.31), (4, 0.7), (4, -2.2)):
        res = sequential.stagewise_inference(T4, c, look, z, ALPHA)
        p = [sequential.stagewise_p(d, T4, c, look, z) for d in (res.drift, *res.drift_ci)]
        assert p == pytest.approx([0.5, ALPHA / 2, 1 - ALPHA / 2], abs=1e-8)


@pytest.mark.parametrize("p, root", [
    # probit-linear, the secant's case
    (lambda x: sps.norm.cdf(2.0 * x - 1.0), (sps.norm.ppf(0.6) + 1.0) / 2.0),
    # steep and curved on the probit scale: bracketed and found by Brent's method instead
    (lambda x: sps.norm.cdf(np.sinh(3.0 * (x - 2.0))), 2.0 + np.arcsinh(sps.norm.ppf(0.6)) / 3.0),
    # a step across the target: the root is where it jumps
    (lambda x: 0.25 * sps.norm.cdf(x) + 0.25 * (x > 1.0) + 0.5 * (x > 1.5), 1.5),
])
def test_the_root_finder_finds_the_root_whether_or_not_the_secant_lands(p, root):
    assert sequential._solve_increasing(p, 0.6, guess=-3.0, width=0.5) == pytest.approx(root, abs=1e-8)


# --------------------------------------------------------------------------- monotonicity

@settings(max_examples=60, deadline=None)
@given(look=st.integers(1, 4), beyond=st.floats(0.0, 3.0), negative=st.booleans(),
       drifts=st.tuples(st.floats(-6.0, 6.0), st.floats(-6.0, 6.0)))
def test_the_stagewise_p_value_never_falls_as_the_drift_grows(look, beyond, negative, drifts):
    c = _obf()
    # An outcome a study can end with: past the boundary before the last look, anywhere at it.
    z = (c[look - 1] + beyond) if look < 4 else beyond
    z = -z if negative else z
    low, high = sorted(drifts)
    assert (sequential.stagewise_p(low, T4, c, look, z)
            <= sequential.stagewise_p(high, T4, c, look, z) + 1e-12)


@pytest.mark.parametrize("look, z", [(1, 4.0), (2, 2.8), (3, -2.5), (4, 0.0), (4, 2.2)])
def test_the_stagewise_p_value_rises_strictly_where_it_is_not_yet_0_or_1(look, z):
    c = _obf()
    p = np.array([sequential.stagewise_p(d, T4, c, look, z) for d in np.linspace(-4, 8, 97)])
    inner = (p > 1e-9) & (p < 1 - 1e-9)
    assert inner.sum() > 20
    assert np.all(np.diff(p[inner]) > 0)
    assert np.all(np.diff(p) >= -1e-12)


# --------------------------------------------------------------------------- an independent check

def _mvn_rectangle(t, drift, lower, upper):
    """P(lower < Z < upper) for the canonical Z_1..Z_k at fractions t under `drift`, by
    scipy's multivariate normal CDF (Genz's method; no grid)."""
    t = np.asarray(t, dtype=float)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    mvn = sps.multivariate_normal(mean=drift * np.sqrt(t), cov=cov, abseps=1e-7, releps=1e-7,
                                  maxpts=400_000 * len(t))
    return float(mvn.cdf(np.asarray(upper, dtype=float), lower_limit=np.asarray(lower, dtype=float)))


def _mvn_stagewise_p(t, c, drift, look, z):
    """The stage-wise upper p-value as a sum of rectangle probabilities. Below zero it is one
    minus the lower tail, summed directly (not through the mirror image the grid uses)."""
    k = look - 1
    if z >= 0:
        total = sum(_mvn_rectangle(t[:j + 1], drift, [*(-c[:j]), c[j]], [*c[:j], np.inf]) for j in range(k))
        return total + _mvn_rectangle(t[:k + 1], drift, [*(-c[:k]), z], [*c[:k], np.inf])
    lower = sum(_mvn_rectangle(t[:j + 1], drift, [*(-c[:j]), -np.inf], [*c[:j], -c[j]]) for j in range(k))
    return 1.0 - lower - _mvn_rectangle(t[:k + 1], drift, [*(-c[:k]), -np.inf], [*c[:k], z])


@pytest.mark.parametrize("t", [np.array([0.5, 1.0]), np.array([0.3, 0.65, 1.0])])
@pytest.mark.parametrize("drift", [-1.0, 0.0, 1.5, 3.0])
def test_the_grid_agrees_with_scipys_multivariate_normal_cdf(t, drift):
    c = sequential.boundaries(t, ALPHA)
    outcomes = [(1, c[0] + 0.3), (len(t), 0.8), (len(t), -1.7), (len(t) - 1, -(c[-2] + 0.1))]
    for look, z in outcomes:
        grid = sequential.stagewise_p(drift, t, c, look, z)
        assert grid == pytest.approx(_mvn_stagewise_p(t, c, drift, look, z), abs=1e-4), (look, z)


# --------------------------------------------------------------------------- simulated studies

def _ended(rng, t, c, drift, n):
    """The looks (1-based) and Z at which n simulated studies end under `drift`: the first
    crossing of the efficacy boundaries, or the last look (futility is non-binding: ignored)."""
    steps = np.diff(np.r_[0.0, t])
    z = np.cumsum(rng.normal(drift * steps, np.sqrt(steps), (n, len(t))), axis=1) / np.sqrt(t)
    crossed = np.abs(z) >= c
    crossed[:, -1] = True
    k = crossed.argmax(axis=1)
    return k + 1, z[np.arange(n), k]


def _check_studies(t, c, drift, n, seed):
    """Over n simulated studies: the share whose median-unbiased estimate exceeds the drift,
    the share whose adjusted interval holds it, and the same for the naive z/sqrt(t_k) and
    its z interval. The adjusted shares come from the p-value at the true drift (the estimate
    exceeds the drift exactly when p(drift) < 1/2; the interval holds it exactly when
    alpha/2 <= p(drift) <= 1 - alpha/2, p increasing), checked against the estimate and
    interval themselves on the first 100 studies; a root-finding per study would take a
    minute."""
    looks, z = _ended(np.random.default_rng(seed), t, c, drift, n)
    p = np.array([sequential.stagewise_p(drift, t, c, int(k), float(x)) for k, x in zip(looks, z, strict=True)])
    for k, x, p_true in zip(looks[:100], z[:100], p[:100], strict=True):
        res = sequential.stagewise_inference(t, c, int(k), float(x), ALPHA)
        assert (res.drift > drift) == (p_true < 0.5)
        assert (res.drift_ci[0] <= drift <= res.drift_ci[1]) == (ALPHA / 2 <= p_true <= 1 - ALPHA / 2)
    half = sps.norm.ppf(1 - ALPHA / 2)
    naive = z / np.sqrt(t[looks - 1])
    return {"above": np.mean(p < 0.5), "covered": np.mean((p >= ALPHA / 2) & (p <= 1 - ALPHA / 2)),
            "naive above": np.mean(naive > drift),
            "naive covered": np.mean(np.abs(naive - drift) <= half / np.sqrt(t[looks - 1]))}


N_STUDIES = 4000
MEDIAN_BAND = 3 * math.sqrt(0.25 / N_STUDIES)                     # 3 binomial s.e. of a share of 1/2
COVER_BAND = 3 * math.sqrt(ALPHA * (1 - ALPHA) / N_STUDIES)       # 3 s.e. of a share of 1 - alpha


def test_the_median_unbiased_estimate_is_median_unbiased_where_the_naive_is_not():
    """The project's design at the drift its planned effect has at 80% power, where more than
    half the studies stop early: their naive estimates lean high."""
    c = _obf()
    drift = c[-1] + sps.norm.ppf(DEFAULT_POWER)
    share = _check_studies(T4, c, drift, N_STUDIES, seed=11)
    assert abs(share["above"] - 0.5) <= MEDIAN_BAND, share
    assert abs(share["covered"] - (1 - ALPHA)) <= COVER_BAND, share
    assert share["naive above"] - 0.5 > MEDIAN_BAND, share


def test_the_adjusted_interval_covers_where_the_naive_one_does_not():
    """A design that stops early often (the same boundary, 2.4, at every look: near Pocock's;
    the stage-wise ordering's properties hold for any boundaries) at a small drift: the naive
    interval of a study that stopped early misses the truth too often."""
    c = np.full(4, 2.4)
    share = _check_studies(T4, c, 0.5, N_STUDIES, seed=12)
    assert abs(share["covered"] - (1 - ALPHA)) <= COVER_BAND, share
    assert abs(share["above"] - 0.5) <= MEDIAN_BAND, share
    assert (1 - ALPHA) - share["naive covered"] > COVER_BAND, share


# --------------------------------------------------------------------------- what the monitor reports

def test_the_monitor_reports_the_adjusted_estimate_where_a_study_ended_and_nowhere_else():
    looks = (10, 20, 40)
    small = sequential.LookInput(10, 0.05, 0.1, math.inf)
    out, _ = sequential.monitor([small], looks, ALPHA, effect=0.2)
    assert out[-1].decision == sequential.CONTINUE and math.isnan(out[-1].adjusted_estimate)
    strong = sequential.LookInput(20, 0.5, 0.1, math.inf)
    out, _ = sequential.monitor([small, strong], looks, ALPHA, effect=0.2)
    stop = out[-1]
    assert stop.decision == sequential.STOP_DIFFERENCE and math.isnan(out[0].adjusted_estimate)
    res = sequential.stagewise_inference(np.array(looks) / 40, sequential.boundaries(np.array(looks) / 40, ALPHA),
                                         2, stop.z, ALPHA)
    scale = 0.1 * math.sqrt(20 / 40)  # df infinite: a drift's mean Z at look 2, times its SE
    assert stop.adjusted_estimate == pytest.approx(res.drift * scale, rel=1e-9)
    assert stop.adjusted_estimate_ci == pytest.approx(tuple(d * scale for d in res.drift_ci), rel=1e-9)
    assert stop.adjusted_p_value == pytest.approx(res.p_two_sided)
    # The estimate leans away from zero after an early stop; the adjusted one less so.
    assert 0 < stop.adjusted_estimate < stop.estimate
    # A futility stop before the last look has no outcome in the ordering; the last look has.
    flat = [sequential.LookInput(10, 0.0, 0.3, math.inf), sequential.LookInput(20, 0.0, 0.2, math.inf)]
    out, _ = sequential.monitor(flat, looks, ALPHA, effect=0.05)
    assert out[-1].decision == sequential.STOP_FUTILITY and math.isnan(out[-1].adjusted_estimate)
    last = [small, sequential.LookInput(20, 0.1, 0.07, math.inf), sequential.LookInput(40, 0.06, 0.05, math.inf)]
    out, _ = sequential.monitor(last, looks, ALPHA, effect=0.2)
    assert out[-1].look == 3 and out[-1].decision == sequential.STOP_FUTILITY
    lo, hi = out[-1].adjusted_estimate_ci
    assert lo < out[-1].adjusted_estimate < hi and lo < 0 < hi
    # Simulations that want only the decisions may leave it out; the decisions are the same.
    bare, _ = sequential.monitor(last, looks, ALPHA, effect=0.2, adjust=False)
    assert [o.decision for o in bare] == [o.decision for o in out] and math.isnan(bare[-1].adjusted_estimate)


# --------------------------------------------------------------------------- crowd drift


def _looks(n, estimates, se_last, df=math.inf):
    """LookInputs at evaluator counts `n`; only the last look's SE enters the check."""
    return [sequential.LookInput(k, d, se_last, df) for k, d in zip(n, estimates, strict=True)]


def test_the_crowd_check_is_cochrans_q_over_the_arrival_batches():
    # Batches of 10: the first estimates 0.5, the second 0 (cumulative 0.25 at 20). One
    # evaluator's variance 20 * 0.25^2 = 1.25, so Q = 10 (0.25^2 + 0.25^2) / 1.25 = 1 on 1 df.
    p = sequential.crowd_drift_p(_looks((10, 20), (0.5, 0.25), 0.25))
    assert p == pytest.approx(sps.chi2.sf(1.0, 1))
    # Batches that agree give Q = 0; uneven batches are weighted by their evaluators:
    # 10 at 0.3, then 30 at 0.7 (cumulative 0.6), Q = (10 * 0.3^2 + 30 * 0.1^2) / (40 * 0.1^2).
    assert sequential.crowd_drift_p(_looks((10, 20, 30), (0.4, 0.4, 0.4), 0.1)) == pytest.approx(1.0)
    p = sequential.crowd_drift_p(_looks((10, 40), (0.3, 0.6), 0.1))
    assert p == pytest.approx(sps.chi2.sf((10 * 0.09 + 30 * 0.01) / 0.4, 1))


def test_the_crowd_check_reads_a_t_looks_se_as_the_rule_does():
    # With few df the test-based SE is wider than the t statistic's: the same Q shrinks.
    z_scale = sequential.crowd_drift_p(_looks((10, 20), (0.5, 0.25), 0.25))
    t_scale = sequential.crowd_drift_p(_looks((10, 20), (0.5, 0.25), 0.25, df=5.0))
    se_star = sequential.normal_equivalent_se(0.25, 0.25, 5.0)
    assert t_scale == pytest.approx(sps.chi2.sf(1.25 / (20 * se_star ** 2), 1)) and t_scale > z_scale


def test_the_crowd_check_says_nothing_where_it_cannot_be_made():
    assert math.isnan(sequential.crowd_drift_p(_looks((10,), (0.5,), 0.2)))
    assert math.isnan(sequential.crowd_drift_p(_looks((10, 10), (0.5, 0.4), 0.2)))    # no new evaluators
    assert math.isnan(sequential.crowd_drift_p(_looks((10, 20), (math.nan, 0.4), 0.2)))
    assert math.isnan(sequential.crowd_drift_p(_looks((10, 20), (0.5, 0.4), math.nan)))


def _simulated_p_values(rng, lean: float, reps: int = 2000) -> np.ndarray:
    """Evaluators' paired differences N(+lean, 1) for the first 20 and N(-lean, 1) for the
    last 20, looks at 10, 20, 30, 40 with the t SE: the check's p-value at the last look."""
    looks = (10, 20, 30, 40)
    out = np.empty(reps)
    for r in range(reps):
        x = rng.normal(0.0, 1.0, 40) + np.where(np.arange(40) < 20, lean, -lean)
        data = [sequential.LookInput(n, float(x[:n].mean()), float(x[:n].std(ddof=1) / math.sqrt(n)), n - 1.0)
                for n in looks]
        out[r] = sequential.crowd_drift_p(data)
    return out


def test_the_crowd_check_keeps_its_size_and_sees_a_crowd_that_turns():
    rng = np.random.default_rng(11)
    size = float(np.mean(_simulated_p_values(rng, 0.0) < 0.05))
    power = float(np.mean(_simulated_p_values(rng, 0.5) < 0.05))
    assert 0.03 <= size <= 0.065  # 2000 studies: s.e. 0.005
    assert power > 0.6


def test_the_monitor_carries_the_crowd_check_from_the_second_look():
    data = _looks((10, 20, 30), (0.5, 0.25, 0.2), 0.3)
    outcomes, _ = sequential.monitor(data, (10, 20, 30, 40), 0.05, 0.5)
    assert math.isnan(outcomes[0].crowd_drift_p)
    assert [o.crowd_drift_p for o in outcomes[1:]] == [sequential.crowd_drift_p(data[:k]) for k in (2, 3)]
