"""Joining a Prolific study with the session check on (FUSION_PROLIFIC_API_TOKEN set): the
squatter who knows a participant's id, the participant who returned and started again,
Prolific's API down, and one API call per browser session. The API is a local server that
answers as Prolific's does (tests/webapp/fake_prolific.py)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from tests.factories import build_open_study
from webapp.studies import joining, prolific
from webapp.studies.models import CountResponse, Evaluator, RankResponse

from .conftest import answer_data, current_task, demo_protocol, start
from .fake_prolific import TOKEN

pytestmark = pytest.mark.django_db

PID, STUDY = "0123456789abcdef01234567", "57" * 12
S1, S2 = "5e" * 12, "ab" * 12  # the participant's first and second submissions
LINK = {"PROLIFIC_PID": PID, "STUDY_ID": STUDY}


@pytest.fixture
def panel_study():
    """A study recruited on Prolific (the demo protocol), with one place."""
    return build_open_study(n_slots=1, protocol=demo_protocol())


def _open(client: Client, study, session: str):
    return client.get(f"/join/{study.invite_token}/", {**LINK, "SESSION_ID": session})


def _take_part(client: Client, study, session: str) -> Client:
    """Join with ``session``, consent, start and answer one task."""
    r = _open(client, study, session)
    assert r.status_code == 302, r.content
    assert client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    start(client, study)
    assert client.post(f"/e/{study.slug}/task/", answer_data(current_task(client, study)["task"])).status_code == 302
    return client


def _answers() -> list[tuple[int, int]]:
    rows = list(CountResponse.objects.values_list("evaluator_id", "entry_id"))
    return sorted(rows + list(RankResponse.objects.values_list("evaluator_id", "entry_id")))


def _squat(study, session: str = "0" * 24) -> Client:
    """Someone who knows the participant's id binds their place with a made-up session,
    as anyone could before the check (or while it is off), and answers one task."""
    client = Client()
    ev = joining.evaluator_join(study=study, external_id=PID, external_study_id=STUDY, external_session_id=session)
    session_store = client.session
    session_store["fusion_evaluators"] = {str(study.pk): ev.pk}
    session_store["fusion_browsers"] = {str(ev.pk): ev.browser}
    session_store.save()
    assert client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    start(client, study)
    assert client.post(f"/e/{study.slug}/task/", answer_data(current_task(client, study)["task"])).status_code == 302
    return client


def test_without_a_token_prolific_is_never_asked(panel_study, fake_prolific, settings):
    settings.FUSION_PROLIFIC_API_TOKEN = ""
    assert _open(Client(), panel_study, "0" * 24).status_code == 302  # a made-up session, as before
    assert fake_prolific.asked == [] and Evaluator.objects.count() == 1


def test_a_squatter_with_a_made_up_session_gets_no_place(panel_study, fake_prolific):
    fake_prolific.add(S1, participant=PID, study_id=STUDY)  # the participant's real submission
    r = _open(Client(), panel_study, "0" * 24)
    assert r.status_code == 403 and escape(prolific.NOT_YOURS_MESSAGE) in r.content.decode()
    assert not Evaluator.objects.exists()
    # Nor with the participant's id and another participant's real session.
    fake_prolific.add(S2, participant="f" * 24, study_id=STUDY)
    assert _open(Client(), panel_study, S2).status_code == 403 and not Evaluator.objects.exists()
    # The participant, with their own session, takes the place.
    _take_part(Client(), panel_study, S1)
    assert Evaluator.objects.get().external_session_id == S1


@pytest.mark.parametrize("squatter_silent", [False, True])
def test_the_participant_after_a_squatter_gets_the_place(panel_study, fake_prolific, squatter_silent):
    """A place bound to a session Prolific does not know passes to the participant's
    confirmed session, whether the squatter's browser is active right now or silent; the
    squatter's answers are kept with the released place, and their browser is signed out."""
    squatter = _squat(panel_study)
    held = Evaluator.objects.get()
    if squatter_silent:
        Evaluator.objects.filter(pk=held.pk).update(last_seen_at=timezone.now() - timedelta(days=1))
    answers = _answers()
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    participant = _take_part(Client(), panel_study, S1)
    assert fake_prolific.asked == [S1, "0" * 24]  # the visitor's session first, then the holder's
    held.refresh_from_db()
    assert held.released_at is not None and held.abandoned_at is not None
    mine = Evaluator.objects.get(released_at__isnull=True)
    assert (mine.external_id, mine.external_session_id, mine.slot_id) == (PID, S1, held.slot_id)
    assert set(answers) < set(_answers())  # the squatter's answer kept, the participant's added
    r = squatter.get(f"/e/{panel_study.slug}/task/")
    assert r.status_code == 403 and b"was released" in r.content
    assert current_task(participant, panel_study)["progress"]["answered"] == 1


@pytest.mark.parametrize("old_status", ["RETURNED", "TIMED-OUT"])
def test_a_participant_who_returned_and_started_again_gets_a_place(panel_study, fake_prolific, old_status):
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    first = _take_part(Client(), panel_study, S1)
    answers = _answers()
    fake_prolific.submissions[S1]["status"] = old_status  # returned on Prolific; a new submission
    fake_prolific.add(S2, participant=PID, study_id=STUDY)
    second = _take_part(Client(), panel_study, S2)
    old = Evaluator.objects.get(external_session_id=S1)
    new = Evaluator.objects.get(external_session_id=S2)
    assert old.released_at is not None and new.released_at is None and new.external_id == PID
    assert set(answers) < set(_answers()) and current_task(second, panel_study)["progress"]["answered"] == 1
    assert first.get(f"/e/{panel_study.slug}/task/").status_code == 403
    # The returned session's link no longer opens anything.
    r = _open(Client(), panel_study, S1)
    assert r.status_code == 403 and (b"You returned" in r.content or b"timed out" in r.content)


def test_a_participant_who_started_again_in_the_same_browser_starts_afresh(panel_study, fake_prolific):
    """The browser holds the returned submission's place: the new submission's link is asked
    about, and joins afresh, rather than continuing the old place under the new submission."""
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    browser = _take_part(Client(), panel_study, S1)
    assert _open(browser, panel_study, S1).status_code == 302  # its own link: the place goes on
    fake_prolific.submissions[S1]["status"] = "RETURNED"
    fake_prolific.add(S2, participant=PID, study_id=STUDY)
    assert _open(browser, panel_study, S2).status_code == 302
    assert Evaluator.objects.get(external_session_id=S1).released_at is not None
    assert Evaluator.objects.get(released_at__isnull=True).external_session_id == S2
    assert browser.post(f"/e/{panel_study.slug}/consent/", {"agree": "yes"}).status_code == 302
    start(browser, panel_study)
    assert current_task(browser, panel_study)["progress"]["answered"] == 0
    assert fake_prolific.asked == [S1, S2, S1]


@pytest.mark.parametrize("old_status", ["ACTIVE", "AWAITING REVIEW", "UNKNOWN"])
def test_a_place_whose_session_is_still_the_participants_stays_with_it(panel_study, fake_prolific, old_status):
    """Two live submissions of one participant (a study that allows several): the place
    stays with the session that took it, as without the check."""
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    _take_part(Client(), panel_study, S1)
    before = list(Evaluator.objects.values())
    fake_prolific.submissions[S1]["status"] = old_status
    fake_prolific.add(S2, participant=PID, study_id=STUDY)
    r = _open(Client(), panel_study, S2)
    assert r.status_code == 403 and b"another session" in r.content
    assert list(Evaluator.objects.values()) == before


def test_a_returned_submission_is_refused_with_a_message(panel_study, fake_prolific):
    fake_prolific.add(S1, participant=PID, study_id=STUDY, status="RETURNED")
    r = _open(Client(), panel_study, S1)
    assert r.status_code == 403 and escape(prolific.ENDED_MESSAGES["RETURNED"]) in r.content.decode()
    assert not Evaluator.objects.exists()


@pytest.mark.parametrize("mode", ["error", "slow"])
def test_prolific_down_gives_no_new_place_and_writes_nothing(panel_study, fake_prolific, mode, caplog):
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    fake_prolific.mode = mode
    with caplog.at_level(logging.WARNING, logger="webapp.studies.prolific"):
        r = _open(Client(), panel_study, S1)
    page = r.content.decode()
    assert r.status_code == 503 and "try again in a minute" in page
    assert TOKEN not in page and fake_prolific.url not in page and "/work" not in page
    assert not Evaluator.objects.exists()
    assert "could not check a session" in caplog.text and TOKEN not in caplog.text


def test_prolific_down_passes_no_place(panel_study, fake_prolific):
    """Nor does a place held by a session Prolific cannot be asked about change hands."""
    _squat(panel_study)
    before = list(Evaluator.objects.values())
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    fake_prolific.mode = "error"
    assert _open(Client(), panel_study, S1).status_code == 503
    assert list(Evaluator.objects.values()) == before


def test_a_held_place_keeps_working_while_prolific_is_down(panel_study, fake_prolific):
    """The browser that holds the place never asks; the participant's own link in another
    browser resumes it (asked "continue here?" while the first is active), as it did."""
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    first = _take_part(Client(), panel_study, S1)
    fake_prolific.mode = "error"
    assert first.post(f"/e/{panel_study.slug}/task/",
                      answer_data(current_task(first, panel_study)["task"])).status_code == 302
    r = _open(Client(), panel_study, S1)
    assert r.status_code == 409 and b"Continue here" in r.content
    Evaluator.objects.update(last_seen_at=timezone.now() - timedelta(days=1))
    second = Client()
    assert _open(second, panel_study, S1).status_code == 302
    assert current_task(second, panel_study)["progress"]["answered"] == 2


def test_one_call_to_prolific_for_a_whole_session(panel_study, fake_prolific):
    fake_prolific.add(S1, participant=PID, study_id=STUDY)
    client = _take_part(Client(), panel_study, S1)
    for _ in range(3):
        assert client.post(f"/e/{panel_study.slug}/task/",
                           answer_data(current_task(client, panel_study)["task"])).status_code == 302
        assert client.get(f"/e/{panel_study.slug}/task/").status_code == 200
    assert _open(client, panel_study, S1).status_code == 302  # the link again, in the same browser
    assert fake_prolific.asked == [S1]
    # Another browser (the participant's phone) asks once, however often it opens the link.
    phone = Client()
    for _ in range(3):
        assert _open(phone, panel_study, S1).status_code == 409  # "continue here?"
    assert fake_prolific.asked == [S1, S1]
