"""The planned comparisons' test counts the raters as well as the items: the crossed t
(difference / crossed-bootstrap standard error, Satterthwaite's df), not the Wilcoxon
signed-rank over items, which reads a few raters' tastes repeated over their items as
many independent items (bench/rater_clustering.py has the sizes)."""

import numpy as np
import pytest
from scipy import stats as sps

from evalstudy.analysis import analyze
from evalstudy.power import planned_row_count, power_analysis
from evalstudy.responses import responses_from_rows
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol
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
    assert out.rows[0].power <= 0.15


def test_power_analysis_counts_the_flag_the_analysis_shows():
    # The same simulated studies analysed end to end: power is the share whose mean |error|
    # row analyze() flags `significant` (Holm over the planned rows), not the share with
    # p < alpha before Holm (audit of 2026-12-07, finding 5: 0.300 against 0.233).
    a, b = "x-intermediate", "x-early"
    sim = RaterSimulator({a: 0.85, b: 0.7}, seed=0)
    n_ev, per, overlap, n_sims = 12, 20, 3, 40
    out = power_analysis(sim, a, b, task="count", evaluators=[n_ev], items_per_evaluator=per,
                         overlap=overlap, n_sims=n_sims, seed=1)
    protocol = synthetic_protocol([a, b], images_per_prompt=max(1, round(n_ev * per / overlap / 2 / 15)),
                                  n_captions=0, n_evaluators=n_ev, overlap=overlap)
    assert out.planned_rows == planned_row_count(protocol) == 2
    rng = np.random.default_rng(1)
    flagged = unadjusted = 0
    for _ in range(n_sims):
        res = analyze(simulate_study(sim, protocol, seed=int(rng.integers(2 ** 31))), protocol, n_boot=40)
        row = next(t for t in res.tests.paired if t.measure == "mean_abs_error")
        flagged += row.significant
        unadjusted += row.p_value is not None and row.p_value < 0.05
    assert flagged != unadjusted  # these seeds tell the two apart
    assert out.rows[0].power == flagged / n_sims
    assert out.rows[0].power_unadjusted == unadjusted / n_sims


def test_power_analysis_with_more_planned_rows_has_less_power():
    sim = RaterSimulator({"a": 0.9, "b": 0.5}, seed=0)
    one, six = (power_analysis(sim, "a", "b", task="rank", evaluators=[6], items_per_evaluator=10,
                               overlap=2, n_sims=30, seed=2, planned_rows=rows) for rows in (None, 6))
    assert one.rows[0].power == one.rows[0].power_unadjusted
    assert six.rows[0].power < six.rows[0].power_unadjusted == one.rows[0].power
