"""The evaluator's way through the tasks: task forms and their tokens, time on task, answers
and undo. Joining, consent and take-over come before (``joining``); opening, pausing and
closing a study is ``lifecycle``.

Every function here is keyword-only and atomic: it either does all of its work or raises
and leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.core import signing
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from evalstudy.ranks import WRONG_WIDTH, RankError, check_ranks

from . import sqlreads
from .models import CountResponse, Entry, Evaluator, Image, Item, RankResponse
from .selectors import Progress, evaluator_next_and_progress

TOKEN_SALT = "fusion-eval.entry"
TOKEN_MAX_AGE = timedelta(days=14)


class SubmissionError(Exception):
    """A submission that must not be stored; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class EntryTicket:
    """What a signed task form carries: whose entry it is (a keyed tag of the evaluator,
    never a row id) and its place in their sequence. Not when it was shown: time on task
    is measured from ``Entry.shown_at``, which the server keeps."""

    evaluator_tag: str
    index: int


# --------------------------------------------------------------------------- tokens


def _evaluator_tag(evaluator_id: int) -> str:
    """Who a task form belongs to, as only this site can compute it: the form is signed,
    not encrypted, so what it carries is readable by anyone holding it, and a row id there
    would tell how many people have joined the site's studies, and in what order."""
    return salted_hmac(TOKEN_SALT + ".evaluator", str(evaluator_id)).hexdigest()[:16]


def entry_token_make(*, entry: Entry) -> str:
    """A signed (and timestamped: it expires after TOKEN_MAX_AGE) token for the task form of
    ``entry``: its evaluator's tag and its place in their sequence (which the page shows
    anyway); no row id."""
    payload = {"v": _evaluator_tag(entry.evaluator_id), "i": entry.index}
    return signing.dumps(payload, salt=TOKEN_SALT, compress=True)


def entry_token_read(*, token: str) -> EntryTicket:
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise SubmissionError("expired", "This task form has expired; reload the page.", 400) from None
    except signing.BadSignature:
        raise SubmissionError("forged", "This form was not issued by this site.", 400) from None
    try:
        return EntryTicket(str(data["v"]), int(data["i"]))
    except (KeyError, TypeError, ValueError):
        raise SubmissionError("forged", "This form was not issued by this site.", 400) from None


def entry_index_of(*, evaluator: Evaluator, token: str) -> int:
    """The place in ``evaluator``'s sequence of the task whose form carries ``token``.
    Raises SubmissionError for a token this site did not issue, one that has expired, or
    one issued to another evaluator."""
    ticket = entry_token_read(token=token)
    if not constant_time_compare(ticket.evaluator_tag, _evaluator_tag(evaluator.pk)):
        raise SubmissionError("not_yours", "This task belongs to another evaluator.", 403)
    return ticket.index


@dataclass(frozen=True)
class TaskTime:
    """An answer's time on its task, as the server measured it: ``seconds`` from the first
    showing to the answer's arrival, of which ``away_seconds`` away (0 <= away <= seconds)."""

    seconds: float
    away_seconds: float


def entry_task_time(*, entry: Entry, now: datetime) -> TaskTime:
    """The time on ``entry``'s task if it were answered at ``now``: an away interval still
    open is closed at ``now`` (the answer is the participant back). ``entry.shown_at`` is set."""
    assert entry.shown_at is not None
    seconds = max(0.0, (now - entry.shown_at).total_seconds())
    away = entry.away_seconds
    if entry.away_since is not None:
        away += max(0.0, (now - entry.away_since).total_seconds())
    # Away intervals lie within the showing, so this only guards against a clock's step.
    return TaskTime(seconds=seconds, away_seconds=min(max(0.0, away), seconds))


def _entry_for_submission(*, evaluator: Evaluator, token: str, task: str) -> tuple[Entry, TaskTime]:
    index = entry_index_of(evaluator=evaluator, token=token)
    entry = sqlreads.entry_with_item(index=index, evaluator_id=evaluator.pk)
    if entry is None:
        raise SubmissionError("not_yours", "This task belongs to another evaluator.", 403)
    entry.evaluator = evaluator  # read with its study by the caller: not joined in again
    study = entry.evaluator.study
    if not study.accepts_answers:
        raise SubmissionError("study_closed", "This study is closed; no more answers are accepted.", 409)
    if entry.item.task != task:
        raise SubmissionError("wrong_task", "This answer does not fit this task.", 400)
    # Time on task runs from when the server showed the task (kept across reloads; an undo
    # restarts it for the task it reopens), never from the form's own time: a task with no
    # such time is not the one to answer now (an undo, perhaps in another tab, went back
    # past it), and answering it would count time already counted for another task.
    if entry.shown_at is None:
        raise SubmissionError(
            "not_shown", "This is no longer the task to answer (an answer was undone, perhaps in another tab). "
            "Reload the page to see the task to answer now.", 409)
    return entry, entry_task_time(entry=entry, now=timezone.now())


def entry_mark_shown(*, entry: Entry, at: datetime | None = None) -> Entry:
    """Record when ``entry`` is first shown to its evaluator: now, or ``at`` (a simulated
    evaluator's drawn time; requests leave it out). Called on every showing; it writes only
    the first time (one UPDATE by primary key), so a reload, a second tab or the state poll
    never restarts the time on task. It writes nothing while an earlier entry is unanswered
    (an undo took the evaluator back meanwhile): time on this task starts when it is next
    shown. Not atomic on purpose: the write is one statement, and a lost race leaves the
    earlier time, which is the right one."""
    if entry.shown_at is None:
        when = timezone.now() if at is None else at
        if sqlreads.mark_shown(entry_id=entry.pk, at=when):
            entry.shown_at = when
        else:
            entry.refresh_from_db(fields=["shown_at"])
    return entry


@dataclass(frozen=True)
class Answered:
    """A stored answer, and what the evaluator is shown next: their next task (None when
    that was the last) and their progress, read in the answer's own transaction."""

    response: CountResponse | RankResponse
    next_entry: Entry | None
    progress: Progress


def _after_answer(evaluator: Evaluator) -> tuple[Entry | None, Progress]:
    """Read the next task and the progress (one query while a task is left), and record
    activity, with the finish time when this was the evaluator's last task, in one UPDATE
    inside the answer's own transaction (one commit per answer)."""
    nxt, progress = evaluator_next_and_progress(evaluator=evaluator)
    now = timezone.now()
    fields = {"last_seen_at": now}
    if evaluator.finished_at is None and nxt is None:
        fields["finished_at"] = evaluator.finished_at = now
    sqlreads.set_times(Evaluator, evaluator.pk, fields)
    return nxt, progress


# --------------------------------------------------------------------------- answers


def _is_duplicate(exc: IntegrityError, model: type[models.Model]) -> bool:
    """Whether ``exc`` is a unique constraint of ``model``'s table (the answer is there
    already), as opposed to a check constraint (the answer itself is malformed)."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None:  # PostgreSQL: SQLSTATE 23505 is unique_violation
        return getattr(cause, "sqlstate", None) == "23505" and diag.table_name == model._meta.db_table
    # SQLite words it "UNIQUE constraint failed: <table>.<column>, ..."
    return str(exc).startswith(f"UNIQUE constraint failed: {model._meta.db_table}.")


def _refused(exc: IntegrityError, model: type[models.Model]) -> SubmissionError:
    if _is_duplicate(exc, model):
        return SubmissionError("already_answered", "You have already answered this task.", 409)
    return SubmissionError("invalid", "This answer cannot be stored as it is; reload the page and answer again.", 400)


def count_response_submit(*, evaluator: Evaluator, token: str, answer: int | None, cant_tell: bool) -> Answered:
    """Store one count answer; return it with the next task. Raises SubmissionError (and stores nothing) for a forged,
    foreign, replayed or closed-study submission."""
    if (answer is None) == (not cant_tell):
        raise SubmissionError("invalid", "Give a number or choose \u201ccan't tell\u201d.", 400)
    if answer is not None and answer < 0:
        raise SubmissionError("negative", "A count cannot be negative.", 400)
    try:
        with transaction.atomic():
            entry, spent = _entry_for_submission(evaluator=evaluator, token=token, task=Item.Task.COUNT)
            response = CountResponse.objects.create(
                entry=entry,
                evaluator=evaluator,
                item=entry.item,
                answer=answer,
                cant_tell=cant_tell,
                seconds=spent.seconds,
                away_seconds=spent.away_seconds,
                browser=evaluator.browser,
            )
            nxt, progress = _after_answer(evaluator)
    except IntegrityError as exc:
        raise _refused(exc, CountResponse) from exc
    return Answered(response, nxt, progress)


def rank_response_submit(
    *, evaluator: Evaluator, token: str, ranks: Sequence[int | None] | None, skip_reason: str = "",
    all_equal: bool = False,
) -> Answered:
    """Store one ranking (competition ranks of the images in screen order, 1 = best), "all
    equally good" (``all_equal``: every image rank 1, a ranking, not a skip) or a skip with
    its reason. The width and whether ties are allowed come from the study's protocol; a
    ranking that breaks either is refused here (the database refuses a malformed one of
    any width, but cannot see the protocol's ``allow_ties``). Returns it with the next task."""
    if (ranks is not None) + bool(skip_reason) + all_equal != 1:
        raise SubmissionError("both", "Choose one answer: rank the images, or skip with a reason.", 400)
    if skip_reason and skip_reason not in RankResponse.SkipReason.values:
        raise SubmissionError("invalid", "Choose a reason for skipping.", 400)
    from .selectors import entry_images, study_ranking

    try:
        with transaction.atomic():
            entry, spent = _entry_for_submission(evaluator=evaluator, token=token, task=Item.Task.RANK)
            ranking = study_ranking(study=entry.evaluator.study, entry=entry)
            n = ranking.width
            if all_equal:
                ranks = [1] * n
            if ranks is not None:
                ranks = list(ranks)
                while len(ranks) > n and ranks[-1] is None:  # the form's empty fields beyond the width
                    ranks.pop()
                if len(ranks) > n:  # a rank for an image the task does not show (a crafted form)
                    raise SubmissionError(WRONG_WIDTH, f"This task shows {n} images; the answer gives a rank "
                                          f"to image {len(ranks)}, which it does not show.", 400)
                if len(ranks) == n and None in ranks:
                    raise SubmissionError(
                        "incomplete", f"Rank all {n} images (1 = best, {n} = worst), or skip with a reason.", 400)
                try:
                    # Any other None is in a ranking of the wrong width, which check_ranks refuses first.
                    check_ranks(cast("list[int]", ranks), n, allow_ties=ranking.allow_ties)
                except RankError as exc:
                    raise SubmissionError(exc.code, str(exc), 400) from None
            images = entry_images(entry=entry)
            fields: dict[str, Image | int | None] = {f"image_{i}": img for i, img in enumerate(images)}
            fields.update({f"rank_{i}": (None if ranks is None else ranks[i]) for i in range(len(images))})
            response = RankResponse.objects.create(
                entry=entry,
                evaluator=evaluator,
                item=entry.item,
                width=len(images),
                skipped=ranks is None,
                skip_reason=skip_reason if ranks is None else "",
                seconds=spent.seconds,
                away_seconds=spent.away_seconds,
                browser=evaluator.browser,
                **fields,
            )
            nxt, progress = _after_answer(evaluator)
    except IntegrityError as exc:
        raise _refused(exc, RankResponse) from exc
    return Answered(response, nxt, progress)


# The completion code has been shown: what it vouches for cannot change any more.
COMPLETED = ("completed", "You have completed this study; your answers can no longer change.", 409)


@transaction.atomic
def response_undo_last(*, evaluator: Evaluator) -> Entry | None:
    """Delete the evaluator's most recent answer; return its entry (to be shown again).

    Time on the reopened task runs from now, and the task that was next is no longer shown
    (its time starts when it is shown again): the time since the task was first shown was
    counted for the answer removed and for the next task, and counting it again would let
    an evaluator's time on tasks exceed their time in the study (and a script pass the
    minimum-time rule by waiting once and undoing).

    Only an answer given from the browser that holds the evaluator now can be undone: after
    a take-over, the new browser cannot remove what the first one answered.
    """
    if not evaluator.study.accepts_answers:
        raise SubmissionError("study_closed", "This study is closed; answers can no longer change.", 409)
    if evaluator.finished_at is not None:
        raise SubmissionError(*COMPLETED)
    from .selectors import evaluator_last_response

    # An answer in flight holds its entry's row (``sqlreads.entry_with_item``) until it
    # commits: wait for the tasks shown and unanswered, then read which answer is last, so
    # an answer and an undo sent at once take turns (else both could succeed: the next task
    # answered before the one reopened, and answered tasks left with no showing time).
    list(Entry.objects.select_for_update(of=("self",)).filter(
        evaluator=evaluator, shown_at__isnull=False, count_response__isnull=True, rank_response__isnull=True,
    ).values_list("pk", flat=True))
    # The answer waited for may have been the last task's, which finished the study (its
    # code is on the way to the browser): ``evaluator`` was read before it committed, so
    # whether the evaluator has finished is read again, now.
    if Evaluator.objects.filter(pk=evaluator.pk, finished_at__isnull=False).exists():
        raise SubmissionError(*COMPLETED)
    last = evaluator_last_response(evaluator=evaluator)
    if last is None:
        return None
    if last.browser != evaluator.browser:
        raise SubmissionError(
            "other_browser", "Your last answer was given in another browser; it cannot be undone here.", 409
        )
    entry = last.entry
    last.delete()
    # Time away goes with the time it was part of: the reopened task starts afresh.
    entry.shown_at, entry.away_seconds, entry.away_since = timezone.now(), 0.0, None
    Entry.objects.filter(pk=entry.pk).update(shown_at=entry.shown_at, away_seconds=0.0, away_since=None)
    Entry.objects.filter(
        evaluator=evaluator, shown_at__isnull=False, count_response__isnull=True, rank_response__isnull=True
    ).exclude(pk=entry.pk).update(shown_at=None, away_seconds=0.0, away_since=None)
    return entry
