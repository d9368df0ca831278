"""bench/coverage.py's scenarios of other widths with ties: valid studies, truths for every
interval they check, and the earlier scenarios where they were (their seeds follow their
index)."""

import numpy as np
import pytest

from bench import coverage
from evalstudy.analysis import analyze


def test_the_earlier_scenarios_keep_their_places():
    names = [c.name for c in coverage.SCENARIOS]
    assert names[15] == "all of these, 60 raters" and len(names) >= 16
    assert all(c.n_variants == 4 and c.tie_margin == 0 for c in coverage.SCENARIOS[:16])


@pytest.mark.parametrize("m", [2, 3, 6])
def test_a_scenario_with_ties_draws_a_valid_study_with_a_truth_for_each_interval(m, monkeypatch):
    crowd = next(c for c in coverage.SCENARIOS if c.name == f"{m} variants with ties, 8 raters")
    monkeypatch.setattr(coverage, "TRUTH_DRAWS", 20_000)
    rng = np.random.default_rng(0)
    truth = coverage.truths(crowd, rng)
    table = coverage.draw_study(crowd, rng)
    ranks = table["rank"][np.isfinite(table["rank"])].reshape(-1, m)
    assert any(len(set(r)) < m for r in ranks.tolist())
    res = analyze(table, n_boot=50, seed=0)
    families = {"score", "bt_strength", "win_rate", "tie_rate"}
    checked = {k: ci for k, ci in coverage.intervals(res).items() if k[0] in families}
    assert checked and set(checked) <= set(truth)
    assert {k[0] for k in checked} == families
    assert sum(truth[("score", v)] for v in coverage._design(crowd)[0]) == pytest.approx(m * (m + 1) / 2)
