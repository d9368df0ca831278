"""The planned comparisons' test counts the raters as well as the items: the crossed t
(difference / crossed-bootstrap standard error, Satterthwaite's df), not the Wilcoxon
signed-rank over items, which reads a few raters' tastes repeated over their items as
many independent items (bench/rater_clustering.py has the sizes)."""

import pytest
from scipy import stats as sps

from evalstudy.analysis import analyze
from evalstudy.responses import responses_from_rows
from evalstudy.simulate import RaterSimulator, power_analysis, simulate_study, synthetic_protocol
from tests.narrow import present

V = ["a-early", "a-intermediate"]


def _ranking(ev, item, early_first, flip):
    ranks = (1, 2) if early_first else (2, 1)
    positions = (1, 0) if flip else (0, 1)
    return [{"task": "rank", "item_id": item, "evaluator_id": ev, "variant": v,
             "prompt": f"caption {item}", "object": "", "true_count": "", "answer_count": "",
             "rank": r, "skipped": 0, "skip_reason": "", "position": p, "seconds": 8,
             "is_gold": 0} for v, r, p in zip(V, ranks, positions, strict=True)]


@pytest.fixture(scope="module")
def six_tastes():
    """Six raters, ten captions each: five put a-early first in 9 of their 10 captions, the
    sixth never does. 50 of 60 captions favour a-early (the Wilcoxon over captions: p about
    1e-4), but they are the tastes of six raters, five against one."""
    rows = []
    for e in range(6):
        for k in range(10):
            rows += _ranking(f"e{e}", f"c{e}-{k}", e < 5 and k != 0, k % 2)
    return responses_from_rows(rows)


def test_a_few_raters_tastes_repeated_over_their_captions_are_not_significant(six_tastes):
    res = analyze(six_tastes, n_boot=400)
    (t,) = res.tests.paired
    assert t.difference == pytest.approx(-0.5)
    # The captions-as-independent test is what the planned test must not be.
    assert present(t.p_wilcoxon_items) < 0.001
    # Six raters: the crossed variance has a handful of df and the test does not reject.
    assert present(t.df) < 6
    assert present(t.p_value) > 0.1 and present(t.p_holm) > 0.1 and not t.significant
    # The interval and the test read the same variance: both say "not shown".
    assert present(t.difference_ci[0]) < 0 < present(t.difference_ci[1])
    assert t.method.startswith("crossed t")
    assert "treats the items as independent" in t.method
    # Friedman reads the same caption blocks as the Wilcoxon, and says so.
    friedman = present(res.tests.friedman)
    assert present(friedman.p_value) < 0.001
    assert "liberal when raters rank many captions" in friedman.note


def test_the_planned_p_value_is_the_t_of_the_difference_on_its_crossed_variance():
    proto = synthetic_protocol(["c-intermediate", "c-early"], n_captions=30, n_evaluators=12, overlap=3)
    sim = RaterSimulator({"c-intermediate": 0.8, "c-early": 0.6}, rater_sd=0.3, seed=4)
    res = analyze(simulate_study(sim, proto), proto, n_boot=200, exclusions=False)
    assert {(t.task, t.measure) for t in res.tests.paired} == {
        ("count", "mean_abs_error"), ("count", "match_ratio"), ("rank", "score")}
    ps = [present(t.p_value) for t in res.tests.paired]
    for t in res.tests.paired:
        df, stat, diff = present(t.df), present(t.statistic), present(t.difference)
        assert df >= 1
        assert t.p_value == pytest.approx(2 * sps.t.sf(abs(stat), df))
        # The interval is built from the same standard error (bootstrap-shaped, so only
        # roughly est -+ t_df se).
        half = sps.t.ppf(0.975, df) * abs(diff / stat)
        width = present(t.difference_ci[1]) - present(t.difference_ci[0])
        assert 0.6 < width / (2 * half) < 1.6
        assert t.significant == (present(t.p_holm) < 0.05)
    # Holm over the three crossed p-values.
    order = sorted(range(3), key=lambda k: ps[k])
    running = 0.0
    for j, k in enumerate(order):
        running = max(running, min(1.0, (3 - j) * ps[k]))
        assert res.tests.paired[k].p_holm == pytest.approx(running)


def test_power_analysis_uses_the_crossed_test_so_a_rater_taste_is_no_power():
    # No difference between the variants, but each of six raters has a strong taste for
    # one of them, repeated over their 20 captions: the Wilcoxon over captions "finds" a
    # difference in most studies (0.63 in 60), the analysis' test in about alpha of them.
    sim = RaterSimulator({"a": 0.5, "b": 0.5}, rank_noise=0.3, item_sd=0.05, rater_sd=1.0,
                         skip_rate=0.0, seed=1)
    out = power_analysis(sim, "a", "b", evaluators=(6,), items_per_evaluator=20, overlap=1,
                         n_sims=60, seed=3)
    assert out["rows"][0]["power"] <= 0.15
