"""/run/<slug>/ says when the invite links' origin (FUSION_BASE_URL) is not where the page was
reached; demo --addrport names the port."""
from __future__ import annotations

import argparse

import pytest
from django.test import Client

from tests.factories import UserFactory, build_open_study
from webapp.generation.management.commands.demo import _addrport

pytestmark = pytest.mark.django_db


def _run_page(settings, base_url: str, host: str) -> str:
    settings.FUSION_BASE_URL = base_url
    study = build_open_study(n_slots=1)
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    return client.get(f"/run/{study.slug}/", HTTP_HOST=host).content.decode()


def test_a_different_port_is_pointed_out(settings):
    page = _run_page(settings, "http://127.0.0.1:8000", "127.0.0.1:8600")
    assert 'id="origin-note"' in page
    assert "<code>http://127.0.0.1:8600</code>" in page and "<code>http://127.0.0.1:8000</code>" in page


def test_no_note_when_they_agree(settings):
    page = _run_page(settings, "http://127.0.0.1:8600", "127.0.0.1:8600")
    assert 'id="origin-note"' not in page
    assert "http://127.0.0.1:8600/join/" in page


@pytest.mark.parametrize("given, meant", [("8600", "127.0.0.1:8600"), ("127.0.0.1:8601", "127.0.0.1:8601"),
                                          ("0.0.0.0:8602", "0.0.0.0:8602")])
def test_demo_addrport_takes_a_port_or_host_and_port(given, meant):
    assert _addrport(given) == meant


@pytest.mark.parametrize("bad", ["", "localhost", "127.0.0.1:", ":8600", "86o0", "-8600"])
def test_demo_addrport_refuses_anything_else(bad):
    with pytest.raises(argparse.ArgumentTypeError):
        _addrport(bad)
