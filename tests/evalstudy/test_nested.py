import subprocess
import sys

import numpy as np
import pytest

from evalstudy.nested import nested_draws, nested_replicates, percentile_intervals


def test_a_cluster_drawn_twice_gets_its_units_drawn_twice_independently():
    # Units are drawn per drawn position, not once per cluster: two positions holding
    # the same cluster almost never get the same 20 unit indices.
    draws = list(nested_draws(2, 20, 200, np.random.default_rng(0)))
    repeated = [d for d in draws if d.clusters[0] == d.clusters[1]]
    assert repeated
    assert all(not np.array_equal(d.units[0], d.units[1]) for d in repeated)


def test_the_first_stage_resamples_clusters():
    # Cluster 0 all zeros, cluster 1 all ones: the pooled mean is 0, 1/2 or 1 as the
    # first stage draws {0, 0}, {0, 1} or {1, 1}, with probabilities 1/4, 1/2, 1/4;
    # resampling units alone would give 1/2 every time.
    values = np.array([[0.0] * 10, [1.0] * 10])
    reps = nested_replicates(lambda d: values[d.clusters[:, None], d.units].mean(keepdims=True), 2, 10, 4000)
    share = {v: float(np.mean(reps[:, 0] == v)) for v in (0.0, 0.5, 1.0)}
    assert sum(share.values()) == 1.0
    assert share[0.0] == pytest.approx(0.25, abs=0.03) and share[0.5] == pytest.approx(0.5, abs=0.03)


def test_one_cluster_is_the_one_stage_bootstrap_of_its_units():
    x = np.random.default_rng(3).normal(size=200)
    reps = nested_replicates(lambda d: x[d.units[0]].mean(keepdims=True), 1, 200, 2000, seed=5)
    assert reps.shape == (2000, 1)
    assert np.std(reps[:, 0]) == pytest.approx(np.std(x) / np.sqrt(200), rel=0.1)


def test_the_same_seed_gives_the_same_replicates():
    def stat(d):
        return np.array([d.clusters.sum(), d.units.sum()])

    a = nested_replicates(stat, 3, 7, 50, seed=11)
    assert np.array_equal(a, nested_replicates(stat, 3, 7, 50, seed=11))
    assert not np.array_equal(a, nested_replicates(stat, 3, 7, 50, seed=12))


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


def test_empty_draws_are_refused():
    with pytest.raises(ValueError, match="clusters and units"):
        next(nested_draws(0, 5, 10, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="n_boot"):
        nested_replicates(lambda d: np.zeros(1), 2, 5, 0)


def test_evalstudy_imports_neither_generator_torch_nor_django():
    code = ("import sys, evalstudy.nested, evalstudy.bootstrap; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'generator', 'torch', 'django'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
