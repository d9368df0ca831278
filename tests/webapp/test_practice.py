"""webapp/studies/practice.py: the practice pictures are drawn once per open study, not once
per participant (a drawing costs tens of milliseconds, and a launch burst loads each one
per arrival)."""
import pytest
from django.test import Client

from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies import practice
from webapp.studies.models import Study

from .conftest import PID, demo_protocol

pytestmark = pytest.mark.django_db


def _consented(study, pid: str) -> Client:
    client = Client()
    assert client.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": pid}).status_code == 302
    assert client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    return client


def test_each_practice_picture_is_drawn_once_for_every_participant_of_an_open_study(monkeypatch):
    study = build_open_study(n_slots=3, protocol=demo_protocol())
    names = list(practice.practice_scenes(present(study.parsed_protocol).practice))
    assert practice.COUNT_NAME in names and len(names) > 1
    drawn = []
    draw = practice.practice_png

    def counted(**kwargs):
        drawn.append(kwargs["seed"])
        return draw(**kwargs)

    monkeypatch.setattr(practice, "practice_png", counted)
    alice, bob = _consented(study, PID), _consented(study, PID[:-1] + "0")
    bodies: dict[str, bytes] = {}
    for client in (alice, bob, alice):
        for name in names:
            r = client.get(f"/e/{study.slug}/practice/{name}.png")
            assert r.status_code == 200 and r["Content-Type"] == "image/png"
            assert bodies.setdefault(name, r.content) == r.content  # the same picture for everyone
    assert len(drawn) == len(names)
    assert alice.get(f"/e/{study.slug}/practice/nothing.png").status_code == 404
    # A draft's images may still change: its pictures are drawn on every request.
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    for _ in range(2):
        assert alice.get(f"/e/{study.slug}/practice/{names[0]}.png").status_code == 200
    assert len(drawn) == len(names) + 2
