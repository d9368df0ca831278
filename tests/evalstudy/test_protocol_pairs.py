"""preference_task.design: "ranking" (the default, unhashed) or "pairs" (two of 3 to
MAX_PAIRED_VARIANTS variants per task), and what a pairs study may not ask for."""

import json
from pathlib import Path

import pytest

from evalstudy.protocol import (
    MAX_PAIRED_VARIANTS,
    MAX_RANKED_VARIANTS,
    Protocol,
    ProtocolError,
    load_protocol,
)
from tests.evalstudy.test_protocol import SHIPPED_HASHES

PROTOCOLS = Path(__file__).resolve().parents[2] / "fixtures" / "protocols"


@pytest.fixture
def demo_doc():
    doc = json.loads((PROTOCOLS / "demo.json").read_text())
    doc["preference_task"]["captions"] = ["a red bus", "two cats on a sofa", "a bowl of apples"]
    return doc


def _pairs(doc, n):
    doc["variants"] = [f"v{i}" for i in range(n)]
    doc["analysis"].pop("comparisons", None)
    doc["preference_task"]["design"] = "pairs"
    return doc


def test_the_default_design_is_left_out_of_the_canonical_form_and_the_hash():
    for name, expected in SHIPPED_HASHES.items():
        p = load_protocol(PROTOCOLS / name)
        assert p.design == "ranking" and not p.is_pairs
        assert "design" not in p.to_dict()["preference_task"]
        doc = json.loads((PROTOCOLS / name).read_text())
        doc["preference_task"]["design"] = "ranking"
        with_default = Protocol.from_dict(doc)
        # Relative captions paths resolve the same: only the document is hashed.
        assert with_default.content_hash() == expected, name


@pytest.mark.parametrize("n", [3, 7, 8, 20, MAX_PAIRED_VARIANTS])
def test_a_pairs_study_ranks_two_images_of_any_number_of_variants(demo_doc, n):
    p = Protocol.from_dict(_pairs(demo_doc, n))
    assert p.is_pairs and p.n_ranked == 2 and len(p.variants) == n
    assert p.to_dict()["preference_task"]["design"] == "pairs"
    assert Protocol.from_dict(p.to_dict()) == p
    ranking = Protocol.from_dict({**demo_doc, "variants": ["v0", "v1", "v2"],
                                  "preference_task": {**demo_doc["preference_task"], "design": "ranking"}})
    assert ranking.content_hash() != Protocol.from_dict(_pairs(demo_doc, 3)).content_hash()


def test_the_count_task_is_unaffected_by_the_pairs_design(demo_doc):
    p = Protocol.from_dict(_pairs(demo_doc, 8))
    assert p.count_task is not None and p.count_task == Protocol.from_dict(demo_doc).count_task


@pytest.mark.parametrize(("n", "code", "message"), [
    (2, "too_few_paired_variants", r"preference_task\.design: \"pairs\" needs at least 3 variants"),
    (MAX_PAIRED_VARIANTS + 1, "too_many_paired_variants",
     rf"variants: the pairs design compares at most {MAX_PAIRED_VARIANTS} variants"),
])
def test_a_pairs_study_of_too_few_or_too_many_variants_is_refused(demo_doc, n, code, message):
    with pytest.raises(ProtocolError, match=message) as err:
        Protocol.from_dict(_pairs(demo_doc, n))
    assert err.value.code == code


def test_too_many_ranked_variants_points_to_the_pairs_design(demo_doc):
    demo_doc["variants"] = [f"v{i}" for i in range(MAX_RANKED_VARIANTS + 1)]
    demo_doc["analysis"].pop("comparisons", None)
    with pytest.raises(ProtocolError, match=r"at most 6 variants can be ranked together, got 7; for more, set "
                                            r"preference_task\.design to \"pairs\"") as err:
        Protocol.from_dict(demo_doc)
    assert err.value.code == "too_many_ranked_variants"


@pytest.mark.parametrize("value", ["pair", "Pairs", 2, None, True])
def test_an_unknown_design_is_refused(demo_doc, value):
    demo_doc["preference_task"]["design"] = value
    with pytest.raises(ProtocolError, match=r"^preference_task\.design: expected one of 'ranking', 'pairs'") as err:
        Protocol.from_dict(demo_doc)
    assert err.value.code == "unknown_design"


def test_a_pairs_study_refuses_the_nemenyi_test(demo_doc):
    doc = _pairs(demo_doc, 8)
    doc["analysis"]["posthoc"] = "nemenyi"
    with pytest.raises(ProtocolError, match=r"^analysis\.posthoc: the Nemenyi test reads the mean ranks") as err:
        Protocol.from_dict(doc)
    assert err.value.code == "not_for_pairs"


def test_a_pairs_study_refuses_a_primary_score_comparison_but_keeps_count_measures(demo_doc):
    doc = _pairs(demo_doc, 8)
    comparison = {"a": "v1", "b": "v0", "measure": "score", "effect": 0.2}
    doc["analysis"]["primary"] = {"comparisons": [comparison], "looks": [10, 20]}
    with pytest.raises(ProtocolError, match=r"^analysis\.primary\.comparisons\[0\]\.measure: \"score\" is the mean "
                                            r"rank of full rankings") as err:
        Protocol.from_dict(doc)
    assert err.value.code == "not_for_pairs"
    comparison["measure"] = "match_ratio"
    assert Protocol.from_dict(doc).analysis.primary is not None


def test_pairs_planned_comparisons_name_variants(demo_doc):
    doc = _pairs(demo_doc, 8)
    doc["analysis"]["comparisons"] = [["v7", "v0"]]
    assert Protocol.from_dict(doc).comparisons() == (("v7", "v0"),)
