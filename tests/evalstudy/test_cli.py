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
    assert (tmp_path / "fig" / "figure5.svg").exists()
    assert main(["analyze", str(csv), "--n-boot", "100"]) == 0
    assert "Friedman" in capsys.readouterr().out


def test_power_prints_the_evaluators_needed(capsys):
    assert main(["power", "--a", "x-intermediate", "--b", "x-early", "--quality",
                 "x-intermediate=0.9,x-early=0.3", "--evaluators", "4,8", "--sims", "10"]) == 0
    assert "evaluators needed for power 0.8" in capsys.readouterr().out


def test_plan_prints_every_slot(capsys):
    assert main(["plan", str(DEMO)]) == 0
    plans = json.loads(capsys.readouterr().out)
    assert len(plans) == load_protocol(DEMO).evaluators.n


def test_bad_input_is_an_error_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("task,item_id\ncount,x\n")
    assert main(["analyze", str(bad)]) == 2
    assert "missing column" in capsys.readouterr().err
