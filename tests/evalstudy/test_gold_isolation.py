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
    # Every estimate and every n; not the intervals' ends: the bootstrap assigns its random
    # weights to evaluators in an order hashed from all their answers (so that their labels
    # do not matter), gold answers included, so the resampling noise is drawn anew.
    def estimates(result):
        return {section: [{k: v for k, v in row.items() if not k.endswith("_ci")} for row in rows]
                for section, rows in result.count.to_dict().items()}

    assert estimates(a) == estimates(b)
    assert sum(len(rows) for rows in estimates(a).values()) >= 2 + 6 + 10
    # ... while the gold accuracy, which is what gold items are for, saw the change.
    acc_a = {e.evaluator_id: e.gold_accuracy for e in a.evaluators}
    acc_b = {e.evaluator_id: e.gold_accuracy for e in b.evaluators}
    assert any(acc_a[e] > 0 for e in acc_a) and all(acc_b[e] == 0 for e in acc_b if acc_b[e] == acc_b[e])
