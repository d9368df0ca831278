"""The responses table: reading, writing and every validation error."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstudy.responses import (
    RESPONSE_COLUMNS,
    ResponseError,
    read_responses,
    responses_from_rows,
)


def count_row(**kw):
    row = {"task": "count", "item_id": "i1", "evaluator_id": "e1", "variant": "v-early",
           "prompt": "two buses", "object": "bus", "true_count": 2, "answer_count": 2,
           "rank": "", "skipped": 0, "skip_reason": "", "position": "", "seconds": 3.5,
           "is_gold": 0}
    row.update(kw)
    return row


def rank_rows(ranks=(1, 2, 3, 4), positions=(0, 1, 2, 3), skipped=0, item="r1", ev="e1"):
    names = ["a-early", "a-intermediate", "b-early", "b-intermediate"]
    return [{"task": "rank", "item_id": item, "evaluator_id": ev, "variant": v,
             "prompt": "a cat", "object": "", "true_count": "", "answer_count": "",
             "rank": "" if skipped else r, "skipped": skipped,
             "skip_reason": "cannot decide" if skipped else "", "position": p,
             "seconds": 9, "is_gold": 0} for v, r, p in zip(names, ranks, positions, strict=True)]


def test_round_trip_through_csv():
    rows = [count_row(), count_row(item_id="i2", answer_count="", seed=3)] + rank_rows()
    t = responses_from_rows(rows)
    buf = io.StringIO()
    t.write_csv(buf)
    assert buf.getvalue().splitlines()[0] == ",".join(RESPONSE_COLUMNS)
    back = read_responses(io.StringIO(buf.getvalue()))
    assert back.to_rows() == t.to_rows()
    assert np.isnan(back["answer_count"][1])  # can't tell stays empty
    assert back["seed"][1] == 3


def test_optional_columns_may_be_absent():
    header = ",".join(RESPONSE_COLUMNS[:14])
    line = "count,i1,e1,v,two buses,bus,2,2,,0,,,3,0"
    t = read_responses(io.StringIO(f"{header}\n{line}\n"))
    assert t["image_id"][0] == "" and np.isnan(t["auto_count"][0])


def test_time_away_is_read_beside_the_time_on_the_item():
    t = responses_from_rows([count_row(seconds=10, away_seconds=4), count_row(item_id="i2", seconds=5)])
    assert t["away_seconds"][0] == 4.0 and np.isnan(t["away_seconds"][1])
    assert [r["away_seconds"] for r in t.to_rows()] == ["4", ""]


def test_missing_required_column_is_reported():
    with pytest.raises(ResponseError, match="missing column"):
        read_responses(io.StringIO("task,item_id\ncount,i1\n"))


@pytest.mark.parametrize("rows, message", [
    ([count_row(task="rate")], "unknown task 'rate'"),
    ([count_row(answer_count="two")], "answer_count must be an integer"),
    ([count_row(answer_count=-1)], "answer_count must be >= 0"),
    ([count_row(skipped=2)], "skipped must be 0 or 1"),
    ([count_row(rank=1)], "a count row has a rank"),
    ([count_row(true_count="")], "needs true_count"),
    ([count_row(variant="")], "needs variant"),
    ([count_row(skipped=1)], "skipped count row has an answer"),
    ([count_row(), count_row()], "duplicate"),
    ([count_row(), count_row(evaluator_id="e2", true_count=3)], "described differently"),
    ([count_row(seconds=-1)], "seconds must be >= 0"),
    ([count_row(away_seconds=-1)], "away_seconds must be >= 0"),
    ([count_row(away_seconds="soon")], "away_seconds must be a number"),
    ([count_row(seconds=3, away_seconds=4)], r"away_seconds \(4.0\) is more than seconds \(3.0\)"),
    (rank_rows(ranks=(1, 2, 2, 4)), "not 1..4 once each"),
    (rank_rows(ranks=(1, 2, 3, 5)), "not 1..4 once each"),
    (rank_rows(ranks=(1, 2, 3, "")), "skipped is 0"),
    (rank_rows(positions=(0, 1, 1, 3)), "positions"),
    (rank_rows()[:3] + [dict(rank_rows()[3], skipped=1, rank="")], "some variants only"),
    (rank_rows() + rank_rows(item="r2")[:3], "different sets of variants"),
])
def test_invalid_rows_raise_clear_errors(rows, message):
    with pytest.raises(ResponseError, match=message) as info:
        responses_from_rows(rows)
    assert info.value.errors


def test_errors_name_csv_lines():
    header = ",".join(RESPONSE_COLUMNS[:14])
    ok = "count,i1,e1,v,two buses,bus,2,2,,0,,,3,0"
    bad = "count,i2,e1,v,two buses,bus,2,x,,0,,,3,0"
    with pytest.raises(ResponseError, match=r"line 3, column 8 \(answer_count\)"):
        read_responses(io.StringIO(f"{header}\n{ok}\n{bad}\n"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1, 6), min_size=4, max_size=4))
def test_only_permutations_of_1_to_m_are_valid_rankings(ranks):
    rows = rank_rows(ranks=tuple(ranks))
    if sorted(ranks) == [1, 2, 3, 4]:
        assert len(responses_from_rows(rows)) == 4
    else:
        with pytest.raises(ResponseError):
            responses_from_rows(rows)


def test_skipped_rankings_are_valid_without_ranks():
    t = responses_from_rows(rank_rows(skipped=1))
    assert t["skipped"].all() and np.isnan(t["rank"]).all()


# --------------------------------------------------------------------------- any width, ties

def wide_rows(ranks, item="r1", ev="e1", skipped=0):
    m = len(ranks)
    return [{"task": "rank", "item_id": item, "evaluator_id": ev, "variant": f"v{k}",
             "prompt": "a cat", "object": "", "true_count": "", "answer_count": "",
             "rank": "" if skipped else r, "skipped": skipped,
             "skip_reason": "cannot decide" if skipped else "", "position": (k + 1) % m,
             "seconds": 9, "is_gold": 0} for k, r in enumerate(ranks)]


@pytest.mark.parametrize("ranks", [(2, 1), (1, 3, 2), (5, 4, 3, 2, 1), (6, 1, 5, 2, 4, 3)])
def test_rankings_of_2_to_6_images_are_read(ranks):
    t = responses_from_rows(wide_rows(ranks) + wide_rows(ranks, item="r2", skipped=1))
    assert t["rank"][: len(ranks)].tolist() == list(ranks)
    assert t["skipped"][len(ranks):].all()


@pytest.mark.parametrize("ranks", [(1, 1), (1, 2, 2), (1, 1, 1), (1, 2, 2, 4, 5), (3, 1, 3, 1, 5, 5)])
def test_tied_competition_ranks_are_read_only_when_the_protocol_allows_ties(ranks):
    t = responses_from_rows(wide_rows(ranks), allow_ties=True)
    assert t["rank"].tolist() == list(ranks)
    with pytest.raises(ResponseError, match="ties need the protocol's preference_task.allow_ties"):
        responses_from_rows(wide_rows(ranks))
    buf = io.StringIO()
    t.write_csv(buf)
    assert read_responses(io.StringIO(buf.getvalue()), allow_ties=True).to_rows() == t.to_rows()
    with pytest.raises(ResponseError, match="allow_ties"):
        read_responses(io.StringIO(buf.getvalue()))


@pytest.mark.parametrize("ranks", [(1, 1, 2), (1, 2, 2, 3), (2, 2), (1, 3, 3, 3)])
def test_malformed_ties_are_refused(ranks):
    with pytest.raises(ResponseError, match="not competition ranks"):
        responses_from_rows(wide_rows(ranks), allow_ties=True)


@pytest.mark.parametrize("ranks", [(1,), (1, 2, 3, 4, 5, 6, 7)])
def test_a_ranking_of_one_or_seven_images_is_refused(ranks):
    with pytest.raises(ResponseError, match="ranking orders 2 to 6"):
        responses_from_rows(wide_rows(ranks), allow_ties=True)


@pytest.mark.parametrize("ranks", [(1, 2, 4), (0, 1, 2)])
def test_ranks_outside_1_to_m_are_refused_with_ties_allowed(ranks):
    with pytest.raises(ResponseError):
        responses_from_rows(wide_rows(ranks), allow_ties=True)
