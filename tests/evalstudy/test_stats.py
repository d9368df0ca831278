"""Statistics against independent references: published examples, scipy, hand work."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps

from evalstudy import rank_models, stats

nan = math.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
# 4 observers, 12 units, values 1..5, missing data.
KRIPPENDORFF_C = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
])
# The example of Wikipedia's "Krippendorff's alpha" article: 3 coders, 15 units.
WIKIPEDIA = np.array([
    [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
    [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
    [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
])


@pytest.mark.parametrize("level, published", [
    ("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)])
def test_krippendorff_alpha_matches_krippendorff_2011(level, published):
    assert round(stats.krippendorff_alpha(KRIPPENDORFF_C, level), 3) == published


@pytest.mark.parametrize("level, published", [("nominal", 0.691), ("interval", 0.811)])
def test_krippendorff_alpha_matches_wikipedia_example(level, published):
    assert round(stats.krippendorff_alpha(WIKIPEDIA, level), 3) == published


def test_krippendorff_binary_two_coders_by_hand():
    # Coincidences: o00 = 2*2, o11 = 2*1, o01 = o10 = 2 -> n = 10, n0 = 6, n1 = 4;
    # D_o = 4/10, D_e = 2*6*4/(10*9); alpha = 1 - 0.4/(48/90) = 0.25.
    data = np.array([[0, 0, 1, 0, 1], [0, 0, 1, 1, 0]], dtype=float)
    assert stats.krippendorff_alpha(data, "nominal") == pytest.approx(0.25)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(0, 6), min_size=3, max_size=30), coders=st.integers(2, 5),
       level=st.sampled_from(stats.LEVELS))
def test_alpha_is_one_for_identical_coders(values, coders, level):
    if len(set(values)) < 2:
        values = values + [max(values) + 1]
    data = np.tile(np.array(values, dtype=float), (coders, 1))
    assert stats.krippendorff_alpha(data, level) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.lists(st.integers(1, 5), min_size=6, max_size=6), min_size=3,
                     max_size=5), perm=st.randoms())
def test_alpha_does_not_depend_on_coder_or_unit_order(data, perm):
    x = np.array(data, dtype=float)
    rows, cols = list(range(x.shape[0])), list(range(x.shape[1]))
    perm.shuffle(rows)
    perm.shuffle(cols)
    a = stats.krippendorff_alpha(x, "interval")
    b = stats.krippendorff_alpha(x[rows][:, cols], "interval")
    assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_kendall_w_equals_friedman_over_m_times_k_minus_1():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(7, 5)).astype(float)  # ties on purpose
    chi2 = sps.friedmanchisquare(*x.T).statistic
    assert stats.kendall_w(x) == pytest.approx(chi2 / (7 * 4))


def test_kendall_w_is_one_for_identical_rankings_and_zero_for_opposite_pairs():
    assert stats.kendall_w([[1, 2, 3, 4]] * 5) == pytest.approx(1.0)
    assert stats.kendall_w([[1, 2, 3, 4], [4, 3, 2, 1]]) == pytest.approx(0.0)


def test_friedman_matches_scipy_with_and_without_ties():
    rng = np.random.default_rng(2)
    for x in (rng.normal(size=(15, 4)), rng.integers(0, 3, size=(15, 4)).astype(float)):
        ours = stats.friedman(x)
        ref = sps.friedmanchisquare(*x.T)
        assert ours.statistic == pytest.approx(ref.statistic)
        assert ours.p_value == pytest.approx(ref.pvalue)


def test_wilcoxon_exact_matches_scipy_without_ties():
    rng = np.random.default_rng(3)
    for n in (5, 12, 25):
        d = rng.normal(0.4, 1, n)
        ours = stats.wilcoxon_signed_rank(d)
        assert ours.method == "exact"
        assert ours.p_value == pytest.approx(sps.wilcoxon(d, method="exact").pvalue)


def test_wilcoxon_with_ties_is_an_exact_permutation_test():
    d = np.array([1, 1, 2, -1, 2, 3, 3, -2, 1, 0, 2])
    ours = stats.wilcoxon_signed_rank(d)
    nz = d[d != 0]
    ranks = sps.rankdata(np.abs(nz))
    t_obs = ranks[nz > 0].sum()
    mean = ranks.sum() / 2
    flips = np.array(list(itertools.product([0, 1], repeat=len(nz))))
    t_all = flips @ ranks
    p = np.mean(np.abs(t_all - mean) >= abs(t_obs - mean) - 1e-9)
    assert ours.p_value == pytest.approx(p)
    assert ours.n_pairs == 11 and ours.n_nonzero == 10


def test_wilcoxon_normal_approximation_matches_scipy_with_ties():
    d = np.round(np.random.default_rng(4).normal(0.2, 1, 90), 1)
    ours = stats.wilcoxon_signed_rank(d, exact_max_n=0)
    ref = sps.wilcoxon(d, method="approx", zero_method="wilcox", correction=False)
    assert ours.method == "normal"
    assert ours.p_value == pytest.approx(ref.pvalue)


def test_holm_by_hand():
    assert stats.holm([0.01, 0.04, 0.03, nan]) == pytest.approx([0.03, 0.06, 0.06, nan],
                                                                nan_ok=True)


def test_nemenyi_critical_difference_matches_demsar_table():
    # Demsar (2006), table 5: q_0.05 for k = 4 classifiers is 2.569.
    cd = stats.nemenyi([1, 2, 3, 4], n_blocks=10).critical_difference
    assert cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 10)), abs=2e-3)


def test_quadratic_weighted_kappa_equals_lins_concordance_for_integers():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, 200)
    b = np.clip(a + rng.integers(-1, 2, 200), 0, 6)
    ccc = 2 * np.cov(a, b, bias=True)[0, 1] / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    assert stats.quadratic_weighted_kappa(a, b) == pytest.approx(ccc)
    assert stats.quadratic_weighted_kappa(a, a) == pytest.approx(1.0)


def test_plackett_luce_mm_reaches_the_maximum_likelihood():
    orderings = rank_models.all_orderings(4)
    counts = np.random.default_rng(6).integers(0, 20, len(orderings)).astype(float)
    gamma = rank_models.plackett_luce_mm(counts[None, :], orderings)[0]
    assert gamma.sum() == pytest.approx(1.0)

    def nll(theta):
        g = np.exp(np.concatenate([[0.0], theta]))
        return -rank_models.plackett_luce_loglik(g / g.sum(), counts, orderings)

    best = optimize.minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-9})
    g = np.exp(np.concatenate([[0.0], best.x]))
    assert gamma == pytest.approx(g / g.sum(), abs=1e-5)


def test_plackett_luce_two_items_is_the_win_share():
    # With two variants PL is Bradley-Terry on one pair: strength = share of wins.
    gamma = rank_models.plackett_luce_mm([[30.0, 10.0]], np.array([[0, 1], [1, 0]]))[0]
    assert gamma == pytest.approx([0.75, 0.25])


def test_plackett_luce_vectorised_equals_one_at_a_time():
    orderings = rank_models.all_orderings(3)
    counts = np.random.default_rng(7).integers(0, 9, (5, 6)).astype(float)
    together = rank_models.plackett_luce_mm(counts, orderings)
    for b in range(5):
        assert together[b] == pytest.approx(rank_models.plackett_luce_mm(counts[b:b + 1],
                                                                   orderings)[0], abs=1e-8)


def _dense_qwk(a, b) -> float:
    """Quadratic-weighted kappa over every integer from the smallest to the largest value
    (the textbook table; the former implementation)."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    lo = min(a.min(), b.min())
    k = max(a.max(), b.max()) - lo + 1
    observed = np.zeros((k, k))
    np.add.at(observed, (a - lo, b - lo), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(a)
    i = np.arange(k)
    w = (i[:, None] - i[None, :]) ** 2
    return float(1.0 - (w * observed).sum() / (w * expected).sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=2, max_size=40))
def test_quadratic_weighted_kappa_equals_the_full_integer_table(pairs):
    a, b = (np.array(x) for x in zip(*pairs, strict=True))
    if len(set(a.tolist()) | set(b.tolist())) < 2:
        assert math.isnan(stats.quadratic_weighted_kappa(a, b))
    else:
        assert stats.quadratic_weighted_kappa(a, b) == pytest.approx(_dense_qwk(a, b), rel=1e-12, abs=1e-12)


def test_quadratic_weighted_kappa_of_a_huge_typo_needs_no_huge_table():
    # One answer of 10**9 (a typo the CSV reader accepts): a dense table would be 10**9 x 10**9.
    a = [1, 2, 3, 4, 10 ** 9]
    b = [1, 2, 3, 5, 4]
    kappa = stats.quadratic_weighted_kappa(a, b)
    # by hand over the values {1, 2, 3, 4, 5, 10**9}: observed disagreement over expected
    x = np.array(a, dtype=float)
    y = np.array(b, dtype=float)
    by_hand = 1.0 - np.mean((x - y) ** 2) / np.mean((x[:, None] - y[None, :]) ** 2)
    assert kappa == pytest.approx(by_hand, rel=1e-9)
