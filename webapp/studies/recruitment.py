"""Reads of a study's recruitment, consent and practice sections (the protocol's optional parts).

A study made from a protocol without them behaves as before: ids from the usual query
parameters, no return links, the site's generic consent text, no practice item.
"""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import QuerySet

from evalstudy.protocol import Consent, Practice, Recruitment, ReturnLink

from . import sqlreads
from .flow import TaskTime
from .models import CountResponse, Evaluator, RankResponse, Slot, Study

# Query parameters read for the participant's id when the protocol names none.
DEFAULT_ID_PARAMS = ("PROLIFIC_PID", "worker_id", "workerId", "external_id")
# Prolific's participant ids are 24 hexadecimal characters; other panels' ids are
# checked for length and a safe alphabet only.
PROLIFIC_ID = re.compile(r"^[0-9a-fA-F]{24}$")
GENERIC_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
# The running median replaces the pilot's time once this many people have finished.
RUNNING_MEDIAN_AFTER = 3
TIME_ESTIMATE_CACHE_SECONDS = 60 * 60  # the key changes with every participant who finishes
PANEL_NAMES = {"prolific": "Prolific"}


@dataclass(frozen=True)
class PanelIds:
    participant: str = ""
    study: str = ""
    session: str = ""


@dataclass(frozen=True)
class TimeEstimate:
    minutes: int
    source: str  # "pilot" or "running median of N participants"


def recruitment_of(study: Study) -> Recruitment | None:
    proto = study.parsed_protocol
    return proto.recruitment if proto else None


def consent_of(study: Study) -> Consent | None:
    proto = study.parsed_protocol
    return proto.consent if proto else None


def practice_of(study: Study) -> Practice | None:
    proto = study.parsed_protocol
    return proto.practice if proto else None


def panel_name(recruitment: Recruitment | None) -> str:
    return PANEL_NAMES.get(recruitment.panel, "the study's website") if recruitment else "the study's website"


def ids_from_query(recruitment: Recruitment | None, query: Mapping[str, str]) -> PanelIds:
    """The participant's, study's and session's ids carried by the invite link."""
    if recruitment is None:
        return PanelIds(participant=next((query[p] for p in DEFAULT_ID_PARAMS if query.get(p)), ""))
    return PanelIds(
        participant=query.get(recruitment.participant_param, ""),
        study=query.get(recruitment.study_param, "") if recruitment.study_param else "",
        session=query.get(recruitment.session_param, "") if recruitment.session_param else "",
    )


def canonical_ids(recruitment: Recruitment | None, ids: PanelIds) -> PanelIds:
    """The ids as they are stored and compared: Prolific's (participant, study, session: 24
    hexadecimal characters, in either case as ``PROLIFIC_ID`` accepts them) in lower case,
    as Prolific writes them, so that one participant in upper case is not a second
    participant with a second place; other panels' ids as given (their case may matter)."""
    if recruitment is None or recruitment.panel != "prolific":
        return ids
    return PanelIds(participant=ids.participant.strip().lower(), study=ids.study.strip().lower(),
                    session=ids.session.strip().lower())


def participant_id_pattern(recruitment: Recruitment | None) -> re.Pattern:
    return PROLIFIC_ID if recruitment is not None and recruitment.panel == "prolific" else GENERIC_ID


# A panel's placeholder left as it is, e.g. Prolific's {{%PROLIFIC_PID%}}: the link was
# opened from a study page preview or copied by hand, not from the panel's study list.
PLACEHOLDER = re.compile(r"\{\{?\s*%|%\s*\}\}?")


def participant_id_problem(recruitment: Recruitment | None, value: str) -> str | None:
    """Why ``value`` is not a participant id of the study's panel, in words for the
    participant (the value itself is not repeated); None when it is one. The same check
    for an id that came with the link and one typed by hand."""
    panel = panel_name(recruitment)
    if PLACEHOLDER.search(value):
        return (f"This link was not filled in by {panel}: it holds a placeholder where your participant ID "
                f"should be. Open the study again from {panel} itself.")
    if participant_id_pattern(recruitment).match(value):
        return None
    if recruitment is not None and recruitment.panel == "prolific":
        return "A Prolific ID is 24 characters, digits 0-9 and letters a-f, as shown in your Prolific account."
    return "A participant ID uses letters, digits and . _ : @ - only (at most 128)."


def link_ids_problem(recruitment: Recruitment | None, ids: PanelIds) -> str | None:
    """Why the study and session ids the link carries are not the panel's, in words for the
    participant; None when they are (or the link has none). Prolific fills its STUDY_ID and
    SESSION_ID, 24 hexadecimal characters like the participant's id, into the same link:
    anything else was written by hand or altered. It is refused rather than dropped: nothing
    is stored, the participant is told to open the study from Prolific again (whose link
    carries the right ids), and nobody is recorded without the session Prolific knows their
    submission by.
    Other panels' ids are stored as given (within the field's length); every CSV that shows
    them neutralises what a spreadsheet would read as a formula."""
    if recruitment is None or recruitment.panel != "prolific":
        return None
    # Blanks around an id are dropped when it is stored (joining.evaluator_join), as here.
    wrong = [v for v in (ids.study.strip(), ids.session.strip()) if v and not PROLIFIC_ID.fullmatch(v)]
    if not wrong:
        return None
    if any(PLACEHOLDER.search(value) for value in wrong):
        return ("This link was not filled in by Prolific: it holds a placeholder where the study or session ID "
                "should be. Open the study again from Prolific itself.")
    return ("The study or session ID in this link is not one Prolific made (24 characters, digits 0-9 and "
            "letters a-f). Open the study again from Prolific itself.")


def return_link(study: Study, outcome: str) -> ReturnLink | None:
    """Where a participant goes back to the panel: ``outcome`` is "completion", or one of
    the protocol's "declined", "full", "closed"; None when the protocol gives neither a
    code nor a URL for it."""
    rec = recruitment_of(study)
    link: ReturnLink | None
    if outcome == "completion":
        link = ReturnLink(code=study.completion_code or None, url=rec.completion_url if rec else None)
    else:
        link = getattr(rec, outcome) if rec else None
    if link is None or (link.code is None and link.url is None):
        return None
    return link


def planned_tasks(*, study: Study, evaluator: Evaluator, tasks: dict[str, int] | None = None) -> int:
    """How many tasks the evaluator has, or (before consenting, when they hold no slot yet)
    will have: the length of the slot the next consent takes, else the longest slot.
    ``tasks``: the evaluator's entries by kind (``sqlreads.entry_tasks``), when the caller
    has read them. Before consent nobody has entries (consent makes them, in the same
    transaction that sets ``consented_at``), so they are not counted then."""
    if tasks is None and evaluator.consented_at is not None:
        tasks = sqlreads.entry_tasks(evaluator_id=evaluator.pk)
    n = sum(tasks.values()) if tasks else 0
    if n or evaluator.slot_id is not None:
        return n
    slot = sqlreads.free_slot(study_id=study.pk)
    if slot is None:
        slot = max(Slot.objects.filter(study=study), key=lambda s: len(s.items), default=None)
    return len(slot.items) if slot is not None else 0


def speed_rule(study: Study) -> float | None:
    """The protocol's speed rule: the least median seconds a task (None: no rule)."""
    proto = study.parsed_protocol
    return proto.analysis.exclusions.min_median_seconds if proto else None


def answer_times(evaluators: QuerySet[Evaluator]) -> dict[int, list[TaskTime]]:
    """Each of these evaluators' time on each task answered (a queryset of evaluators):
    the server's whole seconds and, of them, the seconds away."""
    times: dict[int, list[TaskTime]] = {}
    for model in (CountResponse, RankResponse):
        rows = model.objects.filter(evaluator__in=evaluators).values_list("evaluator_id", "seconds", "away_seconds")
        for evaluator_id, seconds, away in rows:
            times.setdefault(evaluator_id, []).append(TaskTime(seconds=float(seconds), away_seconds=float(away)))
    return times


def active_seconds(times: list[TaskTime]) -> list[float]:
    """Working time per task: the server's seconds less the time away."""
    return [t.seconds - t.away_seconds for t in times]


def too_fast(times: list[TaskTime], limit: float | None) -> bool:
    """Whether answers this fast break the speed rule, as evalstudy's exclusion reads it (the
    median over the tasks). Scripts and clickers break it; their times would tell newcomers,
    and the report's pay rate, that the study takes less time than it does.

    It reads the whole seconds, away included, as the exported ``seconds`` evalstudy reads:
    a pause never makes anyone fast, and a script sends no reports of time away, so taking
    away out would only let honest people who stepped away look faster than they were."""
    return limit is not None and bool(times) and statistics.median(t.seconds for t in times) < limit


def _finished_rates(finished: QuerySet[Evaluator], *, limit: float | None) -> list[float]:
    """Active seconds per task (away left out: a lunch break is no part of what a task takes)
    of each of these evaluators who answered something and is not too fast."""
    return [statistics.fmean(active_seconds(v)) for v in answer_times(finished).values()
            if v and not too_fast(v, limit)]


def time_estimate(*, study: Study, n_tasks: int) -> TimeEstimate | None:
    """Minutes for ``n_tasks`` tasks: the median active seconds per task (time away left out)
    of the people who finished
    and pass the protocol's speed rule (once RUNNING_MEDIAN_AFTER have), else the protocol's
    pilot figure; None without either.

    Every consent page shows it, so the median is computed once per number of finished
    participants (kept in the cache; a finished participant's answers no longer change),
    not over the study's answers on every page."""
    finished = Evaluator.objects.filter(study=study, finished_at__isnull=False, is_simulated=False)
    n_finished = sqlreads.finished_people(study_id=study.pk)  # finished.count(), in SQL made once
    median = None
    if n_finished >= RUNNING_MEDIAN_AFTER:
        # "active": a median of whole seconds, cached before time away was measured, is not read.
        key = f"fusion:active-seconds-per-task:{study.pk}:{study.protocol_hash}:{n_finished}"
        cached = cache.get(key)
        if cached is None:
            rates = _finished_rates(finished, limit=speed_rule(study))
            cached = (statistics.median(rates) if rates else None, len(rates))
            cache.set(key, cached, TIME_ESTIMATE_CACHE_SECONDS)
        median, n_rates = cached
    if median is not None and n_rates >= RUNNING_MEDIAN_AFTER:
        seconds, source = median, f"running median of {n_rates} participants"
    else:
        consent = consent_of(study)
        if consent is None or consent.pilot_seconds_per_task is None:
            return None
        seconds, source = consent.pilot_seconds_per_task, "pilot"
    return TimeEstimate(minutes=max(1, math.ceil(seconds * n_tasks / 60)), source=source)
