"""The worker's side of generation: claiming a part, heartbeats, storing images, finishing.

Every step can be repeated after a crash: a claim is refused while another run owns the
part, an image whose row exists is not written again, and a run that lost its claim
writes nothing. Each image's random public id is fixed in the part's row when the batch
is launched, so a re-run writes the same file, and the id says nothing of the variant
to anyone, whatever keys they know.

Locks are taken batch first, then part, so two workers finishing the last two parts of
a batch cannot both miss its completion. Nothing here sends Celery messages: this module
is imported by the worker and the tasks, and the services that queue work import them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image as PILImage

from webapp.studies.imagefiles import relative_path_for, write_png_atomic, wxh
from webapp.studies.lifecycle import StudySetupError, study_attach_images, study_open
from webapp.studies.models import Image, Prompt, Study, new_public_id
from webapp.studies.selectors import study_visible_sizes

from . import selectors
from .models import Batch, Part

if TYPE_CHECKING:
    from generator.pipeline import PipelineProvenance
    from generator.sample import SamplerProvenance

    # What a sampler says produced its images: a checkpoint's, or a diffusers pipeline's.
    SamplerRecord = SamplerProvenance | PipelineProvenance


class PartFailure(Exception):
    """A part that cannot succeed by being run again as it is (missing file, bad config)."""


# --------------------------------------------------------------------------- the job

@dataclass(frozen=True)
class WorkItem:
    prompt_id: int
    text: str
    is_count: bool
    seed: int
    public_id: str  # the image's random id, fixed in the part's row
    judge_only: bool = False  # an extra image for the judge (selectors.study_judge_work), shown to no one


@dataclass(frozen=True)
class PartJob:
    """What a worker needs to run a part it has claimed; plain values, no model rows."""

    part_id: int
    batch_id: int
    study_id: int
    variant_id: int
    variant_name: str
    claim: str
    checkpoint_id: int
    checkpoint_name: str
    checkpoint_path: str
    checkpoint_sha256: str
    checkpoint_config: dict
    cfg_scale: float
    steps: int
    sampler: str
    todo: tuple[WorkItem, ...] = field(default=())
    size: int | None = None  # the protocol's image side (diffusers pipelines), None: the model's own
    scheduler: str | None = None  # the protocol's diffusers scheduler, None: the pipeline folder's


@dataclass(frozen=True)
class GeneratedImage:
    prompt_id: int
    seed: int
    image: PILImage.Image
    auto_count: int | None


# --------------------------------------------------------------------------- a run


def part_lock(part_id: int) -> tuple[Batch, Part] | None:
    """The part and its batch, both locked for update (the batch first); None when the part is gone."""
    batch_id = Part.objects.filter(pk=part_id).values_list("batch_id", flat=True).first()
    if batch_id is None:
        return None
    batch = Batch.objects.select_for_update().get(pk=batch_id)
    part = Part.objects.select_for_update(of=("self",)).select_related("variant__checkpoint").get(pk=part_id)
    return batch, part


def _owns(part: Part, claim: str) -> bool:
    return part.status == Part.Status.RUNNING and part.claim == claim


def _image_ids(part: Part) -> list[str]:
    """The part's image ids, one per work pair; a part launched before ids were kept with
    it gets them now, stored in the row of the claim that asks (inside its transaction)."""
    if len(part.image_ids) != len(part.work):
        part.image_ids = [new_public_id() for _ in part.work]
        part.save(update_fields=["image_ids"])
    return part.image_ids


@transaction.atomic
def part_claim(*, part_id: int, claim: str, worker: str, stale_after: timedelta) -> PartJob | None:
    """Take a part for this task run; None when there is nothing for it to do.

    Nothing to do: the part is gone, finished, failed or cancelled, or another run owns
    it and its heartbeat is fresh. A run that carries the part's current claim (a retry
    of the same run) takes it back. The job lists only the images still missing.
    """
    locked = part_lock(part_id)
    if locked is None or not locked[0].is_active:
        return None
    batch, part = locked
    now = timezone.now()
    # A running part always has a heartbeat (a check constraint); the test is for the type checker.
    fresh = part.heartbeat_at is not None and part.heartbeat_at >= now - stale_after
    if part.status == Part.Status.RUNNING and part.claim != claim and fresh:
        return None
    if part.status not in (Part.Status.QUEUED, Part.Status.RUNNING):
        return None
    checkpoint = part.variant.checkpoint
    if checkpoint is None:
        _fail(batch, part, f"Variant {part.variant.name} has no checkpoint.")
        return None
    if not (part.status == Part.Status.RUNNING and part.claim == claim):
        part.attempts += 1
    part.status = Part.Status.RUNNING
    part.claim = claim
    part.worker = worker[:200]
    part.heartbeat_at = now
    part.started_at = part.started_at or now
    part.save(update_fields=["status", "claim", "worker", "heartbeat_at", "started_at", "attempts"])
    if batch.status == Batch.Status.QUEUED:
        batch.status = Batch.Status.RUNNING
        batch.started_at = now
        batch.save(update_fields=["status", "started_at"])
    sampling = selectors.study_sampling(study=batch.study)
    have = selectors.part_existing_pairs(part=part)
    prompts = {p.pk: p for p in Prompt.objects.filter(pk__in={pid for pid, _ in part.work})}
    judge = set(selectors.study_judge_work(study=batch.study).get(part.variant_id, []))
    todo = tuple(
        WorkItem(prompt_id=pid, text=prompts[pid].text, is_count=prompts[pid].kind == Prompt.Kind.COUNT, seed=seed,
                 public_id=public_id, judge_only=(pid, seed) in judge)
        for (pid, seed), public_id in zip(part.work, _image_ids(part), strict=True)
        if (pid, seed) not in have
    )
    return PartJob(
        part_id=part.pk, batch_id=batch.pk, study_id=batch.study_id, variant_id=part.variant_id,
        variant_name=part.variant.name, claim=claim, checkpoint_id=checkpoint.pk, checkpoint_name=checkpoint.name,
        checkpoint_path=checkpoint.path, checkpoint_sha256=checkpoint.sha256, checkpoint_config=checkpoint.config,
        cfg_scale=batch.cfg_scale, steps=batch.steps, sampler=batch.sampler, todo=todo,
        size=sampling.size, scheduler=sampling.scheduler,
    )


@transaction.atomic
def part_heartbeat(*, job: PartJob, until: datetime | None = None) -> bool:
    """Mark the run alive (until ``until``, default now); False when it no longer owns the part."""
    return bool(
        Part.objects.filter(pk=job.part_id, status=Part.Status.RUNNING, claim=job.claim, batch__status__in=Batch.ACTIVE)
        .update(heartbeat_at=until or timezone.now())
    )


@transaction.atomic
def part_store_images(*, job: PartJob, images: list[GeneratedImage], provenance: dict[str, Any]) -> bool:
    """Store generated images: each PNG and its row, in one transaction with the progress count.

    An image whose (variant, prompt, seed) row exists is skipped. Returns False, writing
    nothing, when the run no longer owns the part (cancelled, or re-queued and taken).
    """
    locked = part_lock(job.part_id)
    if locked is None or not locked[0].is_active or not _owns(locked[1], job.claim):
        return False
    batch, part = locked
    texts = {w.prompt_id: w.text for w in job.todo}
    public_ids = {(w.prompt_id, w.seed): w.public_id for w in job.todo}
    judge_only = {(w.prompt_id, w.seed) for w in job.todo if w.judge_only}
    _check_size(job=job, sizes={g.image.size for g in images if (g.prompt_id, g.seed) not in judge_only})
    stored = 0
    for generated in images:
        public_id = public_ids[(generated.prompt_id, generated.seed)]
        image = Image(
            public_id=public_id, study_id=job.study_id, prompt_id=generated.prompt_id, source=Image.Source.MODEL,
            variant_id=job.variant_id, checkpoint_id=job.checkpoint_id, seed=generated.seed,
            cfg_scale=job.cfg_scale, steps=job.steps, sampler=job.sampler, auto_count=generated.auto_count,
            judge_only=(generated.prompt_id, generated.seed) in judge_only,
            width=generated.image.width, height=generated.image.height,
            provenance={**provenance, "prompt": texts.get(generated.prompt_id, ""), "seed": generated.seed},
        )
        image.file = relative_path_for(public_id)
        try:
            # The row first: a concurrent run of the same image waits here (PostgreSQL)
            # or fails, instead of both writing the file. If the write below fails, the
            # whole transaction (this row included) rolls back.
            with transaction.atomic():
                image.save(force_insert=True)
        except IntegrityError:
            continue
        write_png_atomic(image=generated.image, public_id=public_id, media_root=settings.MEDIA_ROOT)
        stored += 1
    part.images_done = min(part.size, part.images_done + stored)
    part.heartbeat_at = timezone.now()
    part.save(update_fields=["images_done", "heartbeat_at"])
    return True


def _check_size(*, job: PartJob, sizes: set[tuple[int, int]]) -> None:
    """PartFailure unless the images an evaluator will see (``sizes``) have the one size of the
    study's visible model images stored so far (other variants', imported or generated, and
    this part's earlier chunks): a size that differs by variant names the model.

    Parts of different variants storing their first images at the same moment can each pass
    this; opening the study (``lifecycle.study_open``) checks every image again and refuses."""
    if not sizes:
        return
    existing = study_visible_sizes(study_id=job.study_id)
    theirs = set().union(*existing.values()) if existing else set()
    if len(sizes) > 1 or (theirs and sizes != theirs):
        others = ", ".join(f"{name} {wxh(found)}" for name, found in sorted(existing.items()))
        raise PartFailure(
            f"{job.variant_name}'s images are {wxh(sizes)} pixels but the study's other images are not "
            f"({others or 'none yet'}): every image an evaluator sees has one size; generate or import them all "
            "at one size (the protocol's sampling.size, which a diffusers pipeline draws at; a checkpoint of "
            "ours draws at its own)."
        )


@transaction.atomic
def part_finish(*, job: PartJob) -> str | None:
    """Mark the part done once every image of it exists; return the batch's status (None if not owned)."""
    locked = part_lock(job.part_id)
    if locked is None or not _owns(locked[1], job.claim):
        return None
    batch, part = locked
    have = selectors.part_existing_pairs(part=part)
    missing = [pair for pair in part.work if tuple(pair) not in have]
    now = timezone.now()
    if missing:
        _fail(batch, part, f"{len(missing)} images are still missing after the run "
                           f"(first: prompt {missing[0][0]}, seed {missing[0][1]}).")
        return batch.status
    part.status = Part.Status.DONE
    part.images_done = part.size
    part.claim = ""
    part.error = ""
    part.finished_at = now
    part.save(update_fields=["status", "images_done", "claim", "error", "finished_at"])
    _batch_refresh(batch)
    return batch.status


@transaction.atomic
def part_fail(*, part_id: int, claim: str, message: str) -> bool:
    """Mark the part failed with ``message`` (for admins), unless another run owns it now."""
    locked = part_lock(part_id)
    if locked is None or locked[1].status in (Part.Status.DONE, Part.Status.CANCELLED, Part.Status.FAILED):
        return False
    batch, part = locked
    if part.status == Part.Status.RUNNING and part.claim != claim:
        return False
    _fail(batch, part, message)
    return True


@transaction.atomic
def part_postpone(*, part_id: int, claim: str, seconds: float, message: str) -> bool:
    """Keep the part for a retry of this run in ``seconds``; it is not stale until then."""
    return bool(
        Part.objects.filter(pk=part_id, status=Part.Status.RUNNING, claim=claim).update(
            heartbeat_at=timezone.now() + timedelta(seconds=seconds), error=message[:2000]
        )
    )


def _fail(batch: Batch, part: Part, message: str) -> None:
    part.status = Part.Status.FAILED
    part.error = message[:4000]
    part.claim = ""
    part.finished_at = timezone.now()
    part.save(update_fields=["status", "error", "claim", "finished_at"])
    _batch_refresh(batch)


def _batch_refresh(batch: Batch) -> None:
    """Complete or fail a batch (locked by the caller) when none of its parts is left to run."""
    if not batch.is_active:
        return
    statuses = set(Part.objects.filter(batch=batch).values_list("status", flat=True))
    if statuses & {Part.Status.QUEUED, Part.Status.RUNNING}:
        return
    batch.finished_at = timezone.now()
    if statuses <= {Part.Status.DONE}:
        batch.status = Batch.Status.COMPLETE
        batch.save(update_fields=["status", "finished_at"])
        study = batch.study
        study_attach_images(study=study)
        if batch.open_when_complete and study.status == Study.Status.DRAFT:
            try:
                with transaction.atomic():
                    study_open(study=study)
            except StudySetupError as exc:
                batch.note = f"The study was not opened: {exc}"
                batch.save(update_fields=["note"])
    else:
        batch.status = Batch.Status.FAILED
        batch.save(update_fields=["status", "finished_at"])


def provenance_for(*, job: PartJob, sampler_provenance: SamplerRecord, worker: str, device: str) -> dict[str, Any]:
    """What every image of the part records, besides its prompt and seed."""
    return {
        "checkpoint": {"id": job.checkpoint_id, "name": job.checkpoint_name, "path": job.checkpoint_path},
        "checkpoint_sha256": sampler_provenance.get("sha256", job.checkpoint_sha256),
        "config": job.checkpoint_config,
        "variant": job.variant_name,
        "cfg_scale": job.cfg_scale,
        "steps": job.steps,
        "sampler": sampler_provenance.get("sampler", job.sampler),
        "protocol_sampler": job.sampler,
        "size": job.size,  # the protocol's sampling.size (diffusers pipelines draw at it); None: the model's own
        "code_version": sampler_provenance.get("code_version", ""),
        "generator": json.loads(json.dumps(sampler_provenance, default=str)),
        "batch": job.batch_id,
        "part": job.part_id,
        "worker": worker,
        "device": device,
    }


# --------------------------------------------------------------------------- the stale-part sweep


@transaction.atomic
def parts_requeue_stale(*, stale_after: timedelta, now: datetime | None = None) -> list[int]:
    """Put back in the queue the parts of active batches whose task seems lost; return their ids.

    Only the rows change here: the caller sends the parts' messages once this has
    committed (``tasks.requeue_stale_parts``). Should it die in between, the parts wait
    as queued parts whose message was lost, and the next sweep sends them.

    - A running part whose heartbeat is older than ``stale_after``: its worker died (or
      hangs). It goes back to ``queued``; the images it made stay.
    - A queued part, queued longer than ``stale_after`` times 2 ** (re-sends so far, at
      most 6), in a batch where no part showed life for ``stale_after``: its message may
      be lost (the broker was down when it was sent, or a worker died between taking it
      and claiming the part). The doubling wait keeps a batch that simply has no worker
      yet from filling the queue with copies; a copy that does arrive finds the part
      taken or done and returns.
    """
    now = now or timezone.now()
    recent = now - stale_after
    active = Part.objects.filter(batch__status__in=Batch.ACTIVE)
    stale_ids = list(active.filter(status=Part.Status.RUNNING, heartbeat_at__lt=recent).values_list("pk", flat=True))
    alive = set(
        Part.objects.filter(status=Part.Status.RUNNING, heartbeat_at__gte=recent).values_list("batch_id", flat=True)
    ) | set(Part.objects.filter(finished_at__gte=recent).values_list("batch_id", flat=True))
    waiting = [
        part.pk for part in active.filter(status=Part.Status.QUEUED, queued_at__lt=recent).exclude(batch_id__in=alive)
        if part.queued_at < now - stale_after * 2 ** min(part.requeues, 6)
    ]
    requeued = []
    for part_id in sorted(stale_ids + waiting):
        locked = part_lock(part_id)
        if locked is None or not locked[0].is_active:
            continue
        batch, part = locked
        if part.status == Part.Status.RUNNING and part.heartbeat_at is not None and part.heartbeat_at < recent:
            part.error = (f"Worker {part.worker or '?'} stopped responding (last heartbeat "
                          f"{part.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); sent again.")
        elif part.status == Part.Status.QUEUED and part_id in waiting:
            assert part.queued_at is not None  # set with every queued status (batch_launch, requeues)
            part.error = f"No worker took this part for {(now - part.queued_at).total_seconds():.0f} s; sent again."
        else:
            continue  # it moved on since it was selected
        part.status = Part.Status.QUEUED
        part.claim = ""
        part.queued_at = now
        part.requeues += 1
        part.save(update_fields=["error", "status", "claim", "queued_at", "requeues"])
        requeued.append(part.pk)
    return requeued
