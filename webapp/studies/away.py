"""Time away from a task: the task page's reports that its participant went away and came back.

Time on task runs from the task's first showing to the answer (``Entry.shown_at``, measured
by the server). A participant who leaves a task open (lunch, another tab, the laptop closed,
the link reopened the next day) would have all of that counted as work. The task script
(static/studies/tasks.js) reports "away" when the page is hidden or has had no input for
FUSION_IDLE_AFTER_SECONDS, and "back" when it is visible again or the next input comes; the
server stamps both with its own clock (never the browser's) on the entry, and the answer
stores the sum beside its seconds (``CountResponse.away_seconds``). A task page shown again
(a reload, the link reopened) is the participant back as well.

A report is only a hint about a task this browser's evaluator is doing now: one about a task
already answered, not shown, or of a closed study changes nothing and is no error (a beacon
sent as the page unloads may arrive after the answer it followed). Nothing here reads the
item, its images or its variant: the reply and its timing are the same for every model.
"""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .flow import SubmissionError, entry_index_of
from .models import Entry, Evaluator

AWAY = "away"
BACK = "back"
STATES = (AWAY, BACK)


def _closed(entry: Entry, now: datetime) -> float:
    """``entry``'s away seconds with its open interval (if any) closed at ``now``."""
    assert entry.away_since is not None
    return entry.away_seconds + max(0.0, (now - entry.away_since).total_seconds())


@transaction.atomic
def entry_away_report(*, evaluator: Evaluator, token: str, state: str) -> bool:
    """Record that ``evaluator`` went away from (``state`` "away") or came back to ("back")
    the task whose form carries ``token``, at the server's time now; return whether anything
    was written.

    "away" opens an interval unless one is open; "back" closes the open one into the entry's
    away seconds (a "back" with none open writes nothing). Only the evaluator's shown,
    unanswered task of a study that takes answers is written; any other (answered meanwhile,
    not shown, a closed study) is left as it is, and False is returned. Raises SubmissionError
    (and writes nothing) for a state that is neither, a token this site did not issue or that
    expired, or one issued to another evaluator.
    """
    if state not in STATES:
        raise SubmissionError("invalid_state", "The state must be \u201caway\u201d or \u201cback\u201d.", 400)
    index = entry_index_of(evaluator=evaluator, token=token)
    if not evaluator.study.accepts_answers:
        return False
    # The entry's row lock orders the report with an answer to the same task (the answer
    # holds it: ``sqlreads.entry_with_item``) and with an undo, as they order each other.
    entry = Entry.objects.select_for_update(of=("self",)).filter(
        evaluator=evaluator, index=index, shown_at__isnull=False,
        count_response__isnull=True, rank_response__isnull=True,
    ).only("pk", "away_seconds", "away_since").first()
    if entry is None:
        return False
    now = timezone.now()
    if state == AWAY:
        if entry.away_since is not None:
            return False  # away already: the interval runs from the first report
        Entry.objects.filter(pk=entry.pk).update(away_since=now)
        return True
    if entry.away_since is None:
        return False
    Entry.objects.filter(pk=entry.pk).update(away_seconds=_closed(entry, now), away_since=None)
    return True


def entry_away_close(*, entry: Entry) -> Entry:
    """The task page shown again (a reload, the invite link reopened): the participant is
    back, so an open away interval of ``entry`` closes now. Writes only when one is open
    (the caller's ``entry`` says so; it is read again under its row lock): a task page with
    none, nearly every one, opens no transaction."""
    if entry.away_since is None:
        return entry
    with transaction.atomic():
        locked = Entry.objects.select_for_update(of=("self",)).filter(
            pk=entry.pk, away_since__isnull=False, count_response__isnull=True, rank_response__isnull=True,
        ).only("pk", "away_seconds", "away_since").first()
        if locked is not None:
            entry.away_seconds, entry.away_since = _closed(locked, timezone.now()), None
            Entry.objects.filter(pk=entry.pk).update(away_seconds=entry.away_seconds, away_since=None)
    return entry
