"""A batch's progress.json sends exactly the typed document (selectors.BatchProgress) that batch.js reads."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import UserFactory
from tests.narrow import present
from tests.services.helpers import make_tiny_checkpoint, study_on_one_checkpoint
from tests.typed_json import assert_reads_typed, assert_typed
from webapp.generation import selectors, services
from webapp.generation.models import Part

pytestmark = pytest.mark.django_db

BATCH_JS = Path(selectors.__file__).parent / "static" / "generation" / "batch.js"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_progress_json_is_the_typed_document(tiny_checkpoint):
    batch = services.batch_launch(study=study_on_one_checkpoint(tiny_checkpoint), steps=2, part_size=3)
    part = present(Part.objects.filter(batch=batch).order_by("number").first())
    Part.objects.filter(pk=part.pk).update(status=Part.Status.FAILED, error="weights missing on the worker")
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    doc = client.get(f"/generation/batch/{batch.pk}/progress.json").json()
    assert_typed(doc, selectors.BatchProgress, "progress")
    assert len(doc["variants"]) == 4 and len(doc["errors"]) == 1  # every row below is checked
    for row in doc["variants"]:
        assert_typed(row, selectors.VariantProgress, "variants")
    for row in doc["errors"]:
        assert_typed(row, selectors.PartError, "errors")


def test_every_field_batch_js_reads_from_the_document_is_in_the_type():
    """batch.js names the document ``p``, a row of ``p.variants`` ``v`` and one of ``p.errors`` ``e``."""
    script = BATCH_JS.read_text()

    def reads(name: str) -> list[tuple]:
        return [tuple(m.split(".")[1:]) for m in re.findall(rf"\b{name}(?:\.[a-z_]+)+", script)]

    assert len(reads("p")) > 10 and reads("v") and reads("e"), "batch.js reads the document otherwise: update this"
    assert_reads_typed(reads("p"), selectors.BatchProgress)
    assert_reads_typed(reads("v"), selectors.VariantProgress)
    assert_reads_typed(reads("e"), selectors.PartError)
