"""Releasing a participant's place: the one write that frees a place before its timeout.

A place is released when its session is over and the participant must be able to start
again: by a researcher (the participants page) or an admin (the Django admin), for a
participant who returned their submission on the panel and started a new one; or by the
join path itself, when Prolific's API says that the session holding a participant's place
is not a live submission of theirs (``webapp.studies.prolific``).

Nothing is deleted: the released evaluator keeps its entries and every answer given, as any
evaluator whose place timed out does; its slot goes to the next participant who consents
(who gets the slot's whole plan, as after a timeout); its browser is signed out; and its
panel id may join again, as a new evaluator with a new place (the unique constraint on
(study, panel id) leaves released rows out).
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from . import sqlreads
from .models import Evaluator, Study, new_token


class PlaceError(Exception):
    """A place that cannot be released; the message is for the researcher and names no path."""


@transaction.atomic
def evaluator_release(*, evaluator: Evaluator, session_id: str | None = None) -> Evaluator:
    """Release ``evaluator``'s place (see the module's docstring) and return it, re-read.

    ``session_id``: release only while the place is still held by this panel session (the
    join path passes the session it asked Prolific about, so that a place a concurrent
    request has meanwhile given to another session is left alone). Raises PlaceError, and
    writes nothing, for a place already released, a participant who has finished (they
    are not stuck: they get their code again) or a simulated evaluator (no place to free).
    """
    # The study's row first, then the evaluator's, as every writer of places locks them
    # (``joining.evaluator_consent``): a consent running now sees the slot held or freed, never half.
    if sqlreads.row(Study, pk=evaluator.study_id, for_update=True) is None:
        raise PlaceError("This study no longer exists.")
    current = sqlreads.row(Evaluator, pk=evaluator.pk, for_update=True)
    if current is None:
        raise PlaceError("This participant no longer exists.")
    if current.released_at is not None:
        raise PlaceError(f"The place of {current.pseudonym} was released already.")
    if session_id is not None and current.external_session_id != session_id:
        raise PlaceError(f"The place of {current.pseudonym} changed session meanwhile.")
    if current.finished_at is not None:
        raise PlaceError(f"{current.pseudonym} has finished the study: there is no place to release.")
    if current.is_simulated:
        raise PlaceError(f"{current.pseudonym} is simulated and holds no place.")
    now = timezone.now()
    current.released_at = now
    # The slot goes to the next consent (only evaluators not abandoned hold one); a place
    # that had timed out already keeps the time it did.
    current.abandoned_at = current.abandoned_at or now
    # The browser that held it is signed out: its next page says the place was released.
    current.browser = new_token()
    current.save(update_fields=["released_at", "abandoned_at", "browser"])
    return current
