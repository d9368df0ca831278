"""Protocols: validation, canonical form and hash, grammar of the prompt grid."""

import copy
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstudy.grid import count_prompts, preference_captions, study_items
from evalstudy.protocol import (
    Protocol,
    ProtocolError,
    canonical_json,
    default_comparisons,
    load_protocol,
)
from tests.narrow import present

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ROOT / "fixtures" / "protocols"


@pytest.fixture
def demo_doc():
    return json.loads((PROTOCOLS / "demo.json").read_text())


def test_fixture_protocols_load_and_round_trip():
    for name in ("demo.json", "paper.json"):
        p = load_protocol(PROTOCOLS / name)
        assert Protocol.from_dict(p.to_dict()) == p
        assert p.content_hash() == Protocol.from_dict(p.to_dict()).content_hash()


def test_hash_is_sha256_of_canonical_json_and_ignores_key_order(demo_doc):
    p = Protocol.from_dict(demo_doc)
    expected = hashlib.sha256(canonical_json(p.to_dict()).encode()).hexdigest()
    assert p.content_hash() == expected
    reordered = dict(reversed(list(demo_doc.items())))
    assert Protocol.from_dict(reordered).content_hash() == expected


def test_hash_changes_with_content(demo_doc):
    h = Protocol.from_dict(demo_doc).content_hash()
    demo_doc["sampling"]["steps"] += 1
    assert Protocol.from_dict(demo_doc).content_hash() != h


def test_paper_grid_grammar():
    p = load_protocol(PROTOCOLS / "paper.json")
    texts = {(c.object, c.count): c for c in count_prompts(p)}
    assert len(texts) == 4 * 5
    assert texts[("bus", 1)].text == "a bus"
    assert texts[("apple", 1)].text == "an apple"
    assert texts[("sheep", 2)].text == "two sheep"
    assert texts[("person", 5)].text == "five people"
    assert texts[("bus", 3)].question == "How many buses can you see?"
    assert texts[("person", 1)].question == "How many people can you see?"


def test_colours_are_part_of_the_grid_and_take_their_own_article(demo_doc):
    demo_doc["count_task"]["colours"] = ["orange", {"name": "blue", "article": "a"}]
    p = Protocol.from_dict(demo_doc)
    texts = {(c.object, c.count, c.colour): c.text for c in count_prompts(p)}
    assert len(texts) == 3 * 5 * 2
    assert texts[("circle", 1, "orange")] == "an orange circle"
    assert texts[("square", 3, "blue")] == "three blue squares"


def test_demo_captions_are_drawn_reproducibly_from_the_coco_file():
    p = load_protocol(PROTOCOLS / "demo.json")
    caps = preference_captions(p, PROTOCOLS)
    assert len(caps) == 10 == len(set(caps))
    assert caps == preference_captions(p, PROTOCOLS)
    coco = json.loads((ROOT / "fixtures" / "captions" / "demo_captions.json").read_text())
    assert set(caps) <= {a["caption"] for a in coco["annotations"]}
    other_seed = copy.deepcopy(p.to_dict())
    other_seed["preference_task"]["captions"]["seed"] = 1
    assert preference_captions(Protocol.from_dict(other_seed), PROTOCOLS) != caps


def test_study_items_have_unique_ids_and_pair_variants_on_prompt_and_seed():
    p = load_protocol(PROTOCOLS / "demo.json")
    items = study_items(p, PROTOCOLS)
    ids = [i.item_id for i in items]
    assert len(ids) == len(set(ids))
    count = [i for i in items if i.task == "count" and not i.is_gold]
    assert len(count) == 3 * 5 * 1 * 2 * 4
    assert sum(i.is_gold for i in items) == 2
    assert sum(i.task == "rank" for i in items) == 10
    pairs = {(i.prompt, i.seed) for i in count}
    assert len(pairs) == len(count) // 4


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("variants"), "missing required key"),
    (lambda d: d.update(variants=["a", "a"]), "unique"),
    (lambda d: d.update(colour="red"), "unknown key"),
    (lambda d: d["count_task"].update(counts=[0, 1]), "counts[0]: must be >= 1"),
    (lambda d: d["count_task"]["objects"][0].update(article="the"), "article"),
    (lambda d: d["count_task"].update(prompt_template="{number} {noun}"), "template field"),
    (lambda d: d["evaluators"].update(overlap=50), "evaluators.overlap"),
    (lambda d: d["analysis"].update(comparisons=[["concat-early", "nope"]]), "not one of"),
    (lambda d: d["analysis"]["exclusions"].update(min_gold_accuracy=2), "must be <= 1"),
    (lambda d: d["quality_control"]["gold"][0].update(object="bus"), "not one of count_task"),
    (lambda d: d["preference_task"]["captions"].pop("n"), "'n'"),
    (lambda d: (d.pop("count_task"), d.pop("preference_task")), "count_task"),
])
def test_bad_protocols_fail_with_a_message_naming_the_field(demo_doc, edit, message):
    edit(demo_doc)
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Protocol.from_dict(demo_doc)


def test_missing_captions_file_is_a_protocol_error():
    p = load_protocol(PROTOCOLS / "paper.json")
    with pytest.raises(ProtocolError, match="cannot read captions file"):
        preference_captions(p, PROTOCOLS / "nowhere")


def test_yaml_protocol_loads_like_json(tmp_path, demo_doc):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "demo.yaml"
    demo_doc["preference_task"]["captions"] = ["a red circle", "two blue squares"]
    path.write_text(yaml.safe_dump(demo_doc))
    assert load_protocol(path) == Protocol.from_dict(demo_doc)


def test_default_comparisons_pair_intermediate_with_early():
    assert default_comparisons(["concat-early", "concat-intermediate", "cross-early",
                                "cross-intermediate"]) == (
        ("concat-intermediate", "concat-early"), ("cross-intermediate", "cross-early"))


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(1, 1000), cfg=st.floats(0, 20, allow_nan=False),
       n=st.integers(1, 50), seed=st.integers(0, 2 ** 31))
def test_round_trip_property(steps, cfg, n, seed):
    doc = {"name": "x", "variants": ["a-early", "a-intermediate"],
           "sampling": {"cfg_scale": cfg, "steps": steps, "sampler": "ddim", "seed": seed},
           "count_task": {"objects": [{"name": "bus", "plural": "buses"}], "counts": [1, 2]},
           "evaluators": {"n": n, "overlap": 1}}
    p = Protocol.from_dict(doc)
    assert Protocol.from_dict(json.loads(json.dumps(p.to_dict()))) == p


# --------------------------------------------------------------------------- optional sections


def test_a_protocol_without_the_optional_sections_keeps_its_canonical_form_and_hash(demo_doc):
    for key in ("recruitment", "consent", "practice"):
        demo_doc.pop(key)
    p = Protocol.from_dict(demo_doc)
    assert p.recruitment is None and p.consent is None and p.practice is None
    canonical = p.to_dict()
    # Nothing new in the hashed form: the document (and its hash) is the one written
    # before these sections existed.
    assert not {"recruitment", "consent", "practice"} & set(canonical)
    assert Protocol.from_dict(canonical) == p


def test_the_demo_fills_recruitment_consent_and_practice(demo_doc):
    p = Protocol.from_dict(demo_doc)
    rec = present(p.recruitment)
    assert rec.panel == "prolific"
    assert (rec.participant_param, rec.study_param, rec.session_param) == ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
    assert present(rec.declined.href()).endswith(f"cc={rec.declined.code}")
    consent = p.consent
    assert all(getattr(consent, k) for k in ("title", "purpose", "pay", "contact", "data_use", "retention",
                                             "ethics_ref", "pilot_seconds_per_task"))
    assert present(present(p.practice).count).count == 3 and len(present(present(p.practice).rank_example).images) == 4
    assert Protocol.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("section, change, where", [
    ("recruitment", {"panel": "mturk"}, "recruitment.panel"),
    ("recruitment", {"completion_url": "app.prolific.com/x"}, "recruitment.completion_url"),
    ("recruitment", {"participant_param": "PID"}, "recruitment.participant_param"),
    ("recruitment", {"full": {"code": "X", "link": "https://x"}}, "recruitment.full"),
    ("consent", {"pay": ""}, "consent.pay"),
    ("consent", {"pilot_seconds_per_task": -1}, "consent.pilot_seconds_per_task"),
    ("practice", {"count": {"object": "hexagon", "count": 2}}, "practice.count.object"),
    ("practice", {"rank_example": {"caption": "x", "images": [{"object": "circle", "count": 1}]}},
     "practice.rank_example.images"),
])
def test_optional_sections_name_the_offending_field(demo_doc, section, change, where):
    demo_doc[section].update(change)
    with pytest.raises(ProtocolError, match=rf"^{where.replace('.', '[.]')}"):
        Protocol.from_dict(demo_doc)


# --------------------------------------------------------------------------- ranking width, ties

# The hashes the shipped protocols had before preference_task.allow_ties existed: a
# study frozen with one of them must still match its protocol.
SHIPPED_HASHES = {
    "demo.json": "350025f473a48fe3bbe5acccae0b8b46f89a0bcc8593f80e67b9f6364ee266d7",
    "paper.json": "eae39bdd45d4f7e8a7ff0dda6cf77a30f181d8456167b23ee2c8478b45f12869",
}


def test_the_shipped_protocols_keep_their_hashes():
    for name, expected in SHIPPED_HASHES.items():
        p = load_protocol(PROTOCOLS / name)
        assert p.content_hash() == expected, name
        assert p.allow_ties is False and "allow_ties" not in p.to_dict()["preference_task"]


def test_allow_ties_is_read_written_and_hashed_only_when_on(demo_doc):
    off = Protocol.from_dict(demo_doc)
    demo_doc["preference_task"]["allow_ties"] = False
    assert Protocol.from_dict(demo_doc).content_hash() == off.content_hash()
    demo_doc["preference_task"]["allow_ties"] = True
    on = Protocol.from_dict(demo_doc)
    assert on.allow_ties and present(on.preference_task).allow_ties
    assert on.to_dict()["preference_task"]["allow_ties"] is True
    assert on.content_hash() != off.content_hash()
    assert Protocol.from_dict(on.to_dict()) == on


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_allow_ties_must_be_true_or_false(demo_doc, value):
    demo_doc["preference_task"]["allow_ties"] = value
    with pytest.raises(ProtocolError, match=r"preference_task\.allow_ties: expected true or false"):
        Protocol.from_dict(demo_doc)


@pytest.mark.parametrize("n", [2, 3, 5, 6])
def test_the_ranking_width_is_the_number_of_variants(demo_doc, n):
    demo_doc["variants"] = [f"v{i}" for i in range(n)]
    demo_doc["analysis"].pop("comparisons", None)
    p = Protocol.from_dict(demo_doc)
    assert p.n_ranked == n


def test_seven_ranked_variants_are_refused(demo_doc):
    demo_doc["variants"] = [f"v{i}" for i in range(7)]
    demo_doc["analysis"].pop("comparisons", None)
    with pytest.raises(ProtocolError, match="at most 6 variants"):
        Protocol.from_dict(demo_doc)


def test_a_study_over_the_size_limits_is_refused_before_anything_is_built(demo_doc, monkeypatch):
    """The limits count what study_items builds and plan_assignments plans, exactly: a study
    one image (one showing) over is refused with the number, one at the limit is not."""
    from evalstudy.design import plan_assignments
    from evalstudy.protocol import parse

    demo_doc["analysis"]["judge_images_per_cell"] = 2
    p = Protocol.from_dict(demo_doc)
    items = study_items(p, PROTOCOLS)
    cells = len({(i.object, i.true_count, i.colour) for i in items if i.task == "count" and not i.is_gold})
    images = (sum(i.task == "count" for i in items) + len(p.variants) * sum(i.task == "rank" for i in items)
              + 2 * cells * len(p.variants))
    plans = plan_assignments([i.item_id for i in items if i.task == "count" and not i.is_gold],
                             [i.item_id for i in items if i.task == "rank"], p.evaluators.n, p.evaluators.overlap,
                             seed=3, n_variants=len(p.variants), gold_item_ids=[i.item_id for i in items if i.is_gold],
                             n_repeats=p.quality_control.repeats)
    showings = sum(len(plan.items) for plan in plans)
    monkeypatch.setattr(parse, "MAX_PLANNED_IMAGES", images)
    monkeypatch.setattr(parse, "MAX_PLANNED_SHOWINGS", showings)
    assert Protocol.from_dict(demo_doc) == p
    monkeypatch.setattr(parse, "MAX_PLANNED_IMAGES", images - 1)
    with pytest.raises(ProtocolError, match=f"plans {images:,} images") as refused:
        Protocol.from_dict(demo_doc)
    assert refused.value.code == "too_large"
    monkeypatch.setattr(parse, "MAX_PLANNED_IMAGES", images)
    monkeypatch.setattr(parse, "MAX_PLANNED_SHOWINGS", showings - 1)
    with pytest.raises(ProtocolError, match=f"^evaluators: the study plans {showings:,} showings"):
        Protocol.from_dict(demo_doc)


def test_a_tiny_protocol_cannot_ask_for_millions_of_images_or_evaluators(demo_doc):
    demo_doc["count_task"]["images_per_prompt"] = 10**6
    with pytest.raises(ProtocolError, match="a study holds at most 100,000"):
        Protocol.from_dict(demo_doc)
    demo_doc["count_task"]["images_per_prompt"] = 4
    demo_doc["evaluators"]["n"] = 10**6
    with pytest.raises(ProtocolError, match="evaluators.n: must be <= 100000"):
        Protocol.from_dict(demo_doc)
