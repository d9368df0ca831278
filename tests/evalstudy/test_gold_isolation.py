"""Gold items check the evaluators; they never enter the headline count numbers."""
import numpy as np

from evalstudy.analysis import analyze
from evalstudy.responses import ResponseTable
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol


def test_wildly_wrong_gold_answers_leave_every_headline_count_number_unchanged():
    proto = synthetic_protocol(["c-early", "c-intermediate"], images_per_prompt=2, n_captions=4,
                               n_evaluators=6, overlap=2, gold=3)
    table = simulate_study(RaterSimulator({"c-early": 0.5, "c-intermediate": 0.8}, seed=4), proto)
    gold = table["is_gold"] & (table["task"] == "count") & np.isfinite(table["answer_count"])
    assert gold.sum() >= 6
    cols = {k: v.copy() for k, v in table.columns.items()}
    cols["answer_count"][gold] = cols["true_count"][gold] + 17
    wrong = ResponseTable(cols)
    a = analyze(table, proto, n_boot=60, seed=1, exclusions=False)
    b = analyze(wrong, proto, n_boot=60, seed=1, exclusions=False)
    # Every estimate and every n (the intervals' ends: the test below); the notes as they are.
    def estimates(result):
        return {section: [{k: v for k, v in row.items() if not k.endswith("_ci")} for row in rows]
                for section, rows in result.count.to_dict().items() if isinstance(rows, list)}

    assert estimates(a) == estimates(b)
    assert sum(len(rows) for rows in estimates(a).values()) >= 2 + 6 + 10
    # ... while the gold accuracy, which is what gold items are for, saw the change.
    acc_a = {e.evaluator_id: e.gold_accuracy for e in a.evaluators}
    acc_b = {e.evaluator_id: e.gold_accuracy for e in b.evaluators}
    assert any((acc := acc_a[e]) is not None and acc > 0 for e in acc_a)
    assert all(acc_b[e] == 0 for e in acc_b if acc_b[e] == acc_b[e])


def test_changed_gold_and_repeated_answers_leave_every_headline_interval_identical():
    """The bootstrap's evaluator order is hashed from the answers the headline numbers use
    only: gold and repeated answers, which check the evaluators, draw no new resamples."""
    proto = synthetic_protocol(["c-early", "c-intermediate", "x-early"], images_per_prompt=2,
                               n_captions=6, n_evaluators=6, overlap=2, gold=3, repeats=2)
    table = simulate_study(RaterSimulator({"c-early": 0.5, "c-intermediate": 0.8, "x-early": 0.6},
                                          seed=4), proto)
    gold = table["is_gold"] & np.isfinite(table["answer_count"])
    repeated_count = (table["repeat_of"] != "") & np.isfinite(table["answer_count"])
    repeated_rank = (table["repeat_of"] != "") & np.isfinite(table["rank"])
    assert gold.sum() >= 6 and repeated_count.sum() >= 2 and repeated_rank.sum() >= 2
    cols = {k: v.copy() for k, v in table.columns.items()}
    cols["answer_count"][gold] = cols["true_count"][gold] + 17
    cols["answer_count"][repeated_count] += 3
    cols["rank"][repeated_rank] = len(proto.variants) + 1 - cols["rank"][repeated_rank]
    changed = ResponseTable(cols)
    a = analyze(table, proto, n_boot=60, seed=1, exclusions=False).to_dict()
    b = analyze(changed, proto, n_boot=60, seed=1, exclusions=False).to_dict()
    headline = ("count", "preference", "tests", "agreement")
    for section in headline:
        assert a[section] == b[section], section
    assert a["unfiltered"] == b["unfiltered"]
    intervals = [v for s in headline for v in _values_named(a[s], "_ci") if v[0] is not None]
    assert len(intervals) > 100  # bootstrap intervals, each of which a new draw would move
    # ... while the checks of the evaluators saw the change.
    assert a["evaluators"] != b["evaluators"]


def _values_named(node, suffix: str) -> list:
    """Every value in a JSON document whose key ends with `suffix`."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k.endswith(suffix) and v is not None] + [
            x for v in node.values() for x in _values_named(v, suffix)]
    if isinstance(node, list):
        return [x for v in node for x in _values_named(v, suffix)]
    return []
