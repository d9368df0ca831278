"""Reads for generation: what a study still needs, what a batch has done, how fast."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from django.db.models import Count, Sum
from django.utils import timezone

from evalstudy.grid import image_seeds
from evalstudy.protocol import Sampling
from generator.defaults import CFG_SCALE, STEPS
from webapp.studies.models import Checkpoint, Image, Item, Prompt, Study, Variant

from .models import MAX_PART_SIZE, Batch, ImageSetImport, Part


def study_needed_work(*, study: Study) -> dict[int, list[tuple[int, int]]]:
    """Every model image the study's items need: variant id -> [(prompt id, seed)], in item order.

    Count items need their own variant's image; rank items need one image per variant.
    Gold images are rendered when the study is created and are not generated.
    """
    variant_ids = list(study.variants.order_by("index").values_list("pk", flat=True))
    needed: dict[int, dict[tuple[int, int], None]] = {vid: {} for vid in variant_ids}
    items = Item.objects.filter(study=study, repeat_of__isnull=True, is_gold=False).order_by("id")
    for task, variant_id, prompt_id, seed in items.values_list("task", "variant_id", "prompt_id", "seed"):
        if task == Item.Task.COUNT:
            needed[variant_id][(prompt_id, seed)] = None
        else:
            for vid in variant_ids:
                needed[vid][(prompt_id, seed)] = None
    return {vid: list(pairs) for vid, pairs in needed.items()}


@dataclass(frozen=True)
class ManifestRow:
    """One row of an image-set manifest (docs/models-from-elsewhere.md): an image to make."""
    variant: str
    prompt: str
    seed: int
    file: str  # a suggested path inside the upload


MANIFEST_FIELDS = ("variant", "prompt", "seed", "file")


def manifest_template(*, study: Study, variants: list[Variant] | None = None) -> list[ManifestRow]:
    """Every row an image set for ``variants`` must hold (by default the variants that have
    neither images nor a checkpoint, the ones an import may fill): each (prompt text, seed)
    the study's items need, once per variant (a caption whose text is also a count prompt
    is one cell, as the import reads it), in item order, with a suggested file name. It is
    the grid ``imagesets._check_grid`` checks an upload against."""
    if variants is None:
        variants = list(study.variants.filter(images__isnull=True, checkpoint__isnull=True)
                        .distinct().order_by("index"))
    needed = study_needed_work(study=study)
    texts = dict(Prompt.objects.filter(study=study).values_list("pk", "text"))
    rows = []
    for variant in variants:
        cells = dict.fromkeys((texts[pid], seed) for pid, seed in needed[variant.pk])
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", variant.name).strip("._") or f"variant-{variant.index}"
        rows += [ManifestRow(variant=variant.name, prompt=text, seed=seed, file=f"{folder}/{k:05d}.png")
                 for k, (text, seed) in enumerate(cells)]
    return rows


def study_sampling(*, study: Study) -> Sampling:
    """How the study's images are drawn: its protocol's ``sampling``; for a study whose
    protocol does not parse (``Study.parsed_protocol``), generator.defaults' guidance scale
    and steps, no sampler name, seed 0, the checkpoint's own size and scheduler."""
    protocol = study.parsed_protocol
    if protocol is not None:
        return protocol.sampling
    return Sampling(cfg_scale=CFG_SCALE, steps=STEPS, sampler="")


def study_judge_work(*, study: Study) -> dict[int, list[tuple[int, int]]]:
    """The judge-only images of the study: variant id -> [(prompt id, seed)].

    With the protocol's ``analysis.judge_images_per_cell`` = k, every count grid cell (a
    count prompt, gold left out) gets k extra images per variant, read by the automatic
    judge only (the prediction-powered intervals' judge-only rows). Their seeds continue the
    protocol's image seeds after the evaluators' ones: image j of the k is drawn with
    ``sampling.seed + images_per_prompt + j`` (``evalstudy.grid.image_seeds``), the
    same seeds for every variant (so the variants' images of one seed are paired, as the
    evaluators' are), and never a seed an evaluator's count image uses. Empty for k = 0.
    """
    variant_ids = list(study.variants.order_by("index").values_list("pk", flat=True))
    proto = study.parsed_protocol
    if proto is None:
        return {vid: [] for vid in variant_ids}
    k = proto.analysis.judge_images_per_cell
    if k == 0 or proto.count_task is None:
        return {vid: [] for vid in variant_ids}
    n = proto.count_task.images_per_prompt
    seeds = image_seeds(proto, n + k)[n:]
    cells: dict[int, dict[int, None]] = {vid: {} for vid in variant_ids}
    items = Item.objects.filter(study=study, task=Item.Task.COUNT, repeat_of__isnull=True, is_gold=False)
    for variant_id, prompt_id in items.order_by("id").values_list("variant_id", "prompt_id"):
        cells[variant_id][prompt_id] = None
    return {vid: [(pid, seed) for pid in prompts for seed in seeds] for vid, prompts in cells.items()}


def study_missing_work(*, study: Study, judge_only: bool = True) -> dict[int, list[tuple[int, int]]]:
    """The images still to make: variant id -> [(prompt id, seed)] without an image row;
    the evaluators' images first, then (with ``judge_only``) the judge-only ones."""
    have = set(
        Image.objects.filter(study=study, source=Image.Source.MODEL).values_list("variant_id", "prompt_id", "seed")
    )
    needed = study_needed_work(study=study)
    if judge_only:
        for vid, pairs in study_judge_work(study=study).items():
            needed[vid] = list(dict.fromkeys(needed[vid] + pairs))
    return {vid: [pair for pair in pairs if (vid, *pair) not in have] for vid, pairs in needed.items()}


def part_existing_pairs(*, part: Part) -> set[tuple[int, int]]:
    """The (prompt id, seed) pairs of the part's work whose image exists."""
    prompt_ids = {pid for pid, _ in part.work}
    rows = Image.objects.filter(variant_id=part.variant_id, prompt_id__in=prompt_ids).values_list("prompt_id", "seed")
    wanted = {tuple(pair) for pair in part.work}
    return {pair for pair in rows if pair in wanted}


@dataclass(frozen=True)
class VariantPlan:
    variant: Variant
    checkpoint: Checkpoint | None
    needed: int
    missing: int
    parts: int


@dataclass(frozen=True)
class StudyPlan:
    """The amount of work a batch launched now would do."""

    variants: list[VariantPlan]
    cfg_scale: float
    steps: int
    sampler: str
    part_size: int
    count_prompts: int = 0
    captions: int = 0
    seeds: int = 0  # distinct seeds across the study's generated items
    judge_only: int = 0  # of ``needed``: images the judge reads and no evaluator sees

    @property
    def needed(self) -> int:
        return sum(v.needed for v in self.variants)

    @property
    def missing(self) -> int:
        return sum(v.missing for v in self.variants)

    @property
    def parts(self) -> int:
        return sum(v.parts for v in self.variants)

    @property
    def ready(self) -> bool:
        return all(v.checkpoint is not None for v in self.variants)


def study_plan(*, study: Study, part_size: int = MAX_PART_SIZE) -> StudyPlan:
    needed = study_needed_work(study=study)
    judge = study_judge_work(study=study)
    needed = {vid: list(dict.fromkeys(pairs + judge[vid])) for vid, pairs in needed.items()}
    missing = study_missing_work(study=study)
    sampling = study_sampling(study=study)
    rows = [
        VariantPlan(
            variant=v, checkpoint=v.checkpoint, needed=len(needed[v.pk]), missing=len(missing[v.pk]),
            parts=math.ceil(len(missing[v.pk]) / part_size),
        )
        for v in study.variants.select_related("checkpoint").order_by("index")
    ]
    items = Item.objects.filter(study=study, repeat_of__isnull=True, is_gold=False)
    return StudyPlan(
        variants=rows, cfg_scale=sampling.cfg_scale, steps=sampling.steps,
        sampler=sampling.sampler, part_size=part_size,
        count_prompts=items.filter(task=Item.Task.COUNT).values("prompt_id").distinct().count(),
        captions=items.filter(task=Item.Task.RANK).values("prompt_id").distinct().count(),
        seeds=items.values("seed").distinct().count(),
        judge_only=sum(len(pairs) for pairs in judge.values()),
    )


def study_latest_batch(*, study: Study) -> Batch | None:
    return Batch.objects.filter(study=study).order_by("-created_at", "-id").first()


def study_latest_import(*, study: Study) -> ImageSetImport | None:
    """The study's newest image set import from the generation page, as its worker left it."""
    return ImageSetImport.objects.filter(study=study).order_by("-created_at", "-id").first()


class ImportStatus(TypedDict):
    """``imageset_import_status``: an import as its status.json gives it (imageset.js reads
    ``status``); times ISO 8601, None until they happen."""
    id: int
    study: str  # slug
    status: str
    status_label: str
    upload_name: str
    summary: str
    problems: list[str]  # at most MAX_PROBLEMS_SHOWN, the last counting any more (ImageSetError)
    created_at: str
    started_at: str | None
    finished_at: str | None


def imageset_import_status(*, job: ImageSetImport) -> ImportStatus:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return ImportStatus(
        id=job.pk, study=job.study.slug, status=job.status, status_label=job.get_status_display(),
        upload_name=job.upload_name, summary=job.summary, problems=job.problems,
        created_at=job.created_at.isoformat(), started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
    )


def studies_with_batches() -> list[tuple[Study, Batch | None]]:
    """Every study, newest first, with its latest batch."""
    latest: dict[int, Batch] = {}
    for batch in Batch.objects.order_by("study_id", "-created_at", "-id"):
        latest.setdefault(batch.study_id, batch)
    return [(study, latest.get(study.pk)) for study in Study.objects.order_by("-created_at")]


def checkpoints_all() -> list[Checkpoint]:
    return list(Checkpoint.objects.order_by("name"))


class VariantProgress(TypedDict):
    """One variant's images in a batch (``BatchProgress["variants"]``)."""
    name: str
    done: int
    total: int


class PartError(TypedDict):
    """A part whose last attempt left an error (``BatchProgress["errors"]``)."""
    part: int  # the part's number within the batch
    variant: str
    status: str
    message: str
    attempts: int


class BatchProgress(TypedDict):
    """``batch_progress``: what the batch page shows, what batch.js reads from the batch's
    progress.json (webapp/generation/static/generation/batch.js) and what the commands
    print. Counts are images, times seconds, ``rate`` images per second."""
    batch: int
    study: str  # slug
    study_status: str
    status: str
    status_label: str
    done: int
    total: int
    percent: int  # 0..100, floored; 100 for an empty batch
    variants: list[VariantProgress]
    parts: dict[str, int]  # parts per Part.Status value
    rate: float | None
    elapsed_seconds: float
    eta_seconds: float | None
    errors: list[PartError]
    note: str
    cfg_scale: float
    steps: int
    can_cancel: bool
    can_retry: bool


@dataclass(frozen=True)
class PartTimes:
    """What ``seconds_left`` reads of one part (a row of ``Part``)."""
    variant_id: int
    size: int
    images_done: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None


def seconds_left(parts: list[PartTimes], *, now: datetime) -> float | None:
    """Seconds until every part's remaining images are made; None before any image exists.

    Variants differ in speed (cross-attention costs more than concatenation; a part also pays
    its model's load), and workers join and leave, so one batch-wide images-per-second figure
    misleads. Each variant's remaining images are priced at that variant's own measured
    worker-seconds per image (the batch's pace for a variant with none made yet), and the
    sum is divided by the concurrency seen so far: worker-seconds spent over the wall time
    since the first part started. Queue time before any worker took a part counts in
    neither.
    """
    busy: dict[int, float] = {}
    made: dict[int, int] = {}
    remaining: dict[int, int] = {}
    first_start: datetime | None = None
    for p in parts:
        remaining[p.variant_id] = remaining.get(p.variant_id, 0) + p.size - p.images_done
        end = p.finished_at if p.finished_at is not None else (now if p.status == Part.Status.RUNNING else None)
        if p.started_at is None or end is None:
            continue  # queued, or stopped without a finish time: no time on record
        first_start = p.started_at if first_start is None else min(first_start, p.started_at)
        busy[p.variant_id] = busy.get(p.variant_id, 0.0) + max((end - p.started_at).total_seconds(), 0.0)
        made[p.variant_id] = made.get(p.variant_id, 0) + p.images_done
    total_made = sum(made.values())
    if total_made == 0 or first_start is None:
        return None
    total_busy = sum(busy.values())
    span = (now - first_start).total_seconds()
    if total_busy <= 0 or span <= 0:
        return None
    pace = total_busy / total_made
    work = sum(n * (busy[v] / made[v] if made.get(v) else pace) for v, n in remaining.items() if n > 0)
    return work / (total_busy / span)


def batch_progress(*, batch: Batch, now: datetime | None = None) -> BatchProgress:
    """A JSON-able snapshot of a batch: images done per variant, rate, time left, errors.

    ``rate`` is images per second since the batch started (until it finished);
    ``eta_seconds`` is ``seconds_left`` (each variant at its own pace), None before any
    image exists and once the batch is no longer active.
    """
    now = now or timezone.now()
    batch = Batch.objects.select_related("study").get(pk=batch.pk)
    per_variant = (
        Part.objects.filter(batch=batch)
        .values("variant_id", "variant__name", "variant__index")
        .annotate(done=Sum("images_done"), total=Sum("size"))
        .order_by("variant__index")
    )
    by_status = dict(Part.objects.filter(batch=batch).values_list("status").annotate(n=Count("id")))
    done = sum(row["done"] or 0 for row in per_variant)
    total = sum(row["total"] or 0 for row in per_variant)
    end = batch.finished_at or now
    elapsed = (end - batch.started_at).total_seconds() if batch.started_at else 0.0
    rate = done / elapsed if done and elapsed > 0 else None
    eta = None
    if batch.is_active:
        times = [PartTimes(**row) for row in Part.objects.filter(batch=batch).values(
            "variant_id", "size", "images_done", "status", "started_at", "finished_at")]
        left = seconds_left(times, now=now)
        eta = None if left is None else round(left, 1)
    errors = [
        PartError(part=p.number, variant=p.variant.name, status=p.status, message=p.error, attempts=p.attempts)
        for p in Part.objects.filter(batch=batch).exclude(error="").select_related("variant").order_by("number")
    ]
    return BatchProgress(
        batch=batch.pk,
        study=batch.study.slug,
        study_status=batch.study.status,
        status=batch.status,
        status_label=batch.get_status_display(),
        done=done,
        total=total,
        percent=100 if total == 0 else math.floor(100 * done / total),
        variants=[
            VariantProgress(name=r["variant__name"], done=r["done"] or 0, total=r["total"] or 0) for r in per_variant
        ],
        parts={s.value: by_status.get(s.value, 0) for s in Part.Status},
        rate=None if rate is None else round(rate, 3),
        elapsed_seconds=round(elapsed, 1),
        eta_seconds=eta,
        errors=errors,
        note=batch.note,
        cfg_scale=batch.cfg_scale,
        steps=batch.steps,
        can_cancel=batch.is_active,
        can_retry=batch.status in (Batch.Status.FAILED, Batch.Status.RUNNING, Batch.Status.QUEUED)
        and by_status.get(Part.Status.FAILED, 0) > 0,
    )


def study_image_counts(*, study: Study) -> dict[str, int]:
    """Model images per variant name."""
    rows = (
        Variant.objects.filter(study=study).order_by("index")
        .annotate(n=Count("images", distinct=True)).values_list("name", "n")
    )
    return dict(rows)
