"""Bad input gets a ValueError that names the argument (or column) and its value, before
anything is computed; the command line prints it as one line and exits 2 (the audit of
2026-12, finding F5, listed each case below)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstudy import rank_models, sequential, stats
from evalstudy.__main__ import main
from evalstudy.analysis import analyze
from evalstudy.power import power_analysis
from evalstudy.protocol import DEFAULT_CI_LEVEL, Protocol, ProtocolError, min_resamples
from evalstudy.responses import ResponseError, table_from_columns
from evalstudy.simulate import RaterSimulator

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

POWER = ["power", "--a", "a", "--b", "b", "--sims", "2"]


@pytest.mark.parametrize("extra, names", [
    (["--quality", "a=0.5,b=0.6", "--evaluators", "0"], "evaluators"),
    (["--quality", "a=0.5,b=0.6", "--evaluators", "5", "--b", "zz", "--task", "count"], "'zz'"),
    (["--quality", "a=0.5", "--evaluators", "5"], "'b'"),
    (["--quality", "a=0.5,b=0.6", "--evaluators", "5", "--items-per-evaluator", "0"], "items_per_evaluator"),
    (["--quality", "a=0.5,b=0.6", "--evaluators", "5", "--alpha", "0"], "alpha"),
])
def test_power_with_bad_arguments_prints_one_line_and_exits_2(capsys, extra, names):
    assert main(POWER + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and names in err and "Traceback" not in err
    assert err.count("\n") == 1


# ---------------------------------------------------------------------------
# table_from_columns: the same rules as a CSV cell
# ---------------------------------------------------------------------------

def _count_columns(**change):
    cols: dict[str, list] = {"task": ["count"] * 2, "item_id": ["i0", "i1"], "evaluator_id": ["e", "e"],
            "variant": ["a", "a"], "prompt": ["p", "p"], "object": ["cat", "cat"],
            "true_count": [3.0, 2.0], "answer_count": [3.0, 1.0], "rank": [math.nan] * 2,
            "skipped": [False] * 2, "skip_reason": [""] * 2, "position": [math.nan] * 2,
            "seconds": [1.0, 2.0], "is_gold": [False] * 2, "seed": [0.0, 1.0]}
    for name, value in change.items():
        cols[name] = [value, cols[name][1]]
    return {k: np.array(v) for k, v in cols.items()}


def test_good_columns_are_read():
    assert len(table_from_columns(_count_columns())) == 2


@pytest.mark.parametrize("column, value", [
    ("answer_count", -5.0), ("answer_count", math.inf), ("answer_count", 2.5),
    ("true_count", 2.5), ("true_count", -math.inf), ("seconds", -1.0), ("seconds", math.inf),
    ("seed", 0.5),
])
def test_table_from_columns_refuses_a_value_a_csv_cell_could_not_hold(column, value):
    with pytest.raises(ResponseError) as exc:
        table_from_columns(_count_columns(**{column: value}))
    assert f"row 0: {column} must be" in str(exc.value) and repr(value) in str(exc.value)


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=False))
def test_an_answer_is_read_exactly_when_it_is_a_whole_number_of_at_least_0(x):
    good = math.isfinite(x) and x >= 0 and x == round(x)
    if good:
        assert table_from_columns(_count_columns(answer_count=x))["answer_count"][0] == x
    else:
        with pytest.raises(ResponseError, match="answer_count must be an integer >= 0"):
            table_from_columns(_count_columns(answer_count=x))


# ---------------------------------------------------------------------------
# analyze: too few resamples for the interval's tails
# ---------------------------------------------------------------------------

def test_analyze_refuses_too_few_resamples_for_its_level():
    table = table_from_columns(_count_columns())
    least = min_resamples(DEFAULT_CI_LEVEL)
    assert least == round(2 / (1 - DEFAULT_CI_LEVEL))
    for n_boot in (1, least - 1):
        with pytest.raises(ValueError, match=f"n_boot must be at least {least}.*got {n_boot}"):
            analyze(table, n_boot=n_boot)
    analyze(table, n_boot=least)


def test_a_protocol_cannot_ask_for_fewer_resamples_than_its_level_needs():
    doc = json.loads(DEMO.read_text())
    doc.setdefault("analysis", {}).update(ci_level=0.995, n_boot=300)
    with pytest.raises(ProtocolError, match="n_boot"):
        Protocol.from_dict(doc)


# ---------------------------------------------------------------------------
# The helpers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: stats.kendall_w([1.0, 2.0, 3.0]), "judges x objects matrix"),
    (lambda: stats.friedman([1.0, 2.0, 3.0]), "blocks x treatments matrix"),
    (lambda: stats.krippendorff_alpha_long([0, 0, 1], [1.0, 2.0]), "unit has 3, value has 2"),
    (lambda: stats.quadratic_weighted_kappa([1, 2, 3], [1, 2]), "a has 3, b has 2"),
    (lambda: stats.quadratic_weighted_kappa([1.5, 2, 3], [1, 2, 3]), "a: ratings must be integers"),
    (lambda: stats.nemenyi([1.0, 2.0, 3.0], n_blocks=0), "n_blocks must be at least 1, got 0"),
    (lambda: stats.wilcoxon_signed_rank([1.0, -2.0, math.inf]), "must be finite"),
    (lambda: stats.holm([0.01, 1.5, -0.1]), r"\[1.5, -0.1\]"),
    (lambda: rank_models.davidson_fit(np.array([[0, math.nan], [1, 0]]), np.zeros((2, 2))),
     "wins must be finite"),
    (lambda: rank_models.davidson_fit(np.zeros((2, 2)), np.array([[0, 1.0], [0, 0]])),
     "ties must be symmetric"),
    (lambda: rank_models.davidson_fit(np.zeros((2, 3)), np.zeros((2, 3))), r"wins must be .*\(2, 3\)"),
    (lambda: rank_models.plackett_luce_mm([[1.0, -1.0]], [[0, 1], [1, 0]]), "counts must be finite"),
    (lambda: rank_models.plackett_luce_mm([[1.0] * 5], rank_models.all_orderings(3)), "K = 5"),
    (lambda: sequential.boundaries([0.5, 1.0], 1.5), "alpha must be in"),
    (lambda: sequential.boundaries([0.5, 1.0], 0.0), "alpha must be in"),
    (lambda: sequential.monitor([sequential.LookInput(10, 0.1, 0.05, 30.0)] * 2, (10,), 0.05, 0.1),
     "2 looks taken but 1 planned"),
    (lambda: sequential.monitor([sequential.LookInput(10, 0.1, 0.05, 30.0)], (10, 20), 0.05, 0.0),
     "effect must be"),
    (lambda: sequential.stagewise_inference([0.5, 0.4], [3.0, 2.0], 2, 2.5, 0.05), "fractions must increase"),
    (lambda: sequential.stagewise_inference([0.5, math.nan], [3.0, 2.0], 2, 2.5, 0.05), "fractions must increase"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0], 2, 2.5, 0.05), "one per look"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0, -2.0], 2, 2.5, 0.05), "must be positive"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0, 2.0], 0, 2.5, 0.05), r"look must be in 1\.\.2"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0, 2.0], 3, 2.5, 0.05), r"look must be in 1\.\.2"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0, 2.0], 2, math.nan, 0.05), "z must be finite"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0, 2.0], 2, math.inf, 0.05), "z must be finite"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0, 2.0], 1, 2.5, 0.05), "only by crossing"),
    (lambda: sequential.stagewise_inference([0.5, 1.0], [3.0, 2.0], 2, 2.5, 1.5), "alpha must be in"),
    (lambda: sequential.stagewise_p(math.inf, [0.5, 1.0], [3.0, 2.0], 2, 2.5), "drift must be finite"),
    (lambda: power_analysis(RaterSimulator({"a": 0.5, "b": 0.6}), "a", "b", evaluators=(0,), n_sims=1),
     "evaluators must be"),
])
def test_helpers_name_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_wilcoxon_still_drops_missing_pairs():
    assert stats.wilcoxon_signed_rank([1.0, 2.0, math.nan]).n_pairs == 2
