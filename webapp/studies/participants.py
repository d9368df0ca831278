"""Reads for a study's researchers: who took part, how well, and what to do on the panel.

This is the one place that shows participants' external ids (e.g. Prolific IDs), to the
study's own researchers, for paying people. Exports meant for sharing keep salted
hashes of them (``webapp.research.exports``).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from evalstudy.analysis import apply_exclusions, evaluator_reliability
from evalstudy.protocol import Exclusions
from evalstudy.responses import read_responses

from .models import CountResponse, Evaluator, RankResponse, Slot, Study
from .recruitment import protocol_of


class Suggestion:
    """What to do with a participant's submission on the panel (Prolific's words)."""

    APPROVE = "approve"  # finished, no exclusion rule broken
    REJECT = "reject"  # finished, but broke an exclusion rule: check before rejecting
    RETURN = "return"  # did not consent, or stopped: ask them to return the submission
    WAIT = "wait"  # still at work


SUGGESTIONS = (Suggestion.APPROVE, Suggestion.REJECT, Suggestion.RETURN, Suggestion.WAIT)
CSV_COLUMNS = (
    "participant_id", "suggestion", "status", "exclusion", "gold_accuracy", "minutes", "answered", "planned",
    "started_at", "finished_at", "study_id", "session_id", "pseudonym",
)


@dataclass(frozen=True)
class ParticipantRow:
    participant_id: str
    study_id: str
    session_id: str
    pseudonym: str
    status: str  # finished, declined, abandoned, active, consenting
    started_at: datetime
    finished_at: datetime | None
    minutes: float
    answered: int
    planned: int
    gold_accuracy: float | None
    exclusion: str  # the rules broken, "" if none
    suggestion: str


def _exclusions(study: Study) -> dict[str, list[str]]:
    """{pseudonym: rules broken}, by evalstudy's reliability measures and the protocol's rules."""
    from webapp.research.exports import csv_chunks

    proto = protocol_of(study)
    rules = proto.analysis.exclusions if proto else Exclusions()
    text = "".join(csv_chunks(study=study))
    table = read_responses(io.StringIO(text, newline=""))
    if len(table) == 0:
        return {}
    return apply_exclusions(evaluator_reliability(table), rules)


def _status(ev: Evaluator, cutoff: datetime) -> str:
    if ev.finished_at:
        return "finished"
    if ev.declined_at:
        return "declined"
    if ev.abandoned_at or (ev.last_seen_at and ev.last_seen_at < cutoff):
        return "abandoned"
    return "active" if ev.consented_at else "consenting"


def _suggest(status: str, excluded: bool) -> str:
    if status == "finished":
        return Suggestion.REJECT if excluded else Suggestion.APPROVE
    return Suggestion.RETURN if status in ("declined", "abandoned") else Suggestion.WAIT


def participant_rows(*, study: Study) -> list[ParticipantRow]:
    """Every real (not simulated) participant of the study, in the order they joined."""
    cutoff = timezone.now() - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS)
    evaluators = list(Evaluator.objects.filter(study=study, is_simulated=False)
                      .annotate(n_planned=Count("entries", distinct=True)).order_by("joined_at", "pk"))
    counts = {r["evaluator_id"]: r for r in CountResponse.objects.filter(evaluator__study=study).values("evaluator_id")
              .annotate(n=Count("pk"), s=Sum("seconds"), gold=Count("pk", filter=Q(item__is_gold=True)),
                        gold_right=Count("pk", filter=Q(item__is_gold=True, answer=F("item__true_count"))))
              .order_by()}
    ranks = {r["evaluator_id"]: r for r in RankResponse.objects.filter(evaluator__study=study).values("evaluator_id")
             .annotate(n=Count("pk"), s=Sum("seconds")).order_by()}
    excluded = _exclusions(study)
    rows = []
    for ev in evaluators:
        c = counts.get(ev.pk, {"n": 0, "s": 0.0, "gold": 0, "gold_right": 0})
        r = ranks.get(ev.pk, {"n": 0, "s": 0.0})
        status = _status(ev, cutoff)
        reasons = excluded.get(ev.pseudonym, [])
        rows.append(ParticipantRow(
            participant_id=ev.external_id, study_id=ev.external_study_id, session_id=ev.external_session_id,
            pseudonym=ev.pseudonym, status=status, started_at=ev.joined_at, finished_at=ev.finished_at,
            minutes=((c["s"] or 0.0) + (r["s"] or 0.0)) / 60, answered=c["n"] + r["n"], planned=ev.n_planned,
            gold_accuracy=c["gold_right"] / c["gold"] if c["gold"] else None,
            exclusion="; ".join(reasons), suggestion=_suggest(status, bool(reasons)),
        ))
    return rows


def participants_csv(rows: list[ParticipantRow]) -> str:
    """The rows as CSV, the participant id first (what Prolific's bulk actions take)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([
            row.participant_id, row.suggestion, row.status, row.exclusion,
            "" if row.gold_accuracy is None else f"{row.gold_accuracy:.3f}", f"{row.minutes:.1f}",
            row.answered, row.planned, row.started_at.isoformat(),
            row.finished_at.isoformat() if row.finished_at else "", row.study_id, row.session_id, row.pseudonym,
        ])
    return buf.getvalue()


def ids_by_suggestion(rows: list[ParticipantRow]) -> dict[str, list[str]]:
    """Participant ids to paste into the panel's bulk approve / reject / return boxes."""
    return {s: [r.participant_id for r in rows if r.suggestion == s and r.participant_id] for s in SUGGESTIONS}


@dataclass(frozen=True)
class Places:
    slots: int
    finished: int
    working: int
    free: int


def study_places(*, study: Study) -> Places:
    """The study's places: done, taken by someone still at work, free (a place held by
    someone silent for FUSION_SLOT_TIMEOUT_SECONDS counts as free: the next newcomer gets it)."""
    cutoff = timezone.now() - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS)
    slots = Slot.objects.filter(study=study).count()
    holders = Evaluator.objects.filter(study=study, abandoned_at__isnull=True, slot__isnull=False)
    finished = holders.filter(finished_at__isnull=False).values("slot_id").distinct().count()
    working = holders.filter(finished_at__isnull=True, last_seen_at__gte=cutoff).values("slot_id").distinct().count()
    return Places(slots=slots, finished=finished, working=working, free=max(0, slots - finished - working))

