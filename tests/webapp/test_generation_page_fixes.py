"""The generation page after saving an assignment and while a batch runs; the favicon."""
from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tests.factories import UserFactory
from tests.narrow import present
from tests.services.helpers import DEMO_PROTOCOL, NEUTRAL_VARIANTS, make_tiny_checkpoint, small_protocol
from webapp.generation import services
from webapp.studies import lifecycle as study_lifecycle

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return study_lifecycle.study_create(protocol=small_protocol(variants=NEUTRAL_VARIANTS), slug="gen",
                                       base_dir=str(DEMO_PROTOCOL.parent))


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    return client


def test_the_selects_show_the_saved_assignment_and_no_browser_restores_old_choices(study, staff, tmp_path):
    checkpoint = services.checkpoint_register(name="tiny", path=make_tiny_checkpoint(tmp_path / "tiny"))
    variants = list(study.variants.order_by("index"))
    r = staff.post(f"/generation/study/{study.slug}/checkpoints/", {f"variant_{v.pk}": checkpoint.pk for v in variants})
    assert r.status_code == 302
    page = staff.get(r["Location"]).content.decode()
    form = page[page.index('action="/generation/study/gen/checkpoints/"') - 200:page.index("Register a checkpoint")]
    assert 'autocomplete="off"' in form
    for v in variants:
        select = present(re.search(rf'<select name="variant_{v.pk}"[^>]*>(.*?)</select>', form, re.S)).group(1)
        assert re.search(rf'<option value="{checkpoint.pk}" selected>', select)
    # each label sits apart from its input, in a field of its own
    assert form.count('<div class="field">') == len(variants)


def test_the_heading_says_a_batch_is_running(study, staff, tmp_path):
    checkpoint = services.checkpoint_register(name="tiny", path=make_tiny_checkpoint(tmp_path / "tiny"))
    for v in study.variants.all():
        services.variant_assign_checkpoint(variant=v, checkpoint=checkpoint)
    h1 = present(re.search(r"<h1>(.*?)</h1>", staff.get("/generation/study/gen/").content.decode(), re.S)).group(1)
    assert "Draft)" in h1 and "generating" not in h1
    batch = services.batch_launch(study=study, steps=2)
    h1 = present(re.search(r"<h1>(.*?)</h1>", staff.get("/generation/study/gen/").content.decode(), re.S)).group(1)
    assert f"Draft: generating images, batch #{batch.pk} queued" in h1


def test_every_page_names_a_favicon_and_favicon_ico_leads_to_it(client):
    page = client.get("/research/login/").content.decode()
    icon = present(re.search(r'<link rel="icon" href="([^"]+)"', page)).group(1)
    assert icon == "/static/studies/favicon.svg" and finders.find("studies/favicon.svg")
    r = client.get("/favicon.ico")
    assert r.status_code == 301 and r["Location"] == icon
