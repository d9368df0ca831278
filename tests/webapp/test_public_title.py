"""Participants see the study's public title (the consent section's), never the protocol's
internal name, on the paused/full, take-over and panel-id pages."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.test import Client

from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies import lifecycle

pytestmark = pytest.mark.django_db

INTERNAL = "fusion-demo-v3-internal"
PUBLIC = "Counting shapes and matching captions"


@pytest.fixture
def study():
    # The demo's protocol with a consent title and no panel section (generic participant ids).
    doc = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json").read_text())
    doc = {k: v for k, v in doc.items() if k not in ("recruitment", "practice")}
    return build_open_study(title=INTERNAL, protocol={**doc, "consent": {"title": PUBLIC}})


def _h1(html: str) -> str:
    return present(re.search(r"<h1>(.*?)</h1>", html, re.S)).group(1)


def test_the_paused_page_uses_the_public_title(study):
    lifecycle.study_pause(study=study)
    page = Client().get(f"/join/{study.invite_token}/").content.decode()
    assert _h1(page) == PUBLIC and INTERNAL not in page


def test_the_take_over_page_uses_the_public_title(study):
    pid = {"PROLIFIC_PID": "PID-shared"}
    first = Client()
    assert first.get(f"/join/{study.invite_token}/", pid).status_code == 302
    assert first.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    page = Client().get(f"/join/{study.invite_token}/", pid)
    assert page.status_code == 409
    html = page.content.decode()
    assert _h1(html) == PUBLIC and INTERNAL not in html


def test_the_panel_id_page_uses_the_public_title(study):
    html = render_to_string("studies/participant_id.html",
                            {"study": study, "panel": "Prolific", "carried": [], "form": None})
    assert _h1(html) == PUBLIC and INTERNAL not in html


def test_without_a_consent_title_the_studys_title_is_shown():
    plain = build_open_study(title="Plain title")
    assert plain.public_title == "Plain title"
