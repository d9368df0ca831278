"""Consistency on repeated rankings: a tie is a relation of its own (audit of 2026-12-07,
finding 6), so a tie against an order disagrees whichever way the order runs."""
import pytest

from evalstudy.analysis.evaluators import evaluator_reliability
from evalstudy.responses import responses_from_rows


def _ranking(item: str, ranks: dict[str, int], repeat_of: str = "") -> list[dict]:
    return [{"task": "rank", "item_id": item, "evaluator_id": "e", "variant": v, "prompt": "a dog",
             "object": "", "true_count": "", "answer_count": "", "rank": r, "skipped": 0,
             "skip_reason": "", "position": p, "seconds": 6.0, "is_gold": 0, "repeat_of": repeat_of}
            for p, (v, r) in enumerate(ranks.items())]


def _consistency(first: dict[str, int], again: dict[str, int]) -> float | None:
    rows = _ranking("rank:0", first) + _ranking("rank:0#repeat", again, repeat_of="rank:0")
    (record,) = evaluator_reliability(responses_from_rows(rows, allow_ties=True))
    return record.consistency


@pytest.mark.parametrize("again", [{"a": 1, "b": 2}, {"a": 2, "b": 1}])
def test_a_tie_against_an_order_disagrees_in_either_direction(again):
    assert _consistency({"a": 1, "b": 1}, again) == 0.0
    assert _consistency(again, {"a": 1, "b": 1}) == 0.0


@pytest.mark.parametrize("ranks", [{"a": 1, "b": 1}, {"a": 1, "b": 2}, {"a": 2, "b": 1}])
def test_the_same_relation_twice_agrees(ranks):
    assert _consistency(ranks, ranks) == 1.0


def test_consistency_is_the_share_of_pairs_in_the_same_relation():
    # pairs (a, b): tie vs order; (a, c): same order; (b, c): same order -> 2 of 3
    assert _consistency({"a": 1, "b": 1, "c": 3}, {"a": 1, "b": 2, "c": 3}) == pytest.approx(2 / 3)
