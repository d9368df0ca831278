"""The evaluator's way through a study: joining, consent, answers, undo, take-over.

Every function here is keyword-only and atomic: it either does all of its work or raises
and leaves the database as it was. Opening, pausing and closing a study is ``lifecycle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from evalstudy.ranks import WRONG_WIDTH, RankError, check_ranks
from webapp.transactions import lone_statement

from . import places, sqlreads
from .models import CountResponse, Entry, Evaluator, Image, Item, RankResponse, Slot, Study, new_token
from .selectors import Progress, evaluator_next_and_progress

M = TypeVar("M", bound=models.Model)

TOKEN_SALT = "fusion-eval.entry"
TOKEN_MAX_AGE = timedelta(days=14)


class SubmissionError(Exception):
    """A submission that must not be stored; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class StudyUnavailable(Exception):
    """The study cannot take this evaluator: ``reason`` is "full" (every slot is taken),
    "closed" (not open: a draft, paused or closed study) or "address" (the client's address
    holds as many places as it may: no panel outcome, the person may come back later)."""

    def __init__(self, message: str, reason: str = "closed"):
        super().__init__(message)
        self.reason = reason


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


# --------------------------------------------------------------------------- joining


class InvalidExternalId(ValueError):
    """An external worker id that cannot be stored as it is; the message says why."""


class AlreadyCompleted(Exception):
    """This external id belongs to an evaluator who has finished: nothing is left to do
    but show them their completion code again."""

    def __init__(self, evaluator: Evaluator):
        super().__init__("This participant has already completed the study.")
        self.evaluator = evaluator


class HeldByAnotherSession(Exception):
    """This external id holds a place that was taken in another of the panel's sessions
    (Prolific's SESSION_ID): the place is that session's, so a link with the id alone (or
    with another session) neither continues it nor takes it over, and gets no code."""

    def __init__(self, evaluator: Evaluator):
        super().__init__(OTHER_SESSION_MESSAGE)
        self.evaluator = evaluator


OTHER_SESSION_MESSAGE = (
    "This participant ID already has a place in this study, taken in another session. It can be continued "
    "only from that session: open the study again from your panel's page for that submission. A submission "
    "you returned cannot be taken up again here.")


class SessionNotConfirmed(Exception):
    """The panel does not confirm the visitor's session as this participant's own, live
    submission of the study (unknown to it, another participant's, returned, timed out...):
    nothing is written; the message is for the participant."""


class PanelUnreachable(Exception):
    """The panel could not be asked about a session (down, slow, an error, our token refused):
    nothing is decided and nothing written. The operator's log says why; the participant is
    asked to try again in a minute."""


class PanelSessionCheck(Protocol):
    """The panel's word on sessions, for one visitor of the invite link (``webapp.studies.
    prolific.SessionCheck`` asks Prolific's API). ``evaluator_join`` consults it before a
    place is taken or resumed, and before a place held by another session passes to this one;
    it makes network calls, so it is never called inside a transaction."""

    def confirm(self) -> None:
        """Return when the visitor's session is this participant's own live submission of
        the study; else raise SessionNotConfirmed, or PanelUnreachable when the panel cannot say."""

    def has_ended(self, *, session_id: str) -> bool:
        """Whether ``session_id``, the session that holds this participant's place, is not a
        live submission of theirs (unknown, another participant's, returned, timed out...).
        Raises PanelUnreachable when the panel cannot say."""


class ActiveElsewhere(Exception):
    """This external id is in use in another browser that was active within the slot
    timeout. The visitor is asked whether to continue here (``evaluator_take_over``)."""

    def __init__(self, evaluator: Evaluator):
        super().__init__("This participant is taking part in another browser right now.")
        self.evaluator = evaluator


# A CharField always has a max_length; the field API types it as optional.
MAX_EXTERNAL_ID = cast(int, Evaluator._meta.get_field("external_id").max_length)


def external_id_clean(raw: str) -> str:
    """The id as stored: surrounding blanks dropped; too long or unprintable is refused,
    never cut (two ids cut to one would make two people one evaluator)."""
    value = raw.strip()
    if len(value) > MAX_EXTERNAL_ID:
        raise InvalidExternalId(
            f"This participant id is {len(value)} characters long; at most {MAX_EXTERNAL_ID} are accepted. "
            "Check the link you were given."
        )
    if not value.isprintable():
        raise InvalidExternalId(
            "This participant id holds characters that are not allowed. Check the link you were given."
        )
    return value


def _present(found: M | None, model: type[M]) -> M:
    """``found``, or the model's DoesNotExist (as the ORM's ``get`` raises it) when it is None."""
    if found is None:
        raise model.DoesNotExist(f"{model.__name__} matching query does not exist.")  # type: ignore[attr-defined]
    return found


def _active_since() -> datetime:
    return timezone.now() - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS)


def _release_abandoned(study: Study) -> None:
    """Evaluators silent for longer than the slot timeout give their slots back."""
    Evaluator.objects.filter(
        study=study, finished_at__isnull=True, abandoned_at__isnull=True, last_seen_at__lt=_active_since()
    ).update(abandoned_at=timezone.now())


def _free_slot(study: Study) -> Slot | None:
    """The lowest-numbered slot nobody active holds (the caller holds the study's lock; one
    statement made once per process: sqlreads)."""
    return sqlreads.free_slot(study_id=study.pk)


def _simulated_plan(study: Study) -> Slot | None:
    """The slot whose plan the next simulated evaluator follows: the slots in turn, so that
    N simulated evaluators over N slots cover the design once (the caller holds the study's lock)."""
    slots = list(Slot.objects.filter(study=study).order_by("number"))
    if not slots:
        return None
    given = Evaluator.objects.filter(study=study, is_simulated=True, consented_at__isnull=False).count()
    return slots[given % len(slots)]


def _every_slot_held(study: Study) -> bool:
    """Whether every slot is held by an evaluator still active: a read under no lock, for the
    join page only (one statement: sqlreads). Consent decides, under the study's lock; an
    evaluator silent for the slot timeout counts as gone here before ``_release_abandoned``
    marks them."""
    held, total = sqlreads.slots_held_and_total(study_id=study.pk, active_since=_active_since())
    return held >= total


FULL_MESSAGE = "Every place in this study is taken. Thank you for your interest."


def evaluator_join(
    *,
    study: Study,
    external_id: str = "",
    user: User | None = None,
    simulated: bool = False,
    external_study_id: str = "",
    external_session_id: str = "",
    session_check: PanelSessionCheck | None = None,
) -> Evaluator:
    """The visitor of the invite link as a new evaluator, who holds no slot until they consent.

    With an external worker id that joined before (from a browser that does not hold it,
    or the caller would not be here), their evaluator is returned, moved to this browser,
    when the browser that holds it has been silent for the slot timeout; while it is
    active, ActiveElsewhere. Raises StudyUnavailable when the study is closed, paused or
    full and InvalidExternalId for an id that cannot be stored. ``external_study_id`` and
    ``external_session_id`` are the panel's (Prolific's STUDY_ID and SESSION_ID), stored
    as given (within the field's length). A place is its session's: an external id that
    joined before, seen with another session id than the one stored (none counts as one),
    raises HeldByAnotherSession, before anything else is said about it, and changes nothing.

    With a ``session_check`` (a panel whose API can confirm sessions), a place is taken or
    resumed only by a session the panel confirms (SessionNotConfirmed otherwise), and a
    place held by another session passes to the visitor's confirmed one when the panel says
    that session has ended (``places.evaluator_release`` keeps its answers; the visitor
    then joins as a new evaluator). When the panel cannot be asked (PanelUnreachable), no
    place is taken or passed, but the session that holds a place continues it.
    """
    # No lock on the study and no transaction: joining takes no slot (consent does, under the
    # lock), the reads need no common snapshot, and the unique (study, external_id) constraint
    # settles two joins of one id at once, on the one INSERT.
    # Read again (the caller's copy may be older than a pause or a close); the reads on
    # the arrival path are statements made once per process (sqlreads).
    study = _present(sqlreads.row(Study, pk=study.pk), Study)
    external_id = external_id_clean(external_id)
    existing = sqlreads.place_holder(study_id=study.pk, external_id=external_id) if external_id else None
    external_session_id = external_session_id.strip()[:MAX_EXTERNAL_ID]
    confirmed = False
    # Whoever knows a participant's id (it shows in shared screenshots, and a panel's ids are
    # not secrets) must not continue their place, nor collect their code: the panel's session
    # id, which the panel puts in that participant's own link only, must match too.
    if existing is not None and not _same_session(existing, external_session_id):
        _pass_place(study, existing, session_check)  # or HeldByAnotherSession
        existing, confirmed = None, True
    # A participant who finished gets their code again, even once the study is closed.
    if existing is not None and existing.finished_at is not None:
        raise AlreadyCompleted(existing)
    if study.status == Study.Status.PAUSED:
        raise StudyUnavailable("This study is paused and takes no new participants at the moment.")
    if not study.is_open:
        raise StudyUnavailable("This study is not open.")
    if existing is not None:
        if session_check is not None:
            try:
                session_check.confirm()
            except PanelUnreachable:
                # The link carries the session that holds this place (checked above), which
                # only that participant's own link has: they keep working while the panel is
                # down. A session the panel says has ended is refused (SessionNotConfirmed).
                pass
        return _rejoin(existing)
    if not simulated and _every_slot_held(study):  # simulated evaluators take no place
        raise StudyUnavailable(FULL_MESSAGE, reason="full")
    if session_check is not None and not confirmed:
        session_check.confirm()  # a new place: no answer from the panel, no place
    try:
        with lone_statement():
            return Evaluator.objects.create(
                study=study,
                external_id=external_id,
                user=user,
                is_simulated=simulated,
                last_seen_at=timezone.now(),
                browser=new_token(),
                external_study_id=external_study_id.strip()[:MAX_EXTERNAL_ID],
                external_session_id=external_session_id,
            )
    except IntegrityError:
        if not external_id:
            raise
        # Another request joined with this id meanwhile: it is that evaluator's browser, if
        # it came in the same session.
        existing = Evaluator.objects.get(study=study, external_id=external_id, released_at__isnull=True)
        if not _same_session(existing, external_session_id):
            raise HeldByAnotherSession(existing) from None
        return _rejoin(existing)


def _pass_place(study: Study, holder: Evaluator, check: PanelSessionCheck | None) -> None:
    """Release ``holder``'s place (taken in another session than the visitor's) for the
    visitor, when the panel confirms the visitor's session and says that the holder's has
    ended; else raise HeldByAnotherSession (or what the check raises), having written nothing.

    Without a check, or for a study that takes nobody now, or a holder who has finished
    (their code is theirs), the place stays its session's, as it always did. The visitor's
    session is confirmed first: someone whose session the panel does not know learns
    nothing of the holder's, and costs one request to the panel, not two. A holder whose
    browser is active right now loses the place too: the panel says its session is over
    (returned, timed out, or never one of this participant's), and asking "continue
    here?" would hand its answers to another session; that browser is signed out."""
    if check is None or not study.is_open or holder.finished_at is not None:
        raise HeldByAnotherSession(holder)
    check.confirm()
    if not check.has_ended(session_id=holder.external_session_id):
        raise HeldByAnotherSession(holder)
    try:
        places.evaluator_release(evaluator=holder, session_id=holder.external_session_id)
    except places.PlaceError:
        # Released, or taken up, by a concurrent request meanwhile: the INSERT that follows
        # meets the unique constraint if someone holds the id now, and that path decides.
        pass


def _same_session(existing: Evaluator, session_id: str) -> bool:
    """Whether a visit with the panel's ``session_id`` (stripped, as stored) may resume
    ``existing``: the same session id, compared in constant time; for a panel that sends
    none, both empty."""
    return constant_time_compare(existing.external_session_id, session_id)


def _rejoin(existing: Evaluator) -> Evaluator:
    """An external id that joined before, seen from a browser that does not hold it."""
    if existing.last_seen_at is not None and existing.last_seen_at >= _active_since():
        raise ActiveElsewhere(existing)
    return evaluator_take_over(evaluator=existing)


@transaction.atomic
def evaluator_take_over(*, evaluator: Evaluator) -> Evaluator:
    """Move the evaluator to a new browser: the browser that held it is signed out."""
    evaluator = Evaluator.objects.select_for_update().get(pk=evaluator.pk)
    evaluator.browser = new_token()
    evaluator.last_seen_at = timezone.now()
    evaluator.save(update_fields=["browser", "last_seen_at"])
    return evaluator


ADDRESS_MESSAGE = ("Several places in this study are already held from your network. Finish one of "
                   "them, or try again later.")


def _address_holds(study: Study, address: str) -> int:
    """The places of ``study`` held now (consented, unfinished, active) by evaluators who
    consented from ``address`` (the caller holds the study's lock)."""
    return Evaluator.objects.filter(
        study=study, consent_address=address, slot__isnull=False, finished_at__isnull=True,
        abandoned_at__isnull=True, last_seen_at__gte=_active_since(),
    ).count()


@transaction.atomic
def evaluator_consent(*, evaluator: Evaluator, address: str = "") -> Evaluator:
    """Record the evaluator's consent and give them a slot and its tasks, in the slot's order.

    The slot is taken here, not on joining: a visitor who only opened the link holds none.
    Raises StudyUnavailable (and stores nothing) when the study closed or filled meanwhile,
    or (reason "address") when ``address`` (a keyed hash of the client's address, see
    ``webapp.studies.views``) holds FUSION_SLOTS_PER_ADDRESS places of the study already.
    """
    # The study's row first, then the evaluator's, as every other writer locks them.
    study = _present(sqlreads.row(Study, pk=evaluator.study_id, for_update=True), Study)
    evaluator = _present(sqlreads.row(Evaluator, pk=evaluator.pk, for_update=True), Evaluator)
    if evaluator.consented_at is not None:
        return evaluator
    if not study.is_open:
        raise StudyUnavailable("This study is not open.")
    if evaluator.slot_id is None:
        if evaluator.is_simulated:
            # A dry run must not take the places of people: a simulated evaluator follows a
            # slot's plan (each slot in turn) without holding the slot.
            slot = _simulated_plan(study)
            if slot is None:
                raise StudyUnavailable("This study has no planned places to simulate.")
        else:
            cap = settings.FUSION_SLOTS_PER_ADDRESS if settings.RATELIMIT_ENABLE else 0
            if address and cap > 0 and _address_holds(study, address) >= cap:
                raise StudyUnavailable(ADDRESS_MESSAGE, reason="address")
            slot = _free_slot(study)
            if slot is None:  # only then are the silent evaluators' slots worth a write
                _release_abandoned(study)
                slot = _free_slot(study)
            if slot is None:
                raise StudyUnavailable(FULL_MESSAGE, reason="full")
            evaluator.slot = slot
        # One INSERT for every task (sqlreads: no model instance per row).
        sqlreads.insert_entries(
            evaluator_id=evaluator.pk,
            rows=[(i, item_id, slot.positions.get(str(item_id), [])) for i, item_id in enumerate(slot.items)],
        )
        evaluator.planned_tasks = len(slot.items)
    evaluator.consented_at = evaluator.last_seen_at = timezone.now()
    evaluator.declined_at = None  # agreed after all
    evaluator.consent_address = address
    evaluator.save(update_fields=["slot", "planned_tasks", "consented_at", "last_seen_at", "declined_at",
                                  "consent_address"])
    return evaluator


def evaluator_start(*, evaluator: Evaluator) -> Evaluator:
    """The evaluator has read the instructions (and answered the practice item, when the
    protocol has one): from now on the tasks are shown. Only after consent; idempotent.
    One UPDATE, its own transaction (no BEGIN and COMMIT around it: two round trips less)."""
    if evaluator.consented_at is None:
        raise StudyUnavailable("Agree to take part first.")
    if evaluator.started_at is None:
        evaluator.started_at = timezone.now()
        sqlreads.set_times(Evaluator, evaluator.pk, {"started_at": evaluator.started_at}, unless_set="started_at")
    return evaluator


@transaction.atomic
def evaluator_decline(*, evaluator: Evaluator) -> Evaluator:
    """The evaluator did not consent: record it (they hold no slot before consenting). One
    who agrees after all is taken on by ``evaluator_consent``; an evaluator who has
    consented already cannot decline any more, they may simply stop."""
    if evaluator.consented_at is None and evaluator.declined_at is None:
        evaluator.declined_at = timezone.now()
        Evaluator.objects.filter(pk=evaluator.pk).update(declined_at=evaluator.declined_at)
    return evaluator


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
