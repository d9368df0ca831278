"""Reads for a study's researchers: who took part, how well, and what to do on the panel.

This is the one place that shows participants' external ids (e.g. Prolific IDs), to the
study's own researchers, for paying people. Exports meant for sharing keep salted
hashes of them (``webapp.research.exports``).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Q, Sum

from evalstudy.analysis import apply_exclusions, evaluator_reliability
from evalstudy.protocol import Exclusions
from evalstudy.responses import read_responses
from webapp.studies.models import CountResponse, Evaluator, RankResponse, Slot, Study
from webapp.studies.selectors import EvaluatorStatus, evaluators_with_status, status_silent_before

from .exports import csv_chunks, spreadsheet_safe
from .progress import GOLD_ANSWERED


class Suggestion:
    """What to do with a participant's submission on the panel (Prolific's words)."""

    APPROVE = "approve"  # finished; their data may still be excluded from the analysis
    REVIEW = "review"  # finished, gold passed or absent, but faster than the speed rule: look before approving
    REJECT = "reject"  # finished, but failed the gold items (attention checks): check before rejecting
    RETURN = "return"  # did not consent, or stopped: ask them to return the submission
    WAIT = "wait"  # still at work


SUGGESTIONS = (Suggestion.APPROVE, Suggestion.REVIEW, Suggestion.REJECT, Suggestion.RETURN, Suggestion.WAIT)
CSV_COLUMNS = (
    "participant_id", "suggestion", "status", "exclusion", "gold_accuracy", "minutes", "task_minutes", "answered",
    "planned", "started_at", "finished_at", "study_id", "session_id", "pseudonym",
    # Added after the others, so that the columns files were read by keep their places.
    "away_minutes",
)


@dataclass(frozen=True)
class ParticipantRow:
    participant_id: str
    study_id: str
    session_id: str
    pseudonym: str
    status: str  # an EvaluatorStatus value
    started_at: datetime
    finished_at: datetime | None
    minutes: float  # in the study: from consent to the last answer, as the server saw it
    task_minutes: float  # on tasks: the sum of each task's active time, first shown to answered less time away
    away_minutes: float  # the sum of each task's time away (the page hidden or idle) while it was shown
    answered: int
    planned: int
    gold_accuracy: float | None
    exclusion: str  # the rules broken, "" if none
    suggestion: str  # "" for a released place: the submission it held is over, nothing to do on the panel
    released: bool = False  # the place was released (places.evaluator_release)

    @property
    def releasable(self) -> bool:
        """Whether the place may be released: unfinished and not released already."""
        return not self.released and self.finished_at is None


@dataclass(frozen=True)
class _Verdicts:
    excluded: dict[str, list[str]]  # pseudonym -> every rule broken (their data leaves the analysis)
    failed_gold: frozenset[str]  # pseudonyms below the protocol's gold accuracy rule
    too_fast: frozenset[str]  # pseudonyms below the protocol's speed rule (median seconds per item)


def _verdicts(study: Study) -> _Verdicts:
    """The protocol's exclusion rules applied by evalstudy, and, apart, its gold rule alone."""
    proto = study.parsed_protocol
    rules = proto.analysis.exclusions if proto else Exclusions()
    # People's answers: the export read below leaves simulated evaluators out (a dry run's
    # answers alone would make it empty), and evalstudy reads no empty table.
    people = {"evaluator__study": study, "evaluator__is_simulated": False}
    if not (CountResponse.objects.filter(**people).exists() or RankResponse.objects.filter(**people).exists()):
        return _Verdicts({}, frozenset(), frozenset())
    table = read_responses(io.StringIO("".join(csv_chunks(study=study)), newline=""),
                           allow_ties=bool(proto and proto.allow_ties))
    table = table.subset(table["evaluator_id"] != "")  # the judge-only rows are no one's answers
    reliability = evaluator_reliability(table)
    gold_only = Exclusions(min_gold_accuracy=rules.min_gold_accuracy)
    speed_only = Exclusions(min_median_seconds=rules.min_median_seconds)
    return _Verdicts(apply_exclusions(reliability, rules), frozenset(apply_exclusions(reliability, gold_only)),
                     frozenset(apply_exclusions(reliability, speed_only)))


def _suggest(status: str, *, failed_gold: bool, too_fast: bool) -> str:
    """Approve whoever finished, unless they failed the gold items (images with a known count,
    the attention checks whose rule the protocol states before anyone takes part): reject.
    One who passed them (or saw none) but answered faster than the protocol's speed rule is
    put to review, not rejected: fast counters who get the gold right have done the work,
    and a script that guessed the gold right must not land in the list pasted into the
    panel's bulk approval. Any other broken rule (too many "can't tell", skips, inconsistent
    repeats) excludes the data from the analysis but is no reason to hold back pay.
    See docs/running-a-study.md, "Time on task, and approving or rejecting"."""
    if status == EvaluatorStatus.FINISHED:
        if failed_gold:
            return Suggestion.REJECT
        return Suggestion.REVIEW if too_fast else Suggestion.APPROVE
    if status in (EvaluatorStatus.DECLINED, EvaluatorStatus.ABANDONED):
        return Suggestion.RETURN
    return Suggestion.WAIT


def participant_rows(*, study: Study) -> list[ParticipantRow]:
    """Every real (not simulated) participant of the study, in the order they joined."""
    evaluators = list(evaluators_with_status(Evaluator.objects.filter(study=study, is_simulated=False))
                      .annotate(n_planned=Count("entries", distinct=True)).order_by("joined_at", "pk"))
    counts = {r["evaluator_id"]: r for r in CountResponse.objects.filter(evaluator__study=study).values("evaluator_id")
              .annotate(n=Count("pk"), s=Sum("seconds"), away=Sum("away_seconds"), last=Max("created_at"),
                        gold=Count("pk", filter=GOLD_ANSWERED),
                        gold_right=Count("pk", filter=Q(item__is_gold=True, answer=F("item__true_count"))))
              .order_by()}
    ranks = {r["evaluator_id"]: r for r in RankResponse.objects.filter(evaluator__study=study).values("evaluator_id")
             .annotate(n=Count("pk"), s=Sum("seconds"), away=Sum("away_seconds"), last=Max("created_at")).order_by()}
    verdicts = _verdicts(study)
    rows = []
    for ev in evaluators:
        c: Mapping[str, Any] = counts.get(ev.pk, {"n": 0, "s": 0.0, "away": 0.0, "last": None, "gold": 0,
                                                  "gold_right": 0})
        r: Mapping[str, Any] = ranks.get(ev.pk, {"n": 0, "s": 0.0, "away": 0.0, "last": None})
        last = max((t for t in (c["last"], r["last"]) if t is not None), default=None)
        in_study = (last - ev.consented_at).total_seconds() if last and ev.consented_at else 0.0
        reasons = verdicts.excluded.get(ev.pseudonym, [])
        seconds = (c["s"] or 0.0) + (r["s"] or 0.0)
        away = (c["away"] or 0.0) + (r["away"] or 0.0)
        rows.append(ParticipantRow(
            participant_id=ev.external_id, study_id=ev.external_study_id, session_id=ev.external_session_id,
            pseudonym=ev.pseudonym, status=ev.status, started_at=ev.joined_at, finished_at=ev.finished_at,
            minutes=max(0.0, in_study) / 60, task_minutes=(seconds - away) / 60,
            away_minutes=away / 60,
            answered=c["n"] + r["n"], planned=ev.n_planned,
            gold_accuracy=c["gold_right"] / c["gold"] if c["gold"] else None,
            exclusion="; ".join(reasons),
            suggestion="" if ev.released_at else _suggest(ev.status, failed_gold=ev.pseudonym in verdicts.failed_gold,
                                                          too_fast=ev.pseudonym in verdicts.too_fast),
            released=ev.released_at is not None,
        ))
    return rows


def participants_csv(rows: list[ParticipantRow]) -> str:
    """The rows as CSV, the participant id first (what Prolific's bulk actions take). The
    panel's ids come from the invite link, i.e. from whoever wrote it: none is written so
    that a spreadsheet reads it as a formula (``spreadsheet_safe``)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([
            spreadsheet_safe(row.participant_id), row.suggestion, row.status, row.exclusion,
            "" if row.gold_accuracy is None else f"{row.gold_accuracy:.3f}", f"{row.minutes:.1f}",
            f"{row.task_minutes:.1f}",
            row.answered, row.planned, row.started_at.isoformat(),
            row.finished_at.isoformat() if row.finished_at else "", spreadsheet_safe(row.study_id),
            spreadsheet_safe(row.session_id), row.pseudonym, f"{row.away_minutes:.1f}",
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
    cutoff = status_silent_before()
    slots = Slot.objects.filter(study=study).count()
    holders = Evaluator.objects.filter(study=study, abandoned_at__isnull=True, slot__isnull=False)
    finished = holders.filter(finished_at__isnull=False).values("slot_id").distinct().count()
    working = holders.filter(finished_at__isnull=True, last_seen_at__gte=cutoff).values("slot_id").distinct().count()
    return Places(slots=slots, finished=finished, working=working, free=max(0, slots - finished - working))

