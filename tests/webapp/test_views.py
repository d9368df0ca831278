"""The site-wide pages of webapp/views.py: the front page at /."""
from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_front_page_points_evaluators_researchers_and_admins_onward(client):
    r = client.get("/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "invite link" in page
    assert 'href="/research/"' in page and 'href="/admin/"' in page and 'href="/generation/"' in page


def test_the_front_page_names_no_study_and_no_invite_link(study):
    """The same page for an evaluator and a researcher of the study: no slug, title or token."""
    researcher = UserFactory(username="res")
    study.researchers.add(researcher)
    as_researcher = Client()
    as_researcher.force_login(researcher)
    pages = [Client().get("/").content.decode(), as_researcher.get("/").content.decode()]
    assert pages[0] == pages[1]
    for secret in (study.slug, study.title, study.invite_token, "/join/", "/e/", "/run/"):
        assert secret not in pages[0], secret


def test_the_front_page_only_reads(client):
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405
