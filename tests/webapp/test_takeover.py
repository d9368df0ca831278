"""One external worker id, two browsers: never a silent take-over; undo stays in its browser."""

import json
import re
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from tests.factories import build_open_study
from tests.narrow import present
from webapp.studies import joining
from webapp.studies.models import CountResponse, Evaluator, RankResponse

from .conftest import answer_data, current_task, demo_protocol, start

pytestmark = pytest.mark.django_db

PID = {"PROLIFIC_PID": "PID-shared"}


def _join_and_consent(client, study):
    assert client.get(f"/join/{study.invite_token}/", PID).status_code == 302
    assert client.post(f"/e/{study.slug}/consent/", {"agree": "yes"}).status_code == 302
    start(client, study)
    return client


def _answer(client, study):
    assert client.post(f"/e/{study.slug}/task/", answer_data(current_task(client, study)["task"])).status_code == 302


def _answers():
    return sorted(
        [("c", r.entry_id) for r in CountResponse.objects.all()]
        + [("r", r.entry_id) for r in RankResponse.objects.all()]
    )


def _ticket(response) -> str:
    return present(re.search(rb'name="ticket" value="([^"]+)"', response.content)).group(1).decode()


def test_a_second_browser_with_an_active_id_is_asked_and_nothing_changes(study):
    first = _join_and_consent(Client(), study)
    _answer(first, study)
    ev = Evaluator.objects.get()
    before = (ev.browser, _answers())
    r = Client().get(f"/join/{study.invite_token}/", PID)
    assert r.status_code == 409 and b"Continue here" in r.content
    ev.refresh_from_db()
    assert (ev.browser, _answers()) == before and Evaluator.objects.count() == 1
    # The first browser goes on as before.
    _answer(first, study)
    assert len(_answers()) == 2


def test_continue_here_signs_the_first_browser_out(study):
    first = _join_and_consent(Client(), study)
    _answer(first, study)
    second = Client()
    ticket = _ticket(second.get(f"/join/{study.invite_token}/", PID))
    r = second.post(f"/join/{study.invite_token}/continue/", {"ticket": ticket})
    assert r.status_code == 302 and r["Location"].endswith("/task/")
    assert current_task(second, study)["progress"]["answered"] == 1
    r = first.get(f"/e/{study.slug}/state/")
    assert r.status_code == 403 and b"signed out" in r.content
    task = current_task(second, study)["task"]
    r = first.post(f"/e/{study.slug}/task/", {"kind": task["kind"], "token": task["token"], "answer": "1"})
    assert r.status_code == 403 and len(_answers()) == 1
    # The ticket was good for one take-over: the browser it named holds the evaluator no more.
    r = Client().post(f"/join/{study.invite_token}/continue/", {"ticket": ticket})
    assert r.status_code == 400


def test_undo_does_not_remove_an_answer_given_in_another_browser(study):
    first = _join_and_consent(Client(), study)
    _answer(first, study)
    given_first = _answers()
    second = Client()
    second.post(
        f"/join/{study.invite_token}/continue/", {"ticket": _ticket(second.get(f"/join/{study.invite_token}/", PID))}
    )
    r = second.post(f"/e/{study.slug}/undo/", HTTP_ACCEPT="application/json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "other_browser"
    assert _answers() == given_first
    # Its own answers it can undo, and only those.
    _answer(second, study)
    assert len(_answers()) == 2
    assert second.post(f"/e/{study.slug}/undo/", HTTP_ACCEPT="application/json").status_code == 200
    assert _answers() == given_first


def test_a_forged_ticket_takes_nothing_over(study):
    _join_and_consent(Client(), study)
    ev = Evaluator.objects.get()
    r = Client().post(f"/join/{study.invite_token}/continue/", {"ticket": f"{ev.pk}:{ev.browser}"})
    assert r.status_code == 400
    assert Evaluator.objects.get().browser == ev.browser


def test_the_ticket_does_not_carry_the_browser_token_it_names(study):
    """The ticket is signed, not encrypted: whoever gets the question page reads it. The
    holding browser's token is what that browser's session presents, so the ticket names
    it by a keyed tag only."""
    first = Client()
    _join_and_consent(first, study)
    ev = Evaluator.objects.get()
    ticket = _ticket(Client().get(f"/join/{study.invite_token}/", PID))
    readable = signing.b64_decode(ticket.split(":")[0].encode()).decode()  # no key needed
    assert ev.browser not in readable and ev.browser not in ticket
    # nor the evaluator's row id, which would tell how many have joined the site's studies
    assert str(ev.pk) not in json.loads(readable).values() and ev.pk not in json.loads(readable).values()


def test_an_id_silent_for_the_slot_timeout_moves_to_the_new_browser_without_asking(study, settings):
    first = _join_and_consent(Client(), study)
    _answer(first, study)
    Evaluator.objects.update(last_seen_at=timezone.now() - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS + 5))
    second = Client()
    r = second.get(f"/join/{study.invite_token}/", PID)
    assert r.status_code == 302 and r["Location"].endswith("/task/")
    assert current_task(second, study)["progress"]["answered"] == 1
    assert first.get(f"/e/{study.slug}/state/").status_code == 403
    assert Evaluator.objects.count() == 1


# --------------------------------------------------------------------------- the panel's session

@pytest.fixture
def panel_study():
    """A study recruited on Prolific (the demo protocol's recruitment section): the link
    carries PROLIFIC_PID, STUDY_ID and SESSION_ID."""
    return build_open_study(n_slots=1, protocol=demo_protocol())


SESSION = {"PROLIFIC_PID": "0123456789abcdef01234567", "STUDY_ID": "57" * 12, "SESSION_ID": "5e" * 12}


def _silent(evaluator: Evaluator) -> None:
    """The evaluator's browser as if silent for longer than the slot timeout: a take-over
    would no longer ask."""
    Evaluator.objects.filter(pk=evaluator.pk).update(last_seen_at=timezone.now() - timedelta(days=1))


@pytest.mark.parametrize("other", [{"SESSION_ID": "ab" * 12}, {"SESSION_ID": ""}])
def test_the_participants_id_with_another_session_does_not_take_the_place(panel_study, other):
    first = Client()
    assert first.get(f"/join/{panel_study.invite_token}/", SESSION).status_code == 302
    assert first.post(f"/e/{panel_study.slug}/consent/", {"agree": "yes"}).status_code == 302
    start(first, panel_study)
    _answer(first, panel_study)
    ev = Evaluator.objects.get()
    for silent in (False, True):  # neither asked to continue here, nor moved without asking
        if silent:
            _silent(ev)
        before = Evaluator.objects.values().get(pk=ev.pk)
        r = Client().get(f"/join/{panel_study.invite_token}/", {**SESSION, **other})
        assert r.status_code == 403 and b"another session" in r.content and b"ticket" not in r.content
        assert Evaluator.objects.values().get(pk=ev.pk) == before and Evaluator.objects.count() == 1
    # The holder goes on; their own session's link in another browser is asked, as before.
    _answer(first, panel_study)
    assert len(_answers()) == 2
    r = Client().get(f"/join/{panel_study.invite_token}/", SESSION)
    assert r.status_code == 409 and b"Continue here" in r.content


def test_a_finished_place_gives_its_code_to_its_own_session_only(panel_study):
    pid, session = SESSION["PROLIFIC_PID"], SESSION["SESSION_ID"]
    ev = joining.evaluator_join(study=panel_study, external_id=pid, external_session_id=session)
    Evaluator.objects.filter(pk=ev.pk).update(finished_at=timezone.now())
    r = Client().get(f"/join/{panel_study.invite_token}/", {**SESSION, "SESSION_ID": "ab" * 12})
    assert r.status_code == 403 and panel_study.completion_code.encode() not in r.content
    with pytest.raises(joining.AlreadyCompleted):
        joining.evaluator_join(study=panel_study, external_id=pid, external_session_id=session)


def test_join_compares_the_session_as_stored(panel_study):
    """The service's rule: blanks around the session id are dropped, as when it is stored;
    another session id raises and changes nothing."""
    pid, session = SESSION["PROLIFIC_PID"], SESSION["SESSION_ID"]
    ev = joining.evaluator_join(study=panel_study, external_id=pid, external_session_id=f" {session} ")
    _silent(ev)
    with pytest.raises(joining.HeldByAnotherSession):
        joining.evaluator_join(study=panel_study, external_id=pid, external_session_id="ab" * 12)
    assert Evaluator.objects.get().browser == ev.browser
    assert joining.evaluator_join(study=panel_study, external_id=pid, external_session_id=session).pk == ev.pk
    assert Evaluator.objects.get().browser != ev.browser  # silent: moved to the returning session's browser


@pytest.mark.parametrize("case", [str.upper, str.title])
def test_a_prolific_id_in_another_case_is_the_same_participant(panel_study, case):
    """Prolific's ids are hexadecimal: the participant's id in upper case (with their own
    session, in any case) is their place, asked to continue here, not a second place; with
    another session it is refused as the lower-case id is."""
    first = Client()
    assert first.get(f"/join/{panel_study.invite_token}/", SESSION).status_code == 302
    assert first.post(f"/e/{panel_study.slug}/consent/", {"agree": "yes"}).status_code == 302
    shouted = {k: case(v) for k, v in SESSION.items()}
    r = Client().get(f"/join/{panel_study.invite_token}/", shouted)
    assert r.status_code == 409 and b"Continue here" in r.content
    r = Client().get(f"/join/{panel_study.invite_token}/", {**shouted, "SESSION_ID": "AB" * 12})
    assert r.status_code == 403 and b"another session" in r.content
    assert Evaluator.objects.count() == 1
    ev = Evaluator.objects.get()
    assert (ev.external_id, ev.external_session_id) == (SESSION["PROLIFIC_PID"], SESSION["SESSION_ID"])
