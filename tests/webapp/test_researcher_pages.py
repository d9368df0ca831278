"""Researchers run a study from the web: create it from an uploaded protocol, its invite link,
open / pause / close with confirmation, free places, and the participants' approval list."""
import csv
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.test import Client

from tests.factories import UserFactory, build_open_study
from webapp.studies import lifecycle
from webapp.studies.models import Evaluator, Study

from .conftest import current_task, join

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(doc: dict | bytes, name="protocol.json") -> SimpleUploadedFile:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return SimpleUploadedFile(name, data, content_type="application/json")


@pytest.fixture
def admin():
    return UserFactory(username="boss", is_staff=True)


@pytest.fixture
def researcher(study):
    user = UserFactory(username="alice")
    study.researchers.add(user)
    return user


def test_an_admin_creates_a_study_by_upload_and_becomes_its_researcher(admin):
    r = logged_in(admin).post("/run/new/", {"protocol": upload(json.loads(DEMO.read_text())), "slug": "web-study"})
    assert r.status_code == 302 and r["Location"] == "/run/web-study/"
    study = Study.objects.get(slug="web-study")
    assert study.status == "draft" and list(study.researchers.all()) == [admin]
    assert study.items.filter(task="rank").count() == 10  # the captions file was found
    # A draft's run page says how many places the protocol plans.
    n = json.loads(DEMO.read_text())["evaluators"]["n"]
    page = logged_in(admin).get("/run/web-study/").content.decode()
    assert f"the protocol asks for {n})" in page


@pytest.mark.parametrize("change, field", [
    (lambda d: d["count_task"].update(counts=[0, 1]), "count_task.counts[0]"),
    (lambda d: d["recruitment"].update(completion_url="ftp://x"), "recruitment.completion_url"),
    (lambda d: d.pop("evaluators"), "protocol"),
])
def test_a_bad_protocol_is_refused_with_the_field_named_and_nothing_stored(admin, change, field):
    doc = json.loads(DEMO.read_text())
    change(doc)
    r = logged_in(admin).post("/run/new/", {"protocol": upload(doc), "slug": "bad"})
    assert r.status_code == 400
    assert f'<code id="protocol-error-field">{field}</code>' in r.content.decode()
    assert not Study.objects.filter(slug="bad").exists()


def test_not_json_and_a_taken_slug_are_refused(admin, study):
    client = logged_in(admin)
    r = client.post("/run/new/", {"protocol": upload(b"{nope"), "slug": "x"})
    assert r.status_code == 400 and "Not a JSON file" in r.content.decode()
    r = client.post("/run/new/", {"protocol": upload(json.loads(DEMO.read_text())), "slug": study.slug})
    assert r.status_code == 400 and "exists already" in r.content.decode()


@pytest.mark.parametrize("text, says", [
    (b"[" * 200_000, "nested too deeply"),
    (b'{"schema_version": ' + b"9" * 5000 + b"}", "integer string conversion"),
])
def test_json_that_python_cannot_read_is_refused_as_not_json(admin, text, says):
    # Probe 7: both answered 500 (RecursionError, and ValueError past Python's 4300-digit
    # limit on integers): json.loads raises neither as a JSONDecodeError.
    r = logged_in(admin).post("/run/new/", {"protocol": upload(text), "slug": "deep"})
    assert r.status_code == 400
    assert "Not a JSON file" in r.content.decode() and says in r.content.decode()
    assert not Study.objects.filter(slug="deep").exists()


def test_a_user_without_the_right_cannot_create(study):
    r = logged_in(UserFactory()).post("/run/new/", {"protocol": upload(json.loads(DEMO.read_text())), "slug": "z"})
    assert r.status_code == 403 and not Study.objects.filter(slug="z").exists()


def test_the_run_page_shows_the_invite_link_and_free_places(researcher, study):
    join(Client(), study)
    page = logged_in(researcher).get(f"/run/{study.slug}/").content.decode()
    assert f"/join/{study.invite_token}/" in page
    assert '<strong id="free-places">2</strong> of 3 places free' in page


def test_the_prolific_link_carries_prolifics_placeholders():
    study = build_open_study(protocol=json.loads(DEMO.read_text()))
    user = UserFactory()
    study.researchers.add(user)
    page = logged_in(user).get(f"/run/{study.slug}/").content.decode()
    assert "?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}" in page


def test_pause_and_close_need_a_confirmation(researcher, study):
    client = logged_in(researcher)
    r = client.post(f"/run/{study.slug}/status/", {"action": "pause"})
    assert r.status_code == 200 and "Yes, pause the study" in r.content.decode()
    assert Study.objects.get(pk=study.pk).status == "open"
    client.post(f"/run/{study.slug}/status/", {"action": "pause", "confirm": "on"})
    assert Study.objects.get(pk=study.pk).status == "paused"
    client.post(f"/run/{study.slug}/status/", {"action": "close", "confirm": "on"})
    assert Study.objects.get(pk=study.pk).status == "closed"
    r = client.post(f"/run/{study.slug}/status/", {"action": "resume", "confirm": "on"})
    assert r.status_code == 409 and "Only a paused study" in r.content.decode()


def test_the_close_confirmation_warns_of_people_at_work(researcher, study):
    client = logged_in(researcher)
    page = client.post(f"/run/{study.slug}/status/", {"action": "close"}).content.decode()
    assert "Yes, close the study" in page and 'id="close-warning"' not in page  # nobody in yet
    worker = join(Client(), study, PROLIFIC_PID="a" * 24)
    current_task(worker, study)  # consented, at work
    page = client.post(f"/run/{study.slug}/status/", {"action": "close"}).content.decode()
    assert 'id="close-warning"' in page and "1 person is at work" in page
    page = client.post(f"/run/{study.slug}/status/", {"action": "pause"}).content.decode()
    assert 'id="close-warning"' not in page  # pausing lets them finish


def test_opening_a_draft_without_its_images_says_why(admin):
    study = lifecycle.study_create(protocol=json.loads(DEMO.read_text()), slug="d", base_dir=str(DEMO.parent))
    r = logged_in(admin).post("/run/d/status/", {"action": "open", "confirm": "on"})
    assert r.status_code == 409 and "images are still missing" in r.content.decode()
    assert Study.objects.get(pk=study.pk).status == "draft"


def test_other_researchers_and_evaluators_get_a_404(study):
    stranger = UserFactory()
    assert logged_in(stranger).get(f"/run/{study.slug}/").status_code == 404
    assert logged_in(stranger).get(f"/run/{study.slug}/participants.csv").status_code == 404


def test_admins_run_the_study_but_only_its_researchers_see_panel_ids(admin, study):
    assert logged_in(admin).get(f"/run/{study.slug}/").status_code == 200
    assert logged_in(admin).get(f"/run/{study.slug}/participants/").status_code == 404


def _finish(client, study, *, count):
    while (state := current_task(client, study))["done"] is False:
        task = state["task"]
        if task["kind"] == "count":
            data = {"kind": "count", "token": task["token"], "answer": str(count)}
        else:
            data = {"kind": "rank", "token": task["token"], **{f"rank_{i}": str(i + 1) for i in range(4)}}
        client.post(f"/e/{study.slug}/task/", data)


def test_the_approval_csv_lists_ids_statuses_gold_and_suggestions(researcher, study):
    protocol = json.loads(DEMO.read_text())
    # The demo's rules, except time: these answers come back in milliseconds.
    protocol["analysis"]["exclusions"]["min_median_seconds"] = None
    study.protocol = protocol
    study.save()
    good, bad = join(Client(), study, PROLIFIC_PID="a" * 24), join(Client(), study, PROLIFIC_PID="b" * 24)
    _finish(good, study, count=4)  # the gold image shows four circles
    _finish(bad, study, count=1)
    declined = Client()
    declined.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "c" * 24})
    declined.post(f"/e/{study.slug}/consent/", {"agree": "no"})
    r = logged_in(researcher).get(f"/run/{study.slug}/participants.csv")
    assert r["Content-Disposition"].startswith("attachment")
    rows = {row["participant_id"]: row for row in csv.DictReader(io.StringIO(r.content.decode()))}
    assert rows["a" * 24]["suggestion"] == "approve", rows["a" * 24]["exclusion"]
    assert rows["a" * 24]["status"] == "finished"
    assert rows["a" * 24]["gold_accuracy"] == "1.000"
    assert rows["b" * 24]["suggestion"] == "reject" and "gold accuracy" in rows["b" * 24]["exclusion"]
    assert rows["c" * 24]["suggestion"] == "return" and rows["c" * 24]["status"] == "declined"
    page = logged_in(researcher).get(f"/run/{study.slug}/participants/").content.decode()
    assert f'<textarea id="ids-approve" rows="4" readonly>{"a" * 24}</textarea>' in page
    # The shared exports still carry no raw panel id.
    export = logged_in(researcher).get(f"/research/{study.slug}/export/responses.jsonl")
    assert isinstance(export, StreamingHttpResponse)
    assert "a" * 24 not in export.getvalue().decode()
    assert Evaluator.objects.filter(study=study).count() == 3
