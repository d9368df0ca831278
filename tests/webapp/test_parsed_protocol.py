"""Study.parsed_protocol: the one typed reading of a study's stored protocol, parsed once per
process and protocol, read again when the stored document changes."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from evalstudy.protocol import Protocol
from generator.defaults import CFG_SCALE, STEPS
from tests.factories import StudyFactory
from tests.narrow import present
from webapp.generation import selectors
from webapp.studies import models
from webapp.studies.models import Study

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


@pytest.fixture
def demo_doc() -> dict:
    return Protocol.from_dict(json.loads(DEMO.read_text())).to_dict()


@pytest.fixture
def parses(monkeypatch) -> list[dict]:
    """Every document Protocol.from_dict is given, from an empty per-process cache."""
    models._protocol_parsed.cache_clear()
    seen: list[dict] = []
    real = Protocol.from_dict.__func__  # type: ignore[attr-defined]  # the classmethod's function

    def counting(cls, d):
        seen.append(d)
        return real(cls, d)

    monkeypatch.setattr(Protocol, "from_dict", classmethod(counting))
    return seen


def test_a_studys_protocol_is_parsed_once_for_every_reader(demo_doc, parses):
    study = StudyFactory(protocol=demo_doc)
    first = study.parsed_protocol
    assert first is not None and first.sampling.steps == 25
    # The same instance, a fresh instance of the same row, and another study of the same protocol.
    assert study.parsed_protocol is first
    assert Study.objects.get(pk=study.pk).parsed_protocol is first
    assert StudyFactory(protocol=copy.deepcopy(demo_doc)).parsed_protocol is first
    assert len(parses) == 1


def test_an_edited_draft_protocol_is_read_again(demo_doc, parses):
    study = StudyFactory(protocol=demo_doc)
    assert study.status == Study.Status.DRAFT
    assert present(study.parsed_protocol).sampling.steps == 25
    edited = copy.deepcopy(demo_doc)
    edited["sampling"]["steps"] = 7
    Study.objects.filter(pk=study.pk).update(protocol=edited)
    assert present(Study.objects.get(pk=study.pk).parsed_protocol).sampling.steps == 7
    study.refresh_from_db()
    assert present(study.parsed_protocol).sampling.steps == 7
    # Changed in place on the instance, before any save: read again too.
    study.protocol["sampling"]["cfg_scale"] = 2.5
    assert present(study.parsed_protocol).sampling.cfg_scale == 2.5
    assert len(parses) == 3


def test_a_protocol_that_does_not_parse_is_none_and_generation_uses_its_defaults():
    study = StudyFactory(protocol={"consent": {"title": "Not a protocol"}})
    assert study.parsed_protocol is None
    assert study.public_title == study.title
    sampling = selectors.study_sampling(study=study)
    assert (sampling.cfg_scale, sampling.steps, sampling.seed, sampling.size) == (CFG_SCALE, STEPS, 0, None)


def test_generation_reads_the_protocols_sampling(demo_doc):
    doc = copy.deepcopy(demo_doc)
    doc["sampling"].update(cfg_scale=4.5, steps=12, seed=3, size=64)
    sampling = selectors.study_sampling(study=StudyFactory(protocol=doc))
    assert (sampling.cfg_scale, sampling.steps, sampling.seed, sampling.size) == (4.5, 12, 3, 64)
