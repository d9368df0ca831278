"""Researchers given studies.add_study create studies from the web; others are told why not."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.factories import UserFactory
from webapp.studies.models import Study

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _upload(client: Client, slug: str):
    data = SimpleUploadedFile("protocol.json", DEMO.read_bytes(), content_type="application/json")
    return client.post("/run/new/", {"protocol": data, "slug": slug})


def _add_study() -> Permission:
    return Permission.objects.get(content_type__app_label="studies", codename="add_study")


def test_a_researcher_given_the_permission_creates_a_study_from_the_web():
    alice = UserFactory(username="alice")
    alice.user_permissions.add(_add_study())
    client = _client(alice)
    assert 'id="new-study-link"' in client.get("/research/").content.decode()
    assert client.get("/run/new/").status_code == 200
    r = _upload(client, "alices-study")
    assert r.status_code == 302 and r["Location"] == "/run/alices-study/"
    study = Study.objects.get(slug="alices-study")
    assert list(study.researchers.all()) == [alice] and study.status == "draft"
    assert client.get("/run/alices-study/").status_code == 200


def test_the_permission_through_a_group_works_too():
    group = Group.objects.create(name="researchers")
    group.permissions.add(_add_study())
    bob = UserFactory(username="bob")
    bob.groups.add(group)
    assert _upload(_client(bob), "bobs-study").status_code == 302


def test_a_researcher_without_it_sees_no_link_and_a_403_that_speaks_to_researchers():
    carol = UserFactory(username="carol")
    client = _client(carol)
    assert "new-study-link" not in client.get("/research/").content.decode()
    for r in (client.get("/run/new/"), _upload(client, "carols-study")):
        text = r.content.decode()
        assert r.status_code == 403
        assert "Your account (carol) may not do this" in text and "studies.add_study" in text
        assert "invite link" not in text  # the evaluators' wording is for evaluators
    assert not Study.objects.exists()


def test_the_demo_researcher_may_create_studies(tmp_path, settings):
    from webapp.generation.demo import demo_users_ensure
    from webapp.studies.lifecycle import study_create

    settings.VAR_DIR = tmp_path
    study = study_create(protocol=json.loads(DEMO.read_text()), slug="demo", base_dir=str(DEMO.parent))
    logins = demo_users_ensure(study=study)
    researcher = type(study.researchers.get()).objects.get(username=logins["researcher"]["username"])
    assert researcher.has_perm("studies.add_study") and not researcher.is_staff


def test_a_researcher_without_it_cannot_make_a_study_by_copying_theirs_for_a_rehearsal(study):
    # Probe 7: a rehearsal copy is a new study (a draft with every image of the original
    # copied, which its researchers may open), and any researcher of a study could make
    # as many as they liked without the permission /run/new/ asks for.
    carol = UserFactory(username="carol")
    study.researchers.add(carol)
    client = _client(carol)
    n_studies = Study.objects.count()
    assert 'id="rehearsal-copy"' not in client.get(f"/run/{study.slug}/").content.decode()
    r = client.post(f"/run/{study.slug}/rehearsal/", {"slug": "carols-copy"})
    assert r.status_code == 403 and "studies.add_study" in r.content.decode()
    assert Study.objects.count() == n_studies
    carol.user_permissions.add(_add_study())
    client = _client(type(carol).objects.get(pk=carol.pk))  # permissions are cached on the user
    assert 'id="rehearsal-copy"' in client.get(f"/run/{study.slug}/").content.decode()
    assert client.post(f"/run/{study.slug}/rehearsal/", {"slug": "carols-copy"}).status_code == 302
    assert carol in Study.objects.get(slug="carols-copy").researchers.all()
