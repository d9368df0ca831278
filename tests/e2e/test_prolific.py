"""A Prolific round trip in Chromium: ids from the link (or typed), consent from the protocol,
the practice item, the tasks, and the way back to Prolific with the right code."""
import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import next_task, settled
from tests.factories import build_open_study
from webapp.studies.models import Evaluator

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"
ST, SE = "57" * 12, "5e" * 12  # Prolific's STUDY_ID and SESSION_ID: 24 hexadecimal characters
PROLIFIC = "https://app.prolific.com/"
PID = "5f3e2d1c0b9a887766554433"


def prolific_protocol(**recruitment) -> dict:
    doc = json.loads(DEMO.read_text())
    doc["recruitment"] = {**doc["recruitment"], "ask_participant_id": True, **recruitment}
    return doc


@pytest.fixture
def study(transactional_db):
    return build_open_study(n_slots=2, protocol=prolific_protocol(), completion_code="PROLIFIC-OK")


@pytest.fixture
def prolific(page):
    """Prolific's pages, answered in the browser (the test machine has no internet)."""
    page.context.route(f"{PROLIFIC}**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<title>Prolific</title><h1>Back on Prolific</h1>"))
    return page


def _all_tasks_by_keyboard(page):
    while True:
        page.wait_for_selector("#answer-form, #rank-form, #completion-code")
        settled(page)
        if page.query_selector("#completion-code"):
            return
        if page.query_selector("#answer-form"):
            expect(page.locator("#answer")).to_be_focused()
            page.keyboard.type("2")
        else:
            for key in "1234":
                page.keyboard.press(key)
        with next_task(page):
            page.keyboard.press("Enter")


def test_a_prolific_participant_practises_finishes_and_lands_on_the_completion_url(prolific, live_server, study):
    page = prolific
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID={PID}&STUDY_ID={ST}&SESSION_ID={SE}")
    # Consent from the protocol: what, how many tasks, how long, pay, data, contact, ethics.
    page.wait_for_selector("text=Before you start")
    consent = study.protocol["consent"]
    body = page.inner_text("main")
    for key in ("title", "purpose", "pay", "data_use", "retention", "contact", "ethics_ref"):
        assert consent[key] in body, key
    assert study.protocol["description"] not in body  # the researcher's own notes stay out
    shown = page.inner_text("#n-tasks")
    assert "minute" in page.inner_text("#duration")
    page.click("text=I agree, continue")
    # The number announced before consenting is that of the tasks the slot then holds.
    assert shown.startswith(f"{Evaluator.objects.get(study=study).entries.count()} tasks")
    # Instructions with the ranking example; then the practice item.
    page.wait_for_selector("#rank-example")
    assert page.locator("#rank-example img").count() == 4
    page.click("#start")
    page.wait_for_selector("text=Practice")
    page.fill("#answer", "5")  # the practice picture shows 3 circles
    page.click("#submit")
    assert "Not quite" in page.inner_text("#feedback") and "3 circles" in page.inner_text("#feedback")
    expect(page.locator("#start")).to_be_focused()  # autofocus landed
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _all_tasks_by_keyboard(page)
    assert page.inner_text("#completion-code") == "PROLIFIC-OK"
    page.click("#return-link")
    page.wait_for_url(f"{PROLIFIC}submissions/complete?cc=PROLIFIC-OK")
    assert page.inner_text("h1") == "Back on Prolific"

    ev = Evaluator.objects.get(study=study)
    assert (ev.external_id, ev.external_study_id, ev.external_session_id) == (PID, ST, SE)
    assert ev.finished_at is not None


def test_declining_lands_on_the_declined_url_and_takes_no_place(prolific, live_server, study):
    page = prolific
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID={PID}&STUDY_ID={ST}&SESSION_ID={SE}")
    page.click("#decline")
    declined = study.protocol["recruitment"]["declined"]
    page.wait_for_url(declined["url"].replace("{code}", declined["code"]))
    ev = Evaluator.objects.get(study=study)
    assert ev.declined_at is not None and ev.consented_at is None and ev.slot_id is None


def test_without_a_pid_in_the_link_the_participant_types_it(prolific, live_server, study):
    page = prolific
    page.goto(f"{live_server.url}/join/{study.invite_token}/?STUDY_ID={ST}&SESSION_ID={SE}")
    page.wait_for_selector("#id_typed_id")
    assert not Evaluator.objects.filter(study=study).exists()
    page.fill("#id_typed_id", "not an id")
    page.click("#typed-id-submit")
    assert "24" in page.inner_text("#typed-id-error")
    assert not Evaluator.objects.filter(study=study).exists()
    page.fill("#id_typed_id", PID.upper())
    page.click("#typed-id-submit")
    page.wait_for_selector("text=Before you start")
    ev = Evaluator.objects.get(study=study)
    # Typed in capitals, kept as Prolific writes ids (lower case: one id in any case is one participant).
    assert (ev.external_id, ev.external_study_id, ev.external_session_id) == (PID, ST, SE)


def test_the_researcher_downloads_the_approval_csv_with_the_participant(prolific, live_server, study):
    import csv
    import io

    from tests.factories import UserFactory

    page = prolific
    page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID={PID}&STUDY_ID={ST}&SESSION_ID={SE}")
    page.click("text=I agree, continue")
    page.click("#start")
    page.click("#cant-tell")
    page.click("#start")
    _all_tasks_by_keyboard(page)

    researcher = UserFactory(username="alice")
    study.researchers.add(researcher)
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/research/login/?next=/run/{study.slug}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.click("#participants-link")
    with page.expect_download() as download:
        page.click("#participants-csv")
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["participant_id"], r["status"], r["study_id"], r["session_id"]) for r in rows] == [
        (PID, "finished", ST, SE)]
    assert rows[0]["suggestion"] in ("approve", "review", "reject")
