"""A study's live progress for researchers (progress.json, the dashboard, the run page):
evaluators, coverage, time, skips, gold, computed with aggregate queries (no response is
loaded into memory), typed as the JSON that dashboard.js reads (``ProgressJSON``)."""
from __future__ import annotations

import statistics
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from threading import Lock
from typing import Any, TypedDict, cast

from django.db import connection, models
from django.db.models import BooleanField, Count, ExpressionWrapper, F, Max, Q, Sum

from webapp.studies.models import CountResponse, Evaluator, Item, RankResponse, Slot, Study
from webapp.studies.selectors import evaluators_with_status

from .selectors import _fingerprint


@dataclass(frozen=True)
class _SlotPlan:
    """What the study's slots plan: per item id, how many slots hold it; the answers in all; the slots."""
    per_item: dict[int, int]
    answers: int
    slots: int


# The slots are written once, when the study opens (studies.lifecycle), and never change: their
# plan is read once per process and study opening (reading and decoding 758 slots' item lists
# took about 40 ms of progress.json's 188 ms in bench/results_update.py's 100,000-response
# study). A few studies' plans are kept, the least recently read dropped first.
_PLANS: OrderedDict[tuple[int, datetime], _SlotPlan] = OrderedDict()
_PLANS_KEPT = 16
_PLANS_LOCK = Lock()


def _slot_plan(study: Study) -> _SlotPlan:
    """The study's ``_SlotPlan``, from the slots as they are (a draft has none yet)."""
    key = (study.pk, study.opened_at) if study.opened_at is not None else None
    if key is not None:
        with _PLANS_LOCK:
            if key in _PLANS:
                _PLANS.move_to_end(key)
                return _PLANS[key]
    per_item: Counter[int] = Counter()
    answers = slots = 0
    for items in Slot.objects.filter(study=study).order_by().values_list("items", flat=True):
        per_item.update(items)
        answers += len(items)
        slots += 1
    plan = _SlotPlan(dict(per_item), answers, slots)
    if key is not None and slots:
        with _PLANS_LOCK:
            _PLANS[key] = plan
            while len(_PLANS) > _PLANS_KEPT:
                _PLANS.popitem(last=False)
    return plan


# A count answer to a gold image that counts toward gold accuracy: one with a number. A
# "can't tell" is no miscount (the can't-tell rate has its own rule); it is told by the
# missing number (the two go together: count_response_valid_answer), since "cant_tell" also
# names a tally below, which a filter beside it would read instead on SQLite.
GOLD_ANSWERED = Q(item__is_gold=True, answer__isnull=False)

# The answers' tallies, per evaluator and per item. Per evaluator: the aggregates named here,
# as SQL over the answer ``r`` and its item ``i``, and as the ORM's expressions. "seconds" is
# active time: each answer's time on task less the time its page reported its participant
# away (webapp/studies/away.py), as the participants page and the report read it.
_COUNT_TALLIES: dict[str, tuple[str, Any]] = {
    "n": ("COUNT(*)", Count("pk")),
    "seconds": ("SUM(r.{r[seconds]} - r.{r[away_seconds]})", Sum(F("seconds") - F("away_seconds"))),
    "cant_tell": ("COUNT(*) FILTER (WHERE r.{r[cant_tell]})", Count("pk", filter=Q(cant_tell=True))),
    "gold": ("COUNT(*) FILTER (WHERE i.{i[is_gold]} AND r.{r[answer]} IS NOT NULL)",  # GOLD_ANSWERED
             Count("pk", filter=GOLD_ANSWERED)),
    "gold_correct": ("COUNT(*) FILTER (WHERE i.{i[is_gold]} AND r.{r[answer]} = i.{i[true_count]})",
                     Count("pk", filter=Q(item__is_gold=True, answer=F("item__true_count")))),
    "last": ("MAX(r.{r[id]})", Max("pk")),
}
_RANK_TALLIES: dict[str, tuple[str, Any]] = {
    "n": ("COUNT(*)", Count("pk")),
    "seconds": ("SUM(r.{r[seconds]} - r.{r[away_seconds]})", Sum(F("seconds") - F("away_seconds"))),
    "skipped": ("COUNT(*) FILTER (WHERE r.{r[skipped]})", Count("pk", filter=Q(skipped=True))),
    "last": ("MAX(r.{r[id]})", Max("pk")),
}


@cache
def _grouping_sets_sql(model: type[models.Model]) -> str:
    """PostgreSQL: the tallies per evaluator and the answers per item in one pass over the answers."""
    qn = connection.ops.quote_name

    def columns(m: type[models.Model]) -> dict[str, str]:
        return {f.name: qn(cast(str, f.column)) for f in m._meta.concrete_fields}

    r, i = columns(model), columns(Item)
    aggregates = ", ".join(sql.format(r=r, i=i) for sql, _ in _tallies(model).values())
    by_evaluator, by_item = f"r.{r['evaluator']}", f"r.{r['item']}"
    return (f"SELECT GROUPING({by_evaluator}), {by_evaluator}, {by_item}, {aggregates} "
            f"FROM {qn(model._meta.db_table)} r JOIN {qn(Item._meta.db_table)} i ON i.{i['id']} = {by_item} "
            f"WHERE i.{i['study']} = %s GROUP BY GROUPING SETS (({by_evaluator}), ({by_item}))")


def _tallies(model: type[models.Model]) -> dict[str, tuple[str, Any]]:
    return _COUNT_TALLIES if model is CountResponse else _RANK_TALLIES


def _answer_tallies(model: type[models.Model], study: Study) -> tuple[dict[int, dict[str, Any]], Counter[int]]:
    """Per evaluator, the tallies of their answers of this kind (``_COUNT_TALLIES`` or
    ``_RANK_TALLIES``); per item, its answers (an evaluator has one entry per item,
    ``entry_unique_item``, and one answer per entry: the answers are the evaluators).
    PostgreSQL reads both in one pass (GROUPING SETS); SQLite, which has none, in two queries."""
    tallies = _tallies(model)
    names = tuple(tallies)
    per_evaluator: dict[int, dict[str, Any]] = {}
    per_item: Counter[int] = Counter()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_grouping_sets_sql(model), [study.pk])
            for by_item, evaluator_id, item_id, *values in cursor.fetchall():
                if by_item:
                    per_item[item_id] = values[0]
                else:
                    per_evaluator[evaluator_id] = dict(zip(names, values, strict=True))
        return per_evaluator, per_item
    answers = model._default_manager.filter(item__study=study)
    for row in answers.values("evaluator_id").annotate(**{k: v[1] for k, v in tallies.items()}).order_by():
        per_evaluator[row.pop("evaluator_id")] = row
    per_item.update(dict(answers.values("item_id").annotate(n=Count("pk")).order_by().values_list("item_id", "n")))
    return per_evaluator, per_item


def _rate(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


class EvaluatorProgress(TypedDict):
    """One evaluator's line of ``study_progress``: times in seconds, rates in [0, 1] (None
    where nothing was answered to divide by), datetimes as ISO 8601 strings."""
    pseudonym: str
    simulated: bool
    joined_at: str
    finished_at: str | None
    status: str  # an EvaluatorStatus value: "finished", "declined", "abandoned", "active" or "consenting"
    answered: int
    planned: int
    seconds: float
    mean_seconds: float | None
    ranking_skip_rate: float | None
    task_skip_rate: float | None
    cant_tell_rate: float | None
    gold_answered: int
    gold_accuracy: float | None


class EvaluatorCounts(TypedDict):
    """How many evaluators have reached each step (``study_progress["evaluators"]``)."""
    slots: int
    joined: int  # opened the invite link
    consented: int
    started: int  # past the instructions, or with an answer given (simulated raters skip the pages)
    declined: int
    finished: int
    abandoned: int
    simulated: int


class TaskCoverage(TypedDict):
    """One kind of task's planned items and how far their planned answers are given."""
    items: int
    covered: int  # items with every planned answer
    answers: int  # answers given, at most the planned number per item
    planned_answers: int


class ItemsProgress(TypedDict):
    planned_overlap: int | None  # the protocol's evaluators per item (None without one)
    planned: int
    started: int  # items with at least one answer
    covered: int
    by_task: dict[str, TaskCoverage]  # "count", "rank"


class TimeProgress(TypedDict):
    seconds_total: float
    mean_seconds_per_answer: float | None
    median_seconds_per_finished_evaluator: float | None


class StudyProgress(TypedDict):
    """``study_progress``: what the dashboard shows and dashboard.js reads from progress.json
    (webapp/research/static/research/dashboard.js). Rates are in [0, 1], None where there
    is nothing to divide by; times in seconds."""
    study: str
    status: str
    responses: int
    count_responses: int
    rank_responses: int
    answers_planned: int
    answers_toward_plan: int   # at most each planned item's planned answers (a refilled place's are extra)
    evaluators: EvaluatorCounts
    items: ItemsProgress
    time: TimeProgress
    ranking_skip_rate: float | None
    task_skip_rate: float | None
    cant_tell_rate: float | None
    gold_accuracy: float | None
    per_evaluator: list[EvaluatorProgress]


class ResultsStatus(TypedDict):
    """progress.json's ``results``: the newest stored result and whether it is current."""
    id: int | None
    n_responses: int | None
    current: bool
    update: dict | None  # results_update_status


class ProgressJSON(StudyProgress):
    """The document progress.json sends: ``study_progress`` and the results' status."""
    results: ResultsStatus


def study_progress(*, study: Study) -> StudyProgress:
    """Live progress of a study as JSON-ready data: evaluators, coverage, time, skips, gold.

    Per evaluator: answers given and planned, seconds on task (sum and mean per answer),
    the ranking and task skip rates, the count "can't tell" rate and the accuracy on gold items.
    """
    return study_progress_and_fingerprint(study=study)[0]


def study_progress_and_fingerprint(*, study: Study, include_simulated: bool = False) -> tuple[StudyProgress, str]:
    """``study_progress`` and ``responses_fingerprint(include_simulated=...)[0]``, the latter
    from the same per-evaluator counts (no second pass over the answers)."""
    # Consent and start are read as yes/no (the database says; no datetime to parse per evaluator).
    evaluators = list(
        evaluators_with_status(Evaluator.objects.filter(study=study))
        .annotate(consented=ExpressionWrapper(Q(consented_at__isnull=False), output_field=BooleanField()),
                  started=ExpressionWrapper(Q(started_at__isnull=False), output_field=BooleanField()))
        .order_by("joined_at", "pk")
        .values("pk", "pseudonym", "is_simulated", "joined_at", "consented", "started", "finished_at", "status",
                "planned_tasks")
    )
    counts, count_per_item = _answer_tallies(CountResponse, study)
    ranks, rank_per_item = _answer_tallies(RankResponse, study)
    # An evaluator without answers of a kind: the counts are 0; seconds are summed as floats below.
    empty_c: dict[str, int] = {"n": 0, "seconds": 0, "cant_tell": 0, "gold": 0, "gold_correct": 0}
    empty_r: dict[str, int] = {"n": 0, "seconds": 0, "skipped": 0}
    rows: list[EvaluatorProgress] = []
    for ev in evaluators:
        c, r = counts.get(ev["pk"], empty_c), ranks.get(ev["pk"], empty_r)
        answered = c["n"] + r["n"]
        seconds = (c["seconds"] or 0.0) + (r["seconds"] or 0.0)
        rows.append({
            "pseudonym": ev["pseudonym"],
            "simulated": ev["is_simulated"],
            "joined_at": ev["joined_at"].isoformat(),
            "finished_at": ev["finished_at"].isoformat() if ev["finished_at"] else None,
            "status": ev["status"],
            "answered": answered,
            "planned": ev["planned_tasks"],
            "seconds": seconds,
            "mean_seconds": _rate(seconds, answered),
            # Two rates, two names: skipped rankings of the rankings given, and skipped tasks of
            # all tasks given (a count is never skipped), which the exclusion rule reads.
            "ranking_skip_rate": _rate(r["skipped"], r["n"]),
            "task_skip_rate": _rate(r["skipped"], r["n"] + c["n"]),
            "cant_tell_rate": _rate(c["cant_tell"], c["n"]),
            "gold_answered": c["gold"],
            "gold_accuracy": _rate(c["gold_correct"], c["gold"]),
        })

    plan = _slot_plan(study)
    planned = plan.per_item
    originals = dict(Item.objects.filter(study=study, repeat_of__isnull=True).values_list("pk", "task"))
    answered_by_item = count_per_item + rank_per_item  # repeats among them are never read: originals only
    in_plan = [pk for pk in originals if planned.get(pk, 0) > 0]
    covered = sum(1 for pk in in_plan if answered_by_item[pk] >= planned[pk])
    started = sum(1 for pk in in_plan if answered_by_item[pk] > 0)
    by_task: dict[str, TaskCoverage] = {}
    for task in (Item.Task.COUNT, Item.Task.RANK):
        pks = [pk for pk in in_plan if originals[pk] == task]
        by_task[task.value] = {
            "items": len(pks),
            "covered": sum(1 for pk in pks if answered_by_item[pk] >= planned[pk]),
            "answers": sum(min(answered_by_item[pk], planned[pk]) for pk in pks),
            "planned_answers": sum(planned[pk] for pk in pks),
        }

    # A place given up and refilled is answered again from its first task: the leaver's answers
    # are kept (and analysed) but beyond the plan, so the plan's progress caps each item.
    toward_plan = sum(min(answered_by_item[pk], n) for pk, n in planned.items())
    n_count = sum(c["n"] for c in counts.values())
    n_rank = sum(r["n"] for r in ranks.values())
    finished_seconds = [row["seconds"] for row in rows if row["status"] == "finished"]
    gold_answered = sum(c["gold"] for c in counts.values())
    protocol = study.parsed_protocol
    overlap = protocol.evaluators.overlap if protocol is not None else None
    # The fingerprint's counts, from the per-evaluator rows (every answer is of its evaluator's study).
    counted = {ev["pk"] for ev in evaluators if include_simulated or not ev["is_simulated"]}
    fingerprint = _fingerprint(
        study, include_simulated,
        sum(c["n"] for pk, c in counts.items() if pk in counted),
        max((c["last"] for pk, c in counts.items() if pk in counted), default=None),
        sum(r["n"] for pk, r in ranks.items() if pk in counted),
        max((r["last"] for pk, r in ranks.items() if pk in counted), default=None))
    progress: StudyProgress = {
        "study": study.slug,
        "status": study.status,
        "responses": n_count + n_rank,
        "count_responses": n_count,
        "rank_responses": n_rank,
        "answers_planned": plan.answers,
        "answers_toward_plan": toward_plan,
        "evaluators": {
            "slots": plan.slots,
            # Opened the invite link; agreed to take part; began the tasks (past the
            # instructions, or with an answer given: simulated raters skip the pages).
            "joined": len(rows),
            "consented": sum(1 for ev in evaluators if ev["consented"]),
            "started": sum(1 for ev, row in zip(evaluators, rows, strict=True)
                           if ev["started"] or row["answered"]),
            "declined": sum(1 for row in rows if row["status"] == "declined"),
            "finished": sum(1 for row in rows if row["status"] == "finished"),
            "abandoned": sum(1 for row in rows if row["status"] == "abandoned"),
            "simulated": sum(1 for row in rows if row["simulated"]),
        },
        "items": {
            "planned_overlap": overlap,
            "planned": len(in_plan),
            "started": started,
            "covered": covered,
            "by_task": by_task,
        },
        "time": {
            "seconds_total": sum(row["seconds"] for row in rows),
            "mean_seconds_per_answer": _rate(sum(row["seconds"] for row in rows), n_count + n_rank),
            "median_seconds_per_finished_evaluator": (statistics.median(finished_seconds)
                                                      if finished_seconds else None),
        },
        "ranking_skip_rate": _rate(sum(r["skipped"] for r in ranks.values()), n_rank),
        "task_skip_rate": _rate(sum(r["skipped"] for r in ranks.values()), n_rank + n_count),
        "cant_tell_rate": _rate(sum(c["cant_tell"] for c in counts.values()), n_count),
        "gold_accuracy": _rate(sum(c["gold_correct"] for c in counts.values()), gold_answered),
        "per_evaluator": rows,
    }
    return progress, fingerprint
