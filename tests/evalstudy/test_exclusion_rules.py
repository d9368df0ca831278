"""The protocol's task-skip exclusion rule: its threshold, and which skips it counts."""
import pytest

from evalstudy.analysis.evaluators import apply_exclusions, evaluator_reliability
from evalstudy.analysis.result import EvaluatorRecord
from evalstudy.protocol import Exclusions
from evalstudy.responses import responses_from_rows


def _count_row(ev: str, item: str, *, skipped: bool) -> dict:
    return {"task": "count", "item_id": item, "evaluator_id": ev, "variant": "a", "prompt": "three dogs",
            "object": "dog", "true_count": 3, "answer_count": "" if skipped else 3, "rank": "",
            "skipped": int(skipped), "skip_reason": "no_image" if skipped else "", "position": "",
            "seconds": 4.0, "is_gold": 0}


def _rank_rows(ev: str, item: str) -> list[dict]:
    return [{"task": "rank", "item_id": item, "evaluator_id": ev, "variant": v, "prompt": "a dog",
             "object": "", "true_count": "", "answer_count": "", "rank": r, "skipped": 0,
             "skip_reason": "", "position": p, "seconds": 6.0, "is_gold": 0}
            for p, (v, r) in enumerate([("a", 1), ("b", 2)])]


def _record(rate: float) -> EvaluatorRecord:
    return EvaluatorRecord(evaluator_id="e", n_count=4, n_rank=0, n_gold=0, gold_accuracy=None,
                           cant_tell_rate=0.0, task_skip_rate=rate, ranking_skip_rate=None,
                           median_seconds=5.0, n_repeats=0, consistency=None)


@pytest.mark.parametrize(("rate", "excluded"), [(0.25, False), (0.2499, False), (0.2501, True)])
def test_the_task_skip_rule_excludes_only_rates_strictly_above_its_limit(rate, excluded):
    out = apply_exclusions([_record(rate)], Exclusions(max_task_skip_rate=0.25))
    assert ("e" in out) is excluded
    if excluded:
        assert out["e"] == ["task skip rate 0.25 > 0.25"]


def test_an_evaluator_who_skips_counts_but_no_rankings_breaks_the_task_skip_rule():
    # 3 of 4 count tasks skipped, 2 rankings answered: 3 of 6 tasks skipped (0.5), while the
    # ranking skip rate is 0. The rule reads the task skip rate, counts included.
    rows = [_count_row("skipper", f"c{k}", skipped=k < 3) for k in range(4)]
    rows += _rank_rows("skipper", "r0") + _rank_rows("skipper", "r1")
    rows += [_count_row("steady", f"c{k}", skipped=False) for k in range(4)]
    rows += _rank_rows("steady", "r0") + _rank_rows("steady", "r1")
    rel = {r.evaluator_id: r for r in evaluator_reliability(responses_from_rows(rows))}
    assert rel["skipper"].task_skip_rate == pytest.approx(0.5)
    assert rel["skipper"].ranking_skip_rate == 0.0
    out = apply_exclusions(list(rel.values()), Exclusions(max_task_skip_rate=0.4))
    assert set(out) == {"skipper"}
