"""The analysis defaults are written once, in the protocol schema, and every reader agrees."""
import inspect
import json
from pathlib import Path

from evalstudy.analysis import analyze
from evalstudy.protocol import AnalysisPlan, PrimaryPlan, Protocol
from tests.narrow import present

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


def test_a_protocol_without_an_analysis_section_gets_the_schemas_defaults():
    doc = {k: v for k, v in json.loads(DEMO.read_text()).items() if k != "analysis"}
    assert Protocol.from_dict(doc).analysis == AnalysisPlan()


def test_a_primary_plan_without_alpha_or_power_gets_the_schemas_defaults():
    doc = json.loads(DEMO.read_text())
    variants = doc["variants"]
    doc["analysis"] = {"primary": {"comparisons": [{"a": variants[0], "b": variants[1], "measure": "score",
                                                    "effect": 0.1}], "looks": [10, 20]}}
    primary = present(Protocol.from_dict(doc).analysis.primary)
    assert primary == PrimaryPlan(comparisons=primary.comparisons, looks=(10, 20))


def test_analyze_without_a_protocol_draws_the_schemas_resamples():
    assert inspect.signature(analyze).parameters["n_boot"].default == AnalysisPlan().n_boot
