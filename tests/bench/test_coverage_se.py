"""bench/coverage.py judges a family's coverage with standard errors clustered by study."""
import numpy as np
import pytest

from bench.coverage import clustered_se


def test_independent_intervals_give_the_binomial_standard_error():
    rng = np.random.default_rng(0)
    hits = rng.random(3000) < 0.95
    study = np.repeat(np.arange(300), 10)
    assert clustered_se(hits, study) == pytest.approx(np.sqrt(0.95 * 0.05 / 3000), rel=0.1)


def test_intervals_that_move_together_within_a_study_count_as_one():
    rng = np.random.default_rng(1)
    per_study = rng.random(300) < 0.95
    hits = np.repeat(per_study, 10)  # a study's ten intervals all cover or all miss
    study = np.repeat(np.arange(300), 10)
    binomial = np.sqrt(hits.mean() * (1 - hits.mean()) / len(hits))
    assert clustered_se(hits, study) == pytest.approx(binomial * np.sqrt(10), rel=0.1)
