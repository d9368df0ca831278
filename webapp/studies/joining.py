"""Joining a study: the invite link's visitor as an evaluator (a panel's worker and session
ids, the panel's word on sessions, another browser taking over), consent, which takes a
place and its tasks, the instructions' start, and declining. The tasks that follow are
``flow``.

Every function here is keyword-only and atomic: it either does all of its work or raises
and leaves the database as it was.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, TypeVar, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from webapp.transactions import lone_statement

from . import places, sqlreads
from .models import Evaluator, Slot, Study, new_token

M = TypeVar("M", bound=models.Model)


class StudyUnavailable(Exception):
    """The study cannot take this evaluator: ``reason`` is "full" (every slot is taken),
    "closed" (not open: a draft, paused or closed study) or "address" (the client's address
    holds as many places as it may: no panel outcome, the person may come back later)."""

    def __init__(self, message: str, reason: str = "closed"):
        super().__init__(message)
        self.reason = reason


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
