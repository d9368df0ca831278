"""The Prolific API client (webapp/studies/prolific.py) against a local server that answers
as Prolific's API reference documents: each status, each mismatch, 404, 401, 5xx, slow."""
from __future__ import annotations

import logging
import time

import pytest

from webapp.studies import joining, prolific
from webapp.studies.recruitment import PanelIds

from .fake_prolific import TOKEN, FakeProlific

PID, STUDY, SESSION = "0123456789abcdef01234567", "57" * 12, "5e" * 12
IDS = PanelIds(participant=PID, study=STUDY, session=SESSION)
# Every status of the reference's SubmissionDetail schema.
STATUSES = ("RESERVED", "ACTIVE", "TIMED-OUT", "AWAITING REVIEW", "APPROVED", "PARTIALLY APPROVED", "RETURNED",
            "REJECTED", "SCREENED OUT", "UNKNOWN")


def _fetch(fake: FakeProlific, session_id: str = SESSION, *, token: str = TOKEN, timeout: float = 1.0):
    return prolific.submission_fetch(session_id, base_url=fake.url, token=token, timeout=timeout)


def test_a_submission_is_read_with_the_token_in_the_header(fake_prolific):
    fake_prolific.add(SESSION, participant=PID.upper(), study_id=STUDY.upper(), status="ACTIVE")
    found = _fetch(fake_prolific)
    assert found == prolific.Submission(id=SESSION, study_id=STUDY, participant=PID, status="ACTIVE")
    assert fake_prolific.asked == [SESSION]
    assert fake_prolific.headers[0]["Authorization"] == f"Token {TOKEN}"


def test_an_unknown_submission_is_none(fake_prolific):
    assert _fetch(fake_prolific) is None


def test_a_refused_token_is_an_error_not_an_unknown_session(fake_prolific):
    fake_prolific.add(SESSION, participant=PID, study_id=STUDY)
    with pytest.raises(prolific.ApiError, match="401"):
        _fetch(fake_prolific, token="not-the-token")


def test_a_server_error_is_an_error(fake_prolific):
    fake_prolific.add(SESSION, participant=PID, study_id=STUDY)
    fake_prolific.mode = "error"
    with pytest.raises(prolific.ApiError, match="503"):
        _fetch(fake_prolific)


@pytest.mark.parametrize("mode", ["slow", "trickle"])
def test_an_answer_slower_than_the_timeout_is_an_error_in_about_the_timeout(fake_prolific, mode):
    """A server that answers late, or sends its answer a byte at a time (each wait shorter
    than the timeout), holds the join page about the timeout, not until it is done."""
    fake_prolific.add(SESSION, participant=PID, study_id=STUDY)
    fake_prolific.mode = mode
    began = time.monotonic()
    with pytest.raises(prolific.ApiError):
        _fetch(fake_prolific, timeout=0.5)
    assert time.monotonic() - began < 1.5


def test_a_redirect_is_not_followed(fake_prolific):
    """The token goes to the configured API only: a redirect elsewhere is an error."""
    fake_prolific.mode = "redirect"
    with pytest.raises(prolific.ApiError, match="302"):
        _fetch(fake_prolific)
    assert len(fake_prolific.asked) == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"id": "x", "status": "ACTIVE"}',
                                  b'{"id": "x", "study_id": 5, "status": "ACTIVE"}'])
def test_a_body_that_is_not_a_submission_is_an_error(body):
    with pytest.raises(prolific.ApiError):
        prolific._submission(body)


def test_a_null_participant_is_nobody():
    """The reference types ``participant`` "string or null"."""
    found = prolific._submission(b'{"id": "A", "study_id": "B", "status": "ACTIVE", "participant": null}')
    assert found.participant == "" and prolific.visitor_problem(found, IDS) == prolific.NOT_YOURS_MESSAGE


@pytest.mark.parametrize("status", STATUSES)
def test_only_a_submission_in_progress_takes_or_resumes_a_place(status):
    problem = prolific.visitor_problem(prolific.Submission(SESSION, STUDY, PID, status), IDS)
    if status in ("RESERVED", "ACTIVE"):
        assert problem is None
    else:
        assert problem is not None and problem != prolific.NOT_YOURS_MESSAGE
    if status == "RETURNED":
        assert problem is not None and "returned this submission" in problem


@pytest.mark.parametrize("submission", [
    None,
    prolific.Submission(SESSION, STUDY, "f" * 24, "ACTIVE"),  # another participant's
    prolific.Submission(SESSION, "6" * 24, PID, "ACTIVE"),  # another study's
])
def test_an_unknown_or_borrowed_session_gets_one_message(submission):
    assert prolific.visitor_problem(submission, IDS) == prolific.NOT_YOURS_MESSAGE


@pytest.mark.parametrize("status", STATUSES)
def test_a_held_place_passes_only_from_a_session_that_is_over(status):
    ended = prolific.holder_has_ended(prolific.Submission("ab" * 12, STUDY, PID, status), PID)
    assert ended == (status in ("RETURNED", "TIMED-OUT", "REJECTED", "SCREENED OUT"))
    assert prolific.holder_has_ended(prolific.Submission("ab" * 12, STUDY, "f" * 24, status), PID)
    assert prolific.holder_has_ended(None, PID)


def test_an_unreachable_api_is_logged_for_the_operator_without_the_token(fake_prolific, settings, caplog):
    settings.FUSION_PROLIFIC_API_TOKEN = TOKEN + "-revoked"  # the server answers 401
    check = prolific.SessionCheck(ids=IDS, session={}, study_slug="s1")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="webapp.studies.prolific"), pytest.raises(joining.PanelUnreachable):
        check.confirm()
    assert "s1" in caplog.text and "401" in caplog.text
    assert TOKEN not in caplog.text and "Not found" not in caplog.text


def test_a_confirmed_session_is_remembered_in_the_browser_session(fake_prolific):
    fake_prolific.add(SESSION, participant=PID, study_id=STUDY)
    session: dict = {}
    for _ in range(3):
        prolific.SessionCheck(ids=IDS, session=session, study_slug="s1").confirm()  # type: ignore[arg-type]
    assert fake_prolific.asked == [SESSION]
    # Another participant's id with the same session is asked about, and refused.
    other = PanelIds(participant="f" * 24, study=STUDY, session=SESSION)
    with pytest.raises(joining.SessionNotConfirmed):
        prolific.SessionCheck(ids=other, session=session, study_slug="s1").confirm()  # type: ignore[arg-type]
    assert len(fake_prolific.asked) == 2
