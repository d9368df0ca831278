"""python -m evalstudy: the commands the web app and a person use."""

import json
from pathlib import Path

from evalstudy.__main__ import main
from evalstudy.protocol import load_protocol

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "protocols" / "demo.json"


def test_protocol_prints_the_hash(capsys):
    assert main(["protocol", str(DEMO)]) == 0
    assert capsys.readouterr().out.strip() == load_protocol(DEMO).content_hash()


def test_simulate_then_analyze_json_and_figures(tmp_path, capsys):
    csv = tmp_path / "responses.csv"
    assert main(["simulate", "--protocol", str(DEMO), "--out", str(csv), "--careless", "0.1",
                 "--quality", "concat-early=0.5,concat-intermediate=0.7,cross-early=0.6,"
                 "cross-intermediate=0.8"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(csv), "--protocol", str(DEMO), "--json", "--n-boot", "200",
                 "--figures", str(tmp_path / "fig")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"]["hash"] == load_protocol(DEMO).content_hash()
    assert {r["variant"] for r in doc["preference"]["by_variant"]} == set(
        load_protocol(DEMO).variants)
    assert (tmp_path / "fig" / "count-error-by-true-count.svg").exists()
    assert main(["analyze", str(csv), "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "Friedman" in out
    # the summary says how many raters stand behind each row, and warns below FEW_RATERS
    # (without a protocol no exclusions apply: the unfiltered numbers)
    n_raters = {r["variant"]: r["n_raters"] for r in doc["unfiltered"]["count"]["by_variant"]}
    row = next(line for line in out.splitlines() if line.strip().startswith("concat-early "))
    assert row.split()[1] == str(n_raters["concat-early"])
    assert ("Fewer than 10 raters behind a row" in out) == (min(n_raters.values()) < 10)


def test_power_prints_the_evaluators_needed(capsys):
    assert main(["power", "--a", "x-intermediate", "--b", "x-early", "--quality",
                 "x-intermediate=0.9,x-early=0.3", "--evaluators", "4,8", "--sims", "10"]) == 0
    assert "evaluators needed for power 0.8" in capsys.readouterr().out


def test_power_json_keeps_its_document_fields_in_order(capsys):
    # The --json document is PowerAnalysis.to_dict(): the keys a script reads, in the order
    # they were printed before the result became a dataclass.
    assert main(["power", "--a", "a", "--b", "b", "--quality", "a=0.5,b=0.7", "--evaluators", "4,8",
                 "--sims", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["task", "a", "b", "alpha", "target", "n_sims", "items_per_evaluator",
                         "planned_rows", "rows", "required_evaluators"]
    assert [list(r) for r in doc["rows"]] == [["n_evaluators", "n_items", "overlap", "power", "power_se",
                                               "power_unadjusted", "power_unadjusted_se"]] * 2
    assert [r["n_evaluators"] for r in doc["rows"]] == [4, 8]


def test_plan_prints_every_slot(capsys):
    assert main(["plan", str(DEMO)]) == 0
    plans = json.loads(capsys.readouterr().out)
    assert len(plans) == load_protocol(DEMO).evaluators.n


def test_bad_input_is_an_error_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("task,item_id\ncount,x\n")
    assert main(["analyze", str(bad)]) == 2
    assert "missing column" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# analyze refuses files that would otherwise turn into wrong numbers (exit 2, line and column)
# ---------------------------------------------------------------------------

import pytest  # noqa: E402

from evalstudy.responses import RESPONSE_COLUMNS  # noqa: E402

HEADER = ",".join(RESPONSE_COLUMNS)


def _count_line(item, ev, variant="concat-early", answer="2", seed="0"):
    cells = {"task": "count", "item_id": item, "evaluator_id": ev, "variant": variant,
             "prompt": "2 cats", "object": "cat", "true_count": "2", "answer_count": answer,
             "rank": "", "skipped": "0", "skip_reason": "", "position": "", "seconds": "4",
             "is_gold": "0", "image_id": "", "seed": seed, "auto_count": "", "repeat_of": "", "away_seconds": ""}
    return ",".join(cells[c] for c in RESPONSE_COLUMNS)


GOOD = [_count_line(f"i{k}", f"e{k % 3}", ("concat-early", "cross-early")[k % 2], str(1 + k % 3),
                    str(k // 2)) for k in range(12)]


def _analyze(tmp_path, capsys, text, *extra, encoding="utf-8"):
    path = tmp_path / "responses.csv"
    path.write_text(text, encoding=encoding)
    code = main(["analyze", str(path), "--n-boot", "40", *extra])
    return code, capsys.readouterr().err


def test_a_good_file_passes(tmp_path, capsys):
    code, err = _analyze(tmp_path, capsys, "\n".join([HEADER, *GOOD]) + "\n")
    assert code == 0
    assert "2 variant(s) found: concat-early, cross-early" in err


BAD = {
    "duplicate header": ("\n".join([HEADER + ",answer_count", *(g + "," for g in GOOD)]),
                         r"line 1, column 20: duplicate column 'answer_count' \(also column 8\)"),
    "truncated last row": ("\n".join([HEADER, *GOOD, ",".join(GOOD[0].split(",")[:7])]),
                           r"line 14: truncated row: 7 cells, the header has 19"),
    "extra cells": ("\n".join([HEADER, GOOD[0] + ",surplus", *GOOD[1:]]),
                    r"line 2: extra cells: 20 cells, the header has 19"),
    "1e3 as a count": ("\n".join([HEADER, *GOOD[:3], _count_line("i99", "e1", answer="1e3")]),
                       r"line 5, column 8 \(answer_count\): expected an integer, got '1e3'"),
    "huge cell": ("\n".join([HEADER, *GOOD[:2], _count_line("x" * 140_000, "e1")]),
                  r"line 4: a cell is longer than 131072 characters"),
    "csv error": ("\n".join([HEADER, *GOOD[:2], 'count,"i9\n']), r"line \d+: unexpected end of data"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csvs_are_refused_with_line_and_column(tmp_path, capsys, case):
    text, message = BAD[case]
    code, err = _analyze(tmp_path, capsys, text + "\n")
    assert code == 2, err
    assert "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_a_byte_order_mark_is_accepted(tmp_path, capsys):
    code, err = _analyze(tmp_path, capsys, "\n".join([HEADER, *GOOD]) + "\n", encoding="utf-8-sig")
    assert code == 0, err


def test_n_boot_below_one_is_refused(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("\n".join([HEADER, *GOOD]) + "\n")
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(path), "--n-boot", "0"])
    assert exc.value.code == 2
    assert "--n-boot: must be at least 1, got 0" in capsys.readouterr().err


def test_variants_outside_the_protocol_or_in_another_case_are_refused(tmp_path, capsys):
    lines = [HEADER, *GOOD, _count_line("i50", "e1", variant="Concat-early"),
             _count_line("i51", "e1", variant="concat-late")]
    code, err = _analyze(tmp_path, capsys, "\n".join(lines) + "\n", "--protocol", str(DEMO))
    assert code == 2
    assert "line 14, column 4: variant 'Concat-early' differs only in case from the protocol's " \
           "'concat-early'" in err
    assert "line 15, column 4: variant 'concat-late' not one of the protocol's variants" in err


def test_without_a_protocol_variants_differing_in_case_are_named(tmp_path, capsys):
    lines = [HEADER, *GOOD, _count_line("i50", "e1", variant="Concat-early")]
    code, err = _analyze(tmp_path, capsys, "\n".join(lines) + "\n")
    assert "names that differ only in case: concat-early" in err


def test_a_file_without_seeds_says_which_tests_it_drops(tmp_path, capsys):
    cols = [c for c in RESPONSE_COLUMNS if c != "seed"]
    drop = RESPONSE_COLUMNS.index("seed")
    lines = [",".join(cols)] + [",".join(g.split(",")[:drop] + g.split(",")[drop + 1:]) for g in GOOD]
    code, err = _analyze(tmp_path, capsys, "\n".join(lines) + "\n")
    assert code == 0
    assert "no seed column" in err and "paired comparisons" in err
