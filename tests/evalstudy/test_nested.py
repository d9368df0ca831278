"""evalstudy.nested: t intervals over clusters (training seeds), units only with one."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from evalstudy.nested import (
    T_OVER_CLUSTERS,
    UNITS_ONLY,
    cluster_intervals,
    cluster_values,
    percentile_intervals,
    unit_replicates,
)


def _mean(y):
    """The pooled mean of y (C, n) on a draw's clusters and units."""
    return lambda d: np.array([y[d.clusters[:, None], d.units].mean()])


def test_the_interval_is_t_over_the_per_cluster_values():
    y = np.random.default_rng(0).normal(size=(4, 30)) + np.arange(4)[:, None]
    found = cluster_intervals(_mean(y), 4, 30, level=0.9)
    means = y.mean(axis=1)
    assert np.allclose(cluster_values(_mean(y), 4, 30)[:, 0], means)
    half = stats.t.ppf(0.95, 3) * means.std(ddof=1) / 2
    assert found.estimate[0] == pytest.approx(y.mean())
    assert found.ci[0] == pytest.approx([y.mean() - half, y.mean() + half])
    assert found.df == 3 and found.method == T_OVER_CLUSTERS and found.between_clusters


def test_identical_clusters_give_a_zero_width_interval_at_their_value():
    y = np.tile(np.random.default_rng(1).normal(size=20), (3, 1))
    found = cluster_intervals(_mean(y), 3, 20)
    assert found.ci[0] == pytest.approx([y.mean(), y.mean()])


def test_one_cluster_is_the_one_stage_bootstrap_of_its_units_and_says_so():
    x = np.random.default_rng(3).normal(size=(1, 200))
    found = cluster_intervals(_mean(x), 1, 200, n_boot=2000, seed=5)
    assert found.method == UNITS_ONLY and found.df is None and not found.between_clusters
    reps = unit_replicates(_mean(x), 200, 2000, seed=5)
    assert reps.shape == (2000, 1)
    assert np.std(reps[:, 0]) == pytest.approx(np.std(x) / np.sqrt(200), rel=0.1)
    assert np.array_equal(found.ci, percentile_intervals(reps))


def test_the_same_seed_gives_the_same_replicates():
    def stat(d):
        return np.array([d.units.sum()])

    a = unit_replicates(stat, 7, 50, seed=11)
    assert np.array_equal(a, unit_replicates(stat, 7, 50, seed=11))
    assert not np.array_equal(a, unit_replicates(stat, 7, 50, seed=12))


@pytest.mark.parametrize(("n_clusters", "sd_between"), [(3, 0.3), (5, 0.3), (10, 0.0)])
def test_the_interval_covers_the_mean_at_its_level(n_clusters, sd_between):
    """The statistics audit's 21_nested.py design: C clusters of 60 unit-s.d. units. The
    two-stage bootstrap covered 0.787 (C = 3), 0.893 (C = 5) and 0.987 (C = 10, no spread
    between clusters: the within variance counted twice). 2,000 data sets: binomial s.e.
    0.0049 at 0.95; the tolerance is 3 of them."""
    rng = np.random.default_rng(2100 + n_clusters)
    n, sets = 60, 2000
    covered = 0
    for _ in range(sets):
        y = rng.normal(0, sd_between, n_clusters)[:, None] + rng.normal(0, 1, (n_clusters, n))
        lo, hi = cluster_intervals(_mean(y), n_clusters, n).ci[0]
        covered += lo <= 0 <= hi
    se = np.sqrt(0.95 * 0.05 / sets)
    assert abs(covered / sets - 0.95) <= 3 * se


def test_percentile_intervals_are_the_levels_quantiles_of_each_column():
    reps = np.random.default_rng(4).normal(size=(1001, 3))
    ci = percentile_intervals(reps, 0.95)
    assert ci.shape == (3, 2)
    # Exactly numpy's 2.5th and 97.5th percentiles, not ones off by the float error of 1 - 0.95.
    assert np.array_equal(ci, np.percentile(reps, [2.5, 97.5], axis=0).T)
    assert np.array_equal(percentile_intervals(reps, 0.5), np.percentile(reps, [25, 75], axis=0).T)


@pytest.mark.parametrize("level", [0.0, 1.0, 95])
def test_a_level_outside_zero_one_is_refused(level):
    with pytest.raises(ValueError, match="level"):
        percentile_intervals(np.zeros((10, 1)), level)


def test_empty_designs_are_refused():
    with pytest.raises(ValueError, match="clusters and units"):
        cluster_intervals(lambda d: np.zeros(1), 0, 5)
    with pytest.raises(ValueError, match="n_boot"):
        cluster_intervals(lambda d: np.zeros(1), 1, 5, n_boot=0)


def test_evalstudy_imports_neither_generator_torch_nor_django():
    code = ("import sys, evalstudy.nested, evalstudy.bootstrap; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'generator', 'torch', 'django'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
