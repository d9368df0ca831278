"""Prolific's API, asked whether the session in an invite link is the participant's own.

Anyone who knows a participant's PROLIFIC_PID (ids are not secrets) could open the study
with it and a made-up SESSION_ID; the server alone cannot tell Prolific's session from a
made-up one, but Prolific can: the SESSION_ID it puts in the study link is the id of the
participant's submission. With ``FUSION_PROLIFIC_API_TOKEN`` set, a Prolific study's join
path (``joining.evaluator_join``, given a ``SessionCheck``) fetches that submission and takes
or resumes a place only for a live submission of this participant in this study.

Built against Prolific's API reference (read 2026-12):
- "Retrieve a submission", https://docs.prolific.com/api-reference/submissions/get-submission:
  ``GET /api/v1/submissions/{id}/`` with the header ``Authorization: Token <token>``; the id
  is "the ID we pass to the survey platform using %SESSION_ID%"; the answer holds ``id``,
  ``study_id``, ``participant``, ``status``, ``started_at``, ...
- "Submission object", https://docs.prolific.com/api-reference/submissions/submission-object:
  the statuses (RESERVED, ACTIVE, TIMED-OUT, AWAITING REVIEW, APPROVED, RETURNED, REJECTED,
  SCREENED OUT; the endpoint's schema adds PARTIALLY APPROVED and UNKNOWN).
The reference documents no error bodies: an unknown id is taken to be a 404, as REST APIs
answer; any other answer but a 200 means the API could not say (a refused token, 401 or
403, included), and nothing is decided on it.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

import requests
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

from evalstudy.protocol import Recruitment

from .joining import PanelUnreachable, SessionNotConfirmed
from .recruitment import PanelIds

logger = logging.getLogger(__name__)

# The participant is taking part: RESERVED (Prolific holds their place, about 10 minutes
# before they start) and ACTIVE (started). Only these take or resume a place.
TAKING_PART = frozenset({"RESERVED", "ACTIVE"})
# Over, and not the participant's to continue: a place held by such a session may pass to a
# live submission of the same participant.
ENDED = frozenset({"RETURNED", "TIMED-OUT", "REJECTED", "SCREENED OUT"})
# Completed on Prolific (AWAITING REVIEW, APPROVED, PARTIALLY APPROVED), and UNKNOWN or any
# status added later, are neither: such a session keeps a place it holds and takes no new one.

# A submission's JSON is a few hundred bytes; an answer far larger is not one.
MAX_BODY_BYTES = 64 * 1024
SESSION_KEY = "fusion_prolific_confirmed"  # session: {SESSION_ID: [participant, study]}

NOT_YOURS_MESSAGE = ("Prolific does not list this session as yours in this study. Open the study again from "
                     "Prolific itself, from your own submission's link.")
NO_SESSION_MESSAGE = ("This link carries no Prolific session ID, so your place cannot be confirmed. Open the "
                      "study again from Prolific itself.")
ENDED_MESSAGES = {
    "RETURNED": "You returned this submission on Prolific, so it cannot be continued here. If you started the "
                "study again on Prolific, open it from that new submission.",
    "TIMED-OUT": "This submission timed out on Prolific, so it cannot be continued here. If Prolific lets you "
                 "start the study again, open it from that new submission.",
    "REJECTED": "This submission was rejected on Prolific, so it cannot be continued here.",
    "SCREENED OUT": "This submission was screened out on Prolific, so it cannot be continued here.",
}
NOT_TAKING_PART_MESSAGE = ("Prolific does not list this submission as in progress (it may be completed already), "
                           "so it cannot be continued here. Open the study again from Prolific itself.")
UNREACHABLE_MESSAGE = ("We could not confirm your Prolific session just now. Please try again in a minute, with "
                       "the same link.")


@dataclass(frozen=True)
class Submission:
    """The fields of a Prolific submission that the join path reads (ids lower-cased, as
    ``recruitment.canonical_ids`` stores them)."""

    id: str
    study_id: str
    participant: str
    status: str


class ApiError(Exception):
    """The API gave no usable answer; the message is for the operator's log (no token, no body)."""


def check_applies(recruitment: Recruitment | None) -> bool:
    """Whether the join path asks Prolific: a token is set and the study recruits on Prolific."""
    return bool(settings.FUSION_PROLIFIC_API_TOKEN) and recruitment is not None and recruitment.panel == "prolific"


def submission_fetch(session_id: str, *, base_url: str, token: str, timeout: float) -> Submission | None:
    """The submission ``session_id`` (Prolific's SESSION_ID), or None when Prolific knows
    none (404). Raises ApiError when there is no usable answer within about ``timeout``
    seconds in all: no connection, a slow answer, any status but 200 and 404, a body that
    is not a submission. Redirects are not followed (the token goes to ``base_url`` only)."""
    url = f"{base_url.rstrip('/')}/api/v1/submissions/{quote(session_id, safe='')}/"
    deadline = time.monotonic() + timeout
    try:
        with requests.get(url, headers={"Authorization": f"Token {token}", "Accept": "application/json"},
                          timeout=timeout, allow_redirects=False, stream=True) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise ApiError(f"HTTP status {response.status_code}")
            # requests' timeout bounds each wait for bytes, not the whole answer: a server
            # sending a byte at a time would hold the join page, so the body is read against
            # a deadline of its own, a byte at a time (a larger read waits until it is full;
            # the body is a few hundred bytes, read from urllib3's buffer).
            body = bytearray()
            for chunk in response.iter_content(chunk_size=1):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ApiError(f"an answer of more than {MAX_BODY_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise ApiError(f"no whole answer within {timeout:g} s")
    except requests.RequestException as exc:
        raise ApiError(f"no answer ({type(exc).__name__})") from None
    return _submission(bytes(body))


def _submission(body: bytes) -> Submission:
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError("an answer that is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError("an answer that is not a JSON object")
    fields = {name: data.get(name) for name in ("id", "study_id", "status")}
    if not all(isinstance(value, str) and value for value in fields.values()):
        raise ApiError("a submission without id, study_id or status")
    participant = data.get("participant")  # "string or null" in the reference
    return Submission(id=str(fields["id"]).lower(), study_id=str(fields["study_id"]).lower(),
                      participant=participant.lower() if isinstance(participant, str) else "",
                      status=str(fields["status"]).upper())


def visitor_problem(submission: Submission | None, ids: PanelIds) -> str | None:
    """Why ``submission`` (the visitor's session, fetched) takes or resumes no place for the
    participant and study of ``ids``, in words for the participant; None when it may. One
    message for an unknown session and another participant's or study's: a visitor with a
    made-up or borrowed session learns nothing about it."""
    if submission is None or submission.participant != ids.participant or submission.study_id != ids.study:
        return NOT_YOURS_MESSAGE
    if submission.status in TAKING_PART:
        return None
    return ENDED_MESSAGES.get(submission.status, NOT_TAKING_PART_MESSAGE)


def holder_has_ended(submission: Submission | None, participant: str) -> bool:
    """Whether a place held by ``submission``'s session may pass to another session of
    ``participant``: Prolific knows no such submission, it is another participant's, or it
    is over (ENDED). A completed submission, or a status this code does not know, keeps it."""
    return submission is None or submission.participant != participant or submission.status in ENDED


class SessionCheck:
    """``joining.PanelSessionCheck`` for one visitor of a Prolific study's invite link.

    A session it confirms is remembered in the visitor's browser session (``SESSION_KEY``),
    so that one browser asks Prolific about one session once: the task pages never ask (they
    belong to the browser that holds the place), and the join link asks again only from a
    browser that does not hold the place. A holder's session is asked about each time a
    place would pass (rare: a squatter or a returned submission)."""

    def __init__(self, *, ids: PanelIds, session: SessionBase, study_slug: str) -> None:
        self.ids = ids
        self.session = session
        self.study_slug = study_slug

    def confirm(self) -> None:
        session_id = self.ids.session
        if not session_id:
            raise SessionNotConfirmed(NO_SESSION_MESSAGE)
        known = self.session.get(SESSION_KEY, {})
        if known.get(session_id) == [self.ids.participant, self.ids.study]:
            return
        problem = visitor_problem(self._fetch(session_id), self.ids)
        if problem is not None:
            raise SessionNotConfirmed(problem)
        self.session[SESSION_KEY] = {**known, session_id: [self.ids.participant, self.ids.study]}

    def has_ended(self, *, session_id: str) -> bool:
        if not session_id:  # a place taken with no session id is no submission of anyone's
            return True
        return holder_has_ended(self._fetch(session_id), self.ids.participant)

    def _fetch(self, session_id: str) -> Submission | None:
        try:
            return submission_fetch(session_id, base_url=settings.FUSION_PROLIFIC_API_URL,
                                    token=settings.FUSION_PROLIFIC_API_TOKEN,
                                    timeout=settings.FUSION_PROLIFIC_API_TIMEOUT_S)
        except ApiError as exc:
            # For the operator: which study, and what went wrong; never the token or the body.
            logger.warning("Prolific API: could not check a session of study %s: %s", self.study_slug, exc)
            raise PanelUnreachable(UNREACHABLE_MESSAGE) from None
