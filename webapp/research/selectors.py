"""Reads for researchers: their studies, their stored results, the rows of an export
(a study's live progress is in ``progress.py``).

Nothing here loads a study's responses into memory at once. Export rows come in pages of
flat ``values_list`` queries (keyset pagination on the primary key, see ``_keyset_pages``),
joined in Python with the study's items and images, whose number is fixed by the design, not by the responses.
"""
from __future__ import annotations

import hashlib
import statistics
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Max, Q, QuerySet, Sum

from evalstudy.analysis.result import SCHEMA_VERSION, AnalysisResult
from evalstudy.protocol import AnalysisPlan
from webapp.studies import recruitment
from webapp.studies.models import CountResponse, Entry, Evaluator, Image, Item, RankResponse, Study
from webapp.studies.selectors import EvaluatorStatus, evaluators_with_status, user_is_admin, user_may_see_study

from .models import ResultFigure, ResultsUpdate, StudyResult

EXPORT_CHUNK_SIZE = 5000
FIRST_PAGE = 1000  # rows of an export's first page (see _keyset_pages)

# --------------------------------------------------------------------------- studies


def researcher_studies(*, user: User | AnonymousUser) -> QuerySet[Study]:
    """The studies a user may see as a researcher: their own; every study for admins."""
    if not user.is_authenticated:
        return Study.objects.none()
    qs = Study.objects.all() if user_is_admin(user=user) else Study.objects.filter(researchers=user)
    return qs.annotate(
        n_evaluators=Count("evaluators", distinct=True),
        n_finished=Count("evaluators", filter=Q(evaluators__finished_at__isnull=False), distinct=True),
    ).order_by("-created_at")


def researcher_study(*, user: User | AnonymousUser, slug: str) -> Study | None:
    """The study, if this user may see it as a researcher; None otherwise (also if it does not exist)."""
    study = Study.objects.filter(slug=slug).first()
    if study is None or not user_may_see_study(user=user, study=study):
        return None
    return study


# --------------------------------------------------------------------------- protocol


def analysis_settings(*, study: Study) -> tuple[int, int]:
    """(n_boot, seed) of the analysis: the protocol's plan, else evalstudy's defaults.

    ``settings.FUSION_RESULTS_N_BOOT``, when set, overrides the number of resamples (tests
    and quick looks; a report states the number it used).
    """
    protocol = study.parsed_protocol
    plan = protocol.analysis if protocol is not None else AnalysisPlan()  # evalstudy's defaults
    n_boot, seed = plan.n_boot, plan.seed
    override = getattr(settings, "FUSION_RESULTS_N_BOOT", None)
    return (int(override) if override else n_boot), seed


# --------------------------------------------------------------------------- results


# Either kind of answer: `_answers` returns a queryset of the model it is given.
AnswerT = TypeVar("AnswerT", CountResponse, RankResponse)


def _answers(model: type[AnswerT], study: Study, include_simulated: bool) -> QuerySet[AnswerT]:
    """A study's answers of one kind; simulated evaluators' only when asked for (dry runs)."""
    qs = model.objects.filter(item__study=study)
    return qs if include_simulated else qs.filter(evaluator__is_simulated=False)


def responses_fingerprint(*, study: Study, include_simulated: bool = False) -> tuple[str, int]:
    """(fingerprint, number of responses) of the study's answers as they stand now (people's
    only, unless ``include_simulated``)."""
    c = _answers(CountResponse, study, include_simulated).aggregate(n=Count("pk"), last=Max("pk"))
    r = _answers(RankResponse, study, include_simulated).aggregate(n=Count("pk"), last=Max("pk"))
    return _fingerprint(study, include_simulated, c["n"], c["last"], r["n"], r["last"]), c["n"] + r["n"]


def _fingerprint(study: Study, include_simulated: bool, n_count: int, last_count: int | None, n_rank: int,
                 last_rank: int | None) -> str:
    """The responses' state as a hash: their numbers and newest ids, per kind of answer."""
    # The schema version too: a result evalstudy would write differently is not the same state.
    state = f"{study.pk}:{study.protocol_hash}:{n_count}:{last_count}:{n_rank}:{last_rank}:{SCHEMA_VERSION}"
    if include_simulated:
        state += ":simulated"
    return hashlib.sha256(state.encode()).hexdigest()


def _readable_results(study: Study) -> QuerySet[StudyResult]:
    """Stored results this evalstudy can read: one written under another schema version is
    ignored (the next "Update results" replaces it)."""
    return StudyResult.objects.filter(study=study, result__schema_version=SCHEMA_VERSION)


def study_result_cached(*, study: Study, fingerprint: str, n_boot: int, seed: int) -> StudyResult | None:
    return _readable_results(study).filter(fingerprint=fingerprint, n_boot=n_boot, seed=seed).first()


def study_result_latest(*, study: Study) -> StudyResult | None:
    """The newest readable result; its document (``result``, large) is read only when used:
    the pages build the typed result once per process (study_result_analysis)."""
    return _readable_results(study).defer("result").order_by("-computed_at", "-pk").first()


@dataclass(frozen=True)
class StoredResult:
    """What a page shows of a study's results without computing: the newest stored result
    (None when there is none), whether responses arrived since it was computed, and the
    newest "Update results" (running, or failed with the reason)."""
    result: StudyResult | None
    current: bool
    n_responses: int  # responses stored now
    update: ResultsUpdate | None

    @property
    def stale(self) -> bool:
        return self.result is not None and not self.current


def study_result_stored(*, study: Study) -> StoredResult:
    """The newest stored result and how it stands against the responses now; never computes.

    A few indexed queries whatever the number of responses: a COUNT and a MAX per answer table,
    the newest result row (its document and figures are read only by the caller that needs them)
    and the newest update.
    """
    result = study_result_latest(study=study)
    # A dry run's result (simulated evaluators included) is compared with the same answers.
    fingerprint, n_responses = responses_fingerprint(
        study=study, include_simulated=result is not None and result.includes_simulated)
    return StoredResult(result=result, current=result is not None and result.fingerprint == fingerprint,
                        n_responses=n_responses, update=results_update_latest(study=study))


def results_update_latest(*, study: Study) -> ResultsUpdate | None:
    return ResultsUpdate.objects.filter(study=study).order_by("-requested_at", "-pk").first()


def results_update_status(*, study: Study) -> dict | None:
    """The newest "Update results" as JSON-ready data for the dashboard's progress line."""
    update = results_update_latest(study=study)
    if update is None:
        return None
    return {"id": update.pk, "state": update.state, "stage": update.stage, "message": update.message,
            "requested_at": update.requested_at.isoformat(),
            "finished_at": update.finished_at.isoformat() if update.finished_at else None}


# Stored results never change (a new state of the responses is a new row), so each process
# builds a result's typed form once: from_dict costs tens of ms at any size, on every page
# that shows the result otherwise. Keyed by what identifies the row's content, not the pk
# alone (a database that reuses ids, such as SQLite after a rollback, would mix them up).
_ANALYSES: OrderedDict[tuple, AnalysisResult] = OrderedDict()
_ANALYSES_LOCK = threading.Lock()
ANALYSES_KEPT = 8  # per process: a few studies' newest results


def study_result_analysis(*, result: StudyResult) -> AnalysisResult:
    """The stored document as evalstudy's typed result (built once per result and process)."""
    key = (result.pk, result.fingerprint, result.n_boot, result.seed, result.computed_at)
    with _ANALYSES_LOCK:
        analysis = _ANALYSES.get(key)
        if analysis is not None:
            _ANALYSES.move_to_end(key)
            return analysis
    analysis = AnalysisResult.from_dict(result.result)
    with _ANALYSES_LOCK:
        _ANALYSES[key] = analysis
        while len(_ANALYSES) > ANALYSES_KEPT:
            _ANALYSES.popitem(last=False)
    return analysis


def result_figure(*, result: StudyResult, name: str, fmt: str) -> ResultFigure | None:
    return ResultFigure.objects.filter(result=result, name=name, format=fmt).first()


def result_figure_names(*, result: StudyResult) -> list[str]:
    return list(result.figures.filter(format=ResultFigure.Format.PNG).order_by("name").values_list("name", flat=True))


# --------------------------------------------------------------------------- export rows


@dataclass(frozen=True)
class ItemInfo:
    key: str
    task: str
    variant: str
    prompt: str
    object: str
    true_count: int | None
    is_gold: bool
    image_id: int | None
    seed: int
    repeat_of: str


@dataclass(frozen=True)
class ImageInfo:
    public_id: str
    variant: str
    auto_count: int | None
    provenance: dict | None


def export_items(*, study: Study) -> dict[int, ItemInfo]:
    """The study's items by primary key (as many as the design plans, whatever the responses)."""
    out = {}
    for pk, key, task, variant, prompt, obj, true_count, prompt_count, is_gold, image_id, seed, repeat_of in (
        Item.objects.filter(study=study).values_list(
            "pk", "key", "task", "variant__name", "prompt__text", "prompt__object", "true_count", "prompt__count",
            "is_gold", "image_id", "seed", "repeat_of__key",
        ).order_by()
    ):
        out[pk] = ItemInfo(
            key=key, task=task, variant=variant or "", prompt=prompt, object=obj or "",
            true_count=true_count if true_count is not None else (prompt_count if task == Item.Task.COUNT else None),
            is_gold=is_gold, image_id=image_id, seed=seed, repeat_of=repeat_of or "",
        )
    return out


def export_images(*, study: Study, with_provenance: bool = False) -> dict[int, ImageInfo]:
    """The study's images by primary key; provenance only when asked for (JSON Lines)."""
    fields = ["pk", "public_id", "variant__name", "auto_count"] + (["provenance"] if with_provenance else [])
    out = {}
    for row in Image.objects.filter(study=study).values_list(*fields).order_by():
        out[row[0]] = ImageInfo(public_id=row[1], variant=row[2] or "", auto_count=row[3],
                                provenance=row[4] if with_provenance else None)
    return out


@dataclass(frozen=True)
class JudgeOnlyImage:
    """An image read by the automatic judge only (the protocol's ``analysis.judge_images_per_cell``)."""

    pk: int
    key: str  # its item id in the responses: ``judge:<variant>:<object>:<count>[:<colour>]:<seed>``
    variant: str
    prompt: str
    object: str
    true_count: int
    seed: int
    public_id: str
    auto_count: int


def judge_only_images(*, study: Study) -> list[JudgeOnlyImage]:
    """The study's judge-only images that the judge has read, by variant, prompt and seed.

    Their number is fixed by the protocol (cells x variants x k), not by the responses."""
    rows = (Image.objects.filter(study=study, judge_only=True, auto_count__isnull=False)
            .order_by("variant__index", "prompt_id", "seed")
            .values_list("pk", "variant__name", "prompt__text", "prompt__object", "prompt__count", "prompt__colour",
                         "seed", "public_id", "auto_count"))
    out = []
    for pk, variant, prompt, obj, count, colour, seed, public_id, auto_count in rows:
        if count is None or auto_count is None:  # (never: a count prompt has a count; the query needs auto_count)
            continue
        colour_part = f":{colour}" if colour else ""
        out.append(JudgeOnlyImage(
            pk=pk, key=f"judge:{variant}:{obj}:{count}{colour_part}:{seed}", variant=variant, prompt=prompt, object=obj,
            true_count=count, seed=seed, public_id=public_id, auto_count=auto_count,
        ))
    return out


COUNT_FIELDS = ("item_id", "evaluator__pseudonym", "answer", "cant_tell", "seconds", "away_seconds")
# A ranking's columns are laid out for the widest; split_rank_row keeps the ``width`` shown.
RANK_FIELDS = ("item_id", "evaluator__pseudonym", "width", "skipped", "skip_reason", "seconds", "away_seconds",
               *(f"{f}_id" for f in RankResponse.IMAGE_FIELDS), *RankResponse.RANK_FIELDS)
EXTENDED_FIELDS = ("created_at", "evaluator__external_id", "evaluator__is_simulated")


def _keyset_pages(qs: QuerySet, fields: tuple[str, ...], chunk_size: int) -> Iterator[tuple]:
    """``qs.values_list(*fields)`` in primary-key order, read a page of ``chunk_size`` rows at
    a time (``pk > last`` ... LIMIT): each page is a short walk of the primary key's index, so
    the first rows come at once whatever the size of the study. (A server-side cursor outside
    a transaction is declared WITH HOLD, and PostgreSQL runs such a query to its end before
    the first row.) Answers stored while the pages are read join the stream if they sort after
    the last row read: nothing is stored twice or changed, so no row is repeated or lost.
    The first pages are smaller (FIRST_PAGE, doubling up to ``chunk_size``): a download starts
    after a few hundred rows, not after thousands."""
    last, size = None, min(FIRST_PAGE, chunk_size)
    while True:
        page = qs.filter(pk__gt=last) if last is not None else qs
        rows = list(page.order_by("pk").values_list("pk", *fields)[:size])
        for row in rows:
            yield row[1:]
        if len(rows) < size:
            return
        last, size = rows[-1][0], min(2 * size, chunk_size)


def count_answer_values(*, study: Study, extended: bool = False, include_simulated: bool = False,
                        chunk_size: int = EXPORT_CHUNK_SIZE) -> Iterator[tuple]:
    """Tuples of COUNT_FIELDS (+ EXTENDED_FIELDS), one per count answer, in answer order, streamed
    in pages of ``chunk_size``; simulated evaluators' answers only with ``include_simulated``."""
    fields = COUNT_FIELDS + (EXTENDED_FIELDS if extended else ())
    return _keyset_pages(_answers(CountResponse, study, include_simulated), fields, chunk_size)


def rank_answer_values(*, study: Study, extended: bool = False, include_simulated: bool = False,
                       chunk_size: int = EXPORT_CHUNK_SIZE) -> Iterator[tuple]:
    """Tuples of RANK_FIELDS (+ EXTENDED_FIELDS), one per ranking or skip, in answer order, streamed
    in pages of ``chunk_size``; simulated evaluators' answers only with ``include_simulated``."""
    fields = RANK_FIELDS + (EXTENDED_FIELDS if extended else ())
    return _keyset_pages(_answers(RankResponse, study, include_simulated), fields, chunk_size)


@dataclass(frozen=True)
class RankRow:
    """One ranking or skip, as rank_answer_values streams it: the image ids and ranks in
    screen order (one per image shown; every rank None for a skip)."""

    item_id: int
    pseudonym: str
    image_ids: tuple[int, ...]
    ranks: tuple[int | None, ...]
    skipped: bool
    skip_reason: str
    seconds: float
    away_seconds: float
    extended: tuple  # EXTENDED_FIELDS' values when asked for, else ()


def split_rank_row(row: tuple) -> RankRow:
    """A tuple of RANK_FIELDS (+ EXTENDED_FIELDS) as a RankRow, cut to its width."""
    item_id, pseudonym, width, skipped, skip_reason, seconds, away_seconds = row[:7]
    n = len(RankResponse.IMAGE_FIELDS)
    images, ranks = row[7:7 + n], row[7 + n:7 + 2 * n]
    return RankRow(item_id=item_id, pseudonym=pseudonym, image_ids=tuple(images[:width]), ranks=tuple(ranks[:width]),
                   skipped=skipped, skip_reason=skip_reason, seconds=seconds, away_seconds=away_seconds,
                   extended=tuple(row[7 + 2 * n:]))


def study_evaluator_summary(*, study: Study) -> dict:
    """Who took part, for the report: numbers of evaluators and their time on task."""
    # Statuses as the dashboard and the participants page count them (one derivation).
    evaluators = evaluators_with_status(Evaluator.objects.filter(study=study))
    agg = evaluators.aggregate(
        joined=Count("pk"), consented=Count("pk", filter=Q(consented_at__isnull=False)),
        finished=Count("pk", filter=Q(status=EvaluatorStatus.FINISHED)),
        declined=Count("pk", filter=Q(status=EvaluatorStatus.DECLINED)),
        abandoned=Count("pk", filter=Q(status=EvaluatorStatus.ABANDONED)),
        simulated=Count("pk", filter=Q(is_simulated=True)),
        with_external_id=Count("pk", filter=~Q(external_id="")),
        finished_pks=Sum("pk", filter=Q(finished_at__isnull=False)),
        last_finished=Max("finished_at"),
    )
    # Which evaluators have finished, told apart by their number, the sum of their ids and the
    # newest finish: a finished evaluator's answers and tasks no longer change (every task is
    # answered, one answer per task), so their time on task is read once per such state.
    key = (study.pk, agg["finished"], agg.pop("finished_pks"), agg.pop("last_finished"))
    with _FINISHED_LOCK:
        times = _FINISHED_TIMES.get(key)
    if times is None:
        times = _finished_time_on_task(study)
        with _FINISHED_LOCK:
            _FINISHED_TIMES[key] = times
            while len(_FINISHED_TIMES) > ANALYSES_KEPT:
                _FINISHED_TIMES.popitem(last=False)
    agg.update(times)
    return agg


_FINISHED_TIMES: OrderedDict[tuple, dict] = OrderedDict()
_FINISHED_LOCK = threading.Lock()


def _finished_time_on_task(study: Study) -> dict:
    """The finished participants' active minutes on task (median, range; time away left
    out), tasks (median), and minutes in the study (median): from consent to the last answer,
    which is when the finish is stamped (in the last answer's own transaction). Participants:
    simulated evaluators are left out, as the participants page leaves them out, and so are
    those too fast for the speed rule; ``finished_left_out`` counts them."""
    # Every finished evaluator's time per task, read once: the sum of its active part (time
    # away left out) is the time on tasks, the median of the whole what the speed rule reads.
    finished = Evaluator.objects.filter(study=study, finished_at__isnull=False)
    times = recruitment.answer_times(finished)
    limit = recruitment.speed_rule(study)
    fast = {e for e, per_task in times.items() if recruitment.too_fast(per_task, limit)}
    rows = list(finished.values_list("pk", "is_simulated", "consented_at", "finished_at"))
    real = {pk for pk, simulated, _, _ in rows if not simulated and pk not in fast}
    minutes = sorted(sum(recruitment.active_seconds(per_task)) / 60 for e, per_task in times.items() if e in real)
    planned = Entry.objects.filter(evaluator__study=study, evaluator__finished_at__isnull=False).values(
        "evaluator_id").annotate(n=Count("pk")).order_by().values_list("n", flat=True)
    tasks = sorted(planned)
    # Consent, the instructions and the practice item are time in the study too: a panel
    # (Prolific) computes the hourly rate from the whole submission, not from the tasks.
    # Those who break the protocol's speed rule (scripts, clickers) are left out of it: a few
    # would make the study look better paid than it is.
    in_study = [(done - consented).total_seconds() / 60 for pk, _, consented, done in rows
                if pk in real and consented is not None and done is not None]
    return {
        "median_minutes_in_study_finished": statistics.median(in_study) if in_study else None,
        "median_minutes_finished": statistics.median(minutes) if minutes else None,
        "min_minutes_finished": minutes[0] if minutes else None,
        "max_minutes_finished": minutes[-1] if minutes else None,
        "median_tasks_per_evaluator": statistics.median(tasks) if tasks else None,
        "finished_left_out": len(rows) - len(real),
    }


def auto_counter_by_variant(*, study: Study) -> dict[str, dict]:
    """The automatic counter on the study's count images (not gold), per variant: how many
    images it read, its mean absolute error and its match ratio against the requested count."""
    rows = (Item.objects.filter(study=study, task=Item.Task.COUNT, is_gold=False, repeat_of__isnull=True,
                                image__auto_count__isnull=False)
            .values_list("variant__name", "image__auto_count", "true_count", "prompt__count").order_by())
    acc: dict[str, list[int]] = {}
    for variant, auto, true_count, prompt_count in rows:
        truth = true_count if true_count is not None else prompt_count
        if truth is None or auto is None:  # (auto is never None: the query leaves those images out)
            continue
        a = acc.setdefault(variant, [0, 0, 0])
        a[0] += 1
        a[1] += abs(auto - truth)
        a[2] += auto == truth
    return {v: {"n_images": n, "mean_abs_error": err / n, "match_ratio": hit / n} for v, (n, err, hit) in acc.items()}
