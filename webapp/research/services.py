"""Writes for researchers: analyses stored once per state of the responses, report details,
simulated evaluators for dry runs, and exports written to files.

Keyword-only, typed; database writes are atomic.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from evalstudy.analysis import AnalysisResult, analyze
from evalstudy.figures import render_figures
from evalstudy.simulate import COUNT_SECONDS, RANK_SECONDS, RaterSimulator
from webapp.studies import flow as study_flow
from webapp.studies import joining
from webapp.studies.models import Entry, Evaluator, Item, RankResponse, Study, Variant
from webapp.studies.selectors import entry_images, study_ranking

from . import exports, reports, selectors
from .models import ReportDetails, ResultFigure, ResultsUpdate, StudyResult

KEEP_RESULTS = 3  # per study; older analyses are deleted when a new one is stored


class ResearchError(Exception):
    """A research operation that cannot be done as asked; the message says why."""


# --------------------------------------------------------------------------- results


def _analyse(*, study: Study, n_boot: int, seed: int, include_simulated: bool = False) -> AnalysisResult:
    """evalstudy's analysis of the study's responses as the CSV export writes them.

    The table is built from the export's rows (``exports.response_table``) holding what
    ``read_responses`` reads back from the export's text, so the numbers shown equal those
    that ``python -m evalstudy analyze`` prints for a downloaded export.
    """
    try:
        protocol = study.parsed_protocol
        table = exports.response_table(study=study, include_simulated=include_simulated,
                                       variants=protocol.variants if protocol else None,
                                       allow_ties=bool(protocol and protocol.allow_ties))
        return analyze(table, protocol=protocol, n_boot=n_boot, seed=seed, exclusions=True)
    except ValueError as exc:
        # e.g. a variant the protocol does not know: nothing can be shown.
        raise ResearchError(f"The responses cannot be analysed yet: {exc}") from exc


def _figures(result: AnalysisResult) -> list[ResultFigure]:
    """The result's figures, drawn in memory, in file-name order."""
    return [ResultFigure(name=fig.name, format=fig.format, content=fig.content)
            for fig in sorted(render_figures(result), key=lambda fig: fig.filename)
            if fig.format in ResultFigure.Format.values]


def _no_progress(stage: str) -> None:
    """Where a caller does not follow the stages."""


def study_result_get_or_compute(*, study: Study, n_boot: int | None = None, seed: int | None = None,
                                progress: Callable[[str], None] = _no_progress,
                                include_simulated: bool = False) -> StudyResult | None:
    """The analysis of the study's current responses: the stored one when nothing has changed
    since it was computed, else a new one (with its figures). None when there are no responses;
    ResearchError when evalstudy cannot analyse them. ``progress`` hears each stage's name.

    People's answers only, unless ``include_simulated`` (a dry run): then simulated
    evaluators' answers count too, their ids are prefixed ``simulated-`` in the analysis,
    and the stored result says so (``includes_simulated``), for the pages to label it."""
    plan_boot, plan_seed = selectors.analysis_settings(study=study)
    n_boot = plan_boot if n_boot is None else n_boot
    seed = plan_seed if seed is None else seed
    fingerprint, n_responses = selectors.responses_fingerprint(study=study, include_simulated=include_simulated)
    if n_responses == 0:
        return None
    cached = selectors.study_result_cached(study=study, fingerprint=fingerprint, n_boot=n_boot, seed=seed)
    if cached is not None:
        return cached
    started = time.perf_counter()
    progress(f"analysing {n_responses} responses with {n_boot} bootstrap resamples")
    result = _analyse(study=study, n_boot=n_boot, seed=seed, include_simulated=include_simulated)
    progress("drawing the figures")
    figures = _figures(result)
    seconds = time.perf_counter() - started
    progress("storing the results")
    try:
        with transaction.atomic():
            stored = StudyResult.objects.create(
                study=study, fingerprint=fingerprint, n_responses=n_responses, n_boot=n_boot, seed=seed,
                result=result.to_dict(), seconds=seconds, includes_simulated=include_simulated,
            )
            for fig in figures:
                fig.result = stored
            ResultFigure.objects.bulk_create(figures)
    except IntegrityError:
        # Another request computed the same state meanwhile; its result is the same numbers.
        return selectors.study_result_cached(study=study, fingerprint=fingerprint, n_boot=n_boot, seed=seed)
    stale = (StudyResult.objects.filter(study=study).order_by("-computed_at", "-pk")
             .values_list("pk", flat=True)[KEEP_RESULTS:])
    StudyResult.objects.filter(pk__in=list(stale)).delete()
    return stored


# --------------------------------------------------------------------------- "Update results" as a task


def results_update_request(*, study: Study, include_simulated: bool = False) -> tuple[ResultsUpdate, bool]:
    """Queue an update of the study's results, unless one is waiting or running already:
    (the update, whether it is new). The task is sent once the row is committed.
    ``include_simulated``: as in ``study_result_get_or_compute``."""
    from .tasks import results_update  # the task module imports this one

    with transaction.atomic():
        active = ResultsUpdate.objects.select_for_update().filter(study=study, state__in=ResultsUpdate.ACTIVE).first()
        if active is not None:
            return active, False
        try:
            with transaction.atomic():
                update = ResultsUpdate.objects.create(study=study, include_simulated=include_simulated)
        except IntegrityError:  # another request queued one meanwhile
            return ResultsUpdate.objects.get(study=study, state__in=ResultsUpdate.ACTIVE), False
        results_update.delay_on_commit(update.pk)
    return update, True


def _update_set(update_id: int, **fields: object) -> None:
    ResultsUpdate.objects.filter(pk=update_id).update(**fields)


def results_update_run(*, update_id: int) -> str:
    """The task's work: compute the study's current results, recording each stage on the
    update; returns the final state. A finished update is left alone."""
    update = ResultsUpdate.objects.select_related("study").filter(pk=update_id).first()
    if update is None or update.state not in ResultsUpdate.ACTIVE:
        return update.state if update else "missing"
    _update_set(update_id, state=ResultsUpdate.State.RUNNING, started_at=timezone.now(), stage="reading the responses")
    try:
        result = study_result_get_or_compute(study=update.study, include_simulated=update.include_simulated,
                                             progress=lambda stage: _update_set(update_id, stage=stage))
    except ResearchError as exc:
        _update_set(update_id, state=ResultsUpdate.State.FAILED, finished_at=timezone.now(), stage="", message=str(exc))
        return ResultsUpdate.State.FAILED
    except Exception as exc:
        # A bug: say so on the dashboard, and let Celery log the traceback.
        _update_set(update_id, state=ResultsUpdate.State.FAILED, finished_at=timezone.now(), stage="",
                    message=f"Unexpected {type(exc).__name__}: {exc}")
        raise
    message = ("There are no responses yet." if result is None
               else f"Results of {result.n_responses} responses ({result.n_boot} bootstrap resamples).")
    _update_set(update_id, state=ResultsUpdate.State.DONE, finished_at=timezone.now(), stage="", message=message,
                result=result)
    return ResultsUpdate.State.DONE


# --------------------------------------------------------------------------- report details

REPORT_DETAIL_FIELDS = ("recruitment", "expertise", "pay_per_evaluator", "pay_currency", "ethics", "training", "notes")


@transaction.atomic
def report_details_update(*, study: Study, **fields: object) -> ReportDetails:
    unknown = set(fields) - set(REPORT_DETAIL_FIELDS)
    if unknown:
        raise ResearchError(f"Unknown report detail(s): {', '.join(sorted(unknown))}.")
    details, _ = ReportDetails.objects.select_for_update().get_or_create(study=study)
    for name, value in fields.items():
        setattr(details, name, value)
    details.full_clean()
    details.save()
    return details


# --------------------------------------------------------------------------- simulated evaluators


@dataclass(frozen=True)
class SimulationSummary:
    evaluators: int
    count_answers: int
    rank_answers: int
    pseudonyms: tuple[str, ...]
    stopped: str = ""  # why fewer than asked were simulated (the study closed or paused meanwhile)


GOLD_VARIANT = "(gold)"  # gold images show their true count: a simulated variant of quality 1
# evalstudy's simulator words its skip reasons freely; the web app offers three.
SKIP_REASONS = {
    "none of the images fits the caption": RankResponse.SkipReason.ALL_BAD,
    "cannot decide": RankResponse.SkipReason.TOO_HARD,
}


def _simulated_seconds(rng: np.random.Generator, task: str) -> float:
    """Time on task around the simulator's medians, so that the protocol's minimum-time rule
    sees plausible data."""
    median = COUNT_SECONDS if task == Item.Task.COUNT else RANK_SECONDS
    return float(median * rng.lognormal(0.0, 0.35))


def _variant_name(variant: Variant | None) -> str:
    # Check constraints give every non-gold count item and every model image (the only kind a
    # ranking shows) a variant; gold items, which have none, are handled before this is called.
    assert variant is not None, "a non-gold item or a ranked image without a variant"
    return variant.name


def _answer_entry(*, evaluator: Evaluator, entry: Entry, simulator: RaterSimulator, rng: np.random.Generator) -> str:
    """Answer one task through the evaluators' own submit services; return the task kind."""
    item = entry.item
    # Shown a drawn time ago: the submit services measure time on task from the entry's showing.
    shown_at = timezone.now() - timedelta(seconds=_simulated_seconds(rng, item.task))
    token = study_flow.entry_token_make(entry=study_flow.entry_mark_shown(entry=entry, at=shown_at))
    if item.task == Item.Task.COUNT:
        variant = GOLD_VARIANT if item.is_gold else _variant_name(item.variant)
        assert item.true_count is not None  # every count item has one (evalstudy.grid.study_items)
        answer = simulator.answer_count(item.true_count, variant, rng)
        study_flow.count_response_submit(evaluator=evaluator, token=token, answer=answer, cant_tell=answer is None)
        return item.task
    shown = [_variant_name(img.variant) for img in entry_images(entry=entry)]
    ranks = simulator.answer_rank(shown, rng)
    if ranks is None:
        reason = SKIP_REASONS.get(simulator.skip_reason(rng), RankResponse.SkipReason.OTHER)
        study_flow.rank_response_submit(evaluator=evaluator, token=token, ranks=None, skip_reason=reason)
    else:
        study_flow.rank_response_submit(evaluator=evaluator, token=token, ranks=[int(r) for r in ranks])
    return item.task


def study_simulate_responses(
    *, study: Study, n_evaluators: int, seed: int = 0, variant_quality: dict[str, float] | None = None,
    count_noise: float = 0.1, rank_noise: float = 0.3, skip_rate: float = 0.1, tie_margin: float = 0.0,
) -> SimulationSummary:
    """Fill an open study with ``n_evaluators`` simulated evaluators who answer every task.

    Answers come from evalstudy's RaterSimulator (every variant of quality 0.7 unless
    ``variant_quality`` says otherwise). The evaluators join through
    ``evaluator_join(simulated=True)`` and answer through the same submit services as
    people, so every check (free slots, signed tokens, database constraints, a closed
    study) applies. Each evaluator is one transaction: a failure leaves no half-answered
    simulated evaluator behind. ``tie_margin`` > 0 ties images whose judged quality is that
    close (RaterSimulator's), for a study whose protocol allows ties.
    """
    if n_evaluators < 1:
        raise ResearchError("Simulate at least one evaluator.")
    if not study.is_open:
        raise ResearchError(f"The study {study.slug!r} is {study.status}; only an open study takes responses.")
    if tie_margin > 0 and not study_ranking(study=study).allow_ties:
        raise ResearchError("This study's protocol does not allow ties (preference_task.allow_ties): "
                            "simulate without a tie margin.")
    variants = list(study.variants.order_by("index").values_list("name", flat=True))
    quality = {name: 0.7 for name in variants}
    unknown = sorted(set(variant_quality or {}) - set(variants))
    if unknown:
        raise ResearchError(f"Unknown variant(s) {', '.join(unknown)}; the study has {', '.join(variants)}.")
    quality.update(variant_quality or {})
    quality[GOLD_VARIANT] = 1.0
    try:
        simulator = RaterSimulator(variant_quality=quality, count_noise=count_noise, rank_noise=rank_noise,
                                   skip_rate=skip_rate, seed=seed, tie_margin=tie_margin)
    except ValueError as exc:
        raise ResearchError(f"Cannot simulate: {exc}") from exc
    pseudonyms: list[str] = []
    n_count = n_rank = 0
    for k in range(n_evaluators):
        rng = np.random.default_rng([seed, k])
        try:
            with transaction.atomic():
                evaluator = joining.evaluator_join(study=study, simulated=True)
                joining.evaluator_consent(evaluator=evaluator)
                entries = Entry.objects.filter(evaluator=evaluator).select_related(
                    "item__variant", "item__prompt", "item__image").order_by("index")
                for entry in entries:
                    task = _answer_entry(evaluator=evaluator, entry=entry, simulator=simulator, rng=rng)
                    n_count += task == Item.Task.COUNT
                    n_rank += task == Item.Task.RANK
        except joining.StudyUnavailable as exc:
            # Not an error of the operator's: the study changed under the run. Say so and stop.
            return SimulationSummary(evaluators=len(pseudonyms), count_answers=n_count, rank_answers=n_rank,
                                     pseudonyms=tuple(pseudonyms), stopped=str(exc))
        except study_flow.SubmissionError as exc:
            raise ResearchError(
                f"Simulated {k} of {n_evaluators} evaluators; then a submission failed: {exc.message}") from exc
        pseudonyms.append(evaluator.pseudonym)
    return SimulationSummary(evaluators=len(pseudonyms), count_answers=n_count, rank_answers=n_rank,
                             pseudonyms=tuple(pseudonyms))


@transaction.atomic
def study_simulated_remove(*, study: Study) -> int:
    """Delete the study's simulated evaluators (with their tasks and answers) and the stored
    results that included them; return how many evaluators went. People's data is untouched."""
    StudyResult.objects.filter(study=study, includes_simulated=True).delete()
    evaluators = Evaluator.objects.filter(study=study, is_simulated=True)
    n = evaluators.count()
    evaluators.delete()
    return n


# --------------------------------------------------------------------------- exports to files

EXPORT_FORMATS = ("csv", "jsonl", "aggregates", "report", "report-md", "figures", "protocol")


def export_write(*, study: Study, fmt: str, out: Path, include_simulated: bool = False) -> list[Path]:
    """Write one export of the study to ``out`` (a file; a folder for ``figures``); return the
    files written. The responses stream to disk; the other formats are small. Simulated
    evaluators are left out unless ``include_simulated`` (then labelled, see ``exports``)."""
    if fmt not in EXPORT_FORMATS:
        raise ResearchError(f"Unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
    out = Path(out)
    if fmt == "figures":
        result = study_result_get_or_compute(study=study, include_simulated=include_simulated)
        if result is None:
            raise ResearchError("The study has no responses yet: there is nothing to plot.")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for fig in result.figures.all():
            path = out / fig.filename
            path.write_bytes(bytes(fig.content))
            written.append(path)
        return written
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("csv", "jsonl"):
        chunks = (exports.csv_chunks(study=study, include_simulated=include_simulated) if fmt == "csv"
                  else exports.jsonl_chunks(study=study, salt=settings.FUSION_EXPORT_SALT,
                                            include_simulated=include_simulated))
        with open(out, "w", encoding="utf-8", newline="") as f:
            for chunk in chunks:
                f.write(chunk)
        return [out]
    if fmt == "protocol":
        out.write_text(exports.protocol_json(study=study), encoding="utf-8")
        return [out]
    if fmt == "aggregates":
        result = study_result_get_or_compute(study=study, include_simulated=include_simulated)
        if result is None:
            raise ResearchError("The study has no responses yet: there are no aggregates.")
        out.write_text(exports.aggregates_json(result=result.result), encoding="utf-8")
        return [out]
    try:
        result = study_result_get_or_compute(study=study, include_simulated=include_simulated)
        context = reports.report_context(study=study, result=result)
    except ResearchError as exc:
        context = reports.report_context(study=study, result=None, analysis_error=str(exc))
    text = reports.report_markdown(context) if fmt == "report-md" else reports.report_html(context)
    out.write_text(text, encoding="utf-8")
    return [out]

