"""Writes for generation: checkpoints, batches and the parts that GPU workers run.

Every function is keyword-only and atomic. Locks are taken batch first, then part, so
two workers finishing the last two parts of a batch cannot both miss its completion.
Tasks are queued with ``delay_on_commit``: a worker never receives a part whose row is
not committed yet.

The worker's side (claim, store, finish, fail, postpone) is written so that any of its
steps can be repeated after a crash: a claim is refused while another run owns the part,
an image that exists is not written again, and a run that lost its claim writes nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image as PILImage

from generator.defaults import CFG_SCALE, STEPS
from webapp.studies.imagefiles import relative_path_for, write_png_atomic
from webapp.studies.models import Checkpoint, Image, Prompt, Study, Variant
from webapp.studies.services import StudySetupError, study_attach_images, study_open

from . import selectors
from .models import MAX_PART_SIZE, Batch, Part


class GenerationError(ValueError):
    """A request that cannot be carried out as asked; the message says why, for admins."""


class PartFailure(Exception):
    """A part that cannot succeed by being run again as it is (missing file, bad config)."""


def _enqueue(part_id: int) -> None:
    from .tasks import generate_part
    from .workerproc import broker_prepare

    broker_prepare()  # the filesystem broker's folders, on first use by a fresh checkout
    generate_part.delay_on_commit(part_id)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_read(*, path: str | Path) -> tuple[str, dict[str, Any]]:
    """(sha256 of the weights, config to record) of a checkpoint folder or weights file.

    The config holds the model config, the codec and text encoder specs, what the model
    predicts (epsilon or v), the training step and the name the checkpoint was saved under. Raises GenerationError for a path
    that holds no readable fusion-eval checkpoint.
    """
    from safetensors import SafetensorError

    from generator.checkpoint import checkpoint_sha256, read_metadata, weights_path

    file = weights_path(Path(path))
    if not file.is_file():
        raise GenerationError(f"No checkpoint weights at {file}.")
    try:
        meta = read_metadata(file)
    except (SafetensorError, ValueError, KeyError, OSError) as exc:
        raise GenerationError(f"{file} is not a readable fusion-eval checkpoint: {exc}") from exc
    config = {
        "model": meta["config"].to_dict(),
        "codec": meta["codec"],
        "text_encoder": meta["text_encoder"],
        "prediction_type": meta.get("prediction_type", "epsilon"),
        "step": meta["step"],
        "name": meta["name"],
    }
    return checkpoint_sha256(file), config


@transaction.atomic
def checkpoint_register(*, name: str, path: str | Path) -> Checkpoint:
    """Register a checkpoint under ``name``, recording its sha256 and config.

    Registering the same weights under the same name again returns the existing row (its
    path updated if the file moved); other weights under a taken name are refused, since
    images already made would then point at weights that no longer exist.
    """
    name = name.strip()
    if not name:
        raise GenerationError("A checkpoint needs a name.")
    resolved = Path(path).expanduser().resolve()
    sha256, config = checkpoint_read(path=resolved)
    existing = Checkpoint.objects.select_for_update().filter(name=name).first()
    if existing is not None:
        if existing.sha256 != sha256:
            raise GenerationError(
                f"A checkpoint named {name!r} is registered with other weights (sha256 {existing.sha256[:12]}…, "
                f"these are {sha256[:12]}…); register them under a new name."
            )
        if existing.path != str(resolved):
            existing.path = str(resolved)
            existing.save(update_fields=["path"])
        return existing
    return Checkpoint.objects.create(name=name, path=str(resolved), sha256=sha256, config=config)


@transaction.atomic
def variant_assign_checkpoint(*, variant: Variant, checkpoint: Checkpoint | None) -> Variant:
    """Choose the checkpoint that makes a variant's images; only while the study is a draft."""
    variant = Variant.objects.select_related("study").select_for_update().get(pk=variant.pk)
    if variant.study.status != Study.Status.DRAFT:
        raise GenerationError("Checkpoints can only change while the study is a draft.")
    if variant.checkpoint_id == (checkpoint.pk if checkpoint else None):
        return variant
    if Batch.objects.filter(study_id=variant.study_id, status__in=Batch.ACTIVE).exists():
        raise GenerationError("A batch is running for this study: cancel it before changing checkpoints.")
    if variant.images.filter(source=Image.Source.MODEL).exclude(checkpoint=checkpoint).exists():
        raise GenerationError(
            f"Variant {variant.name} already has images from another checkpoint; start a fresh study instead."
        )
    variant.checkpoint = checkpoint
    variant.save(update_fields=["checkpoint"])
    return variant


# --------------------------------------------------------------------------- launching


@transaction.atomic
def batch_launch(
    *,
    study: Study,
    cfg_scale: float | None = None,
    steps: int | None = None,
    part_size: int = MAX_PART_SIZE,
    open_when_complete: bool = False,
    user=None,
) -> Batch:
    """Plan the study's missing images as parts and queue them on the ``gpu`` queue.

    CFG scale and steps default to the protocol's sampling section. Parts hold at most
    ``part_size`` (prompt, seed) pairs of one variant.
    """
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status != Study.Status.DRAFT:
        raise GenerationError(f"Images are generated for draft studies only; this one is {study.status}.")
    if not 1 <= part_size <= MAX_PART_SIZE:
        raise GenerationError(f"A part holds 1 to {MAX_PART_SIZE} images, not {part_size}.")
    variants = list(study.variants.select_related("checkpoint").order_by("index"))
    unassigned = [v.name for v in variants if v.checkpoint is None]
    if unassigned:
        raise GenerationError(f"Register a checkpoint for every variant first; missing: {', '.join(unassigned)}.")
    if Batch.objects.filter(study=study, status__in=Batch.ACTIVE).exists():
        raise GenerationError("A batch is already queued or running for this study.")
    sampling = study.protocol.get("sampling", {})
    cfg_scale = float(sampling.get("cfg_scale", CFG_SCALE) if cfg_scale is None else cfg_scale)
    steps = int(sampling.get("steps", STEPS) if steps is None else steps)
    if steps < 1 or cfg_scale < 0 or not math.isfinite(cfg_scale):
        raise GenerationError("Steps must be at least 1 and the CFG scale a number of at least 0.")
    work = selectors.study_missing_work(study=study)
    total = sum(len(pairs) for pairs in work.values())
    if total == 0:
        raise GenerationError("Every image of this study exists already: there is nothing to generate.")
    batch = Batch.objects.create(
        study=study, cfg_scale=cfg_scale, steps=steps, sampler=str(sampling.get("sampler", ""))[:50],
        part_size=part_size, open_when_complete=open_when_complete, total_images=total,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    now = timezone.now()
    parts, number = [], 0
    for variant in variants:
        pairs = work[variant.pk]
        for start in range(0, len(pairs), part_size):
            chunk = [list(p) for p in pairs[start:start + part_size]]
            parts.append(Part(batch=batch, variant=variant, number=number, work=chunk, size=len(chunk), queued_at=now))
            number += 1
    for part in Part.objects.bulk_create(parts):
        _enqueue(part.pk)
    return batch


@transaction.atomic
def batch_cancel(*, batch: Batch) -> Batch:
    """Stop a batch: its queued parts are dropped, running ones stop at their next write."""
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    if not batch.is_active:
        raise GenerationError(f"Only a queued or running batch can be cancelled; this one is {batch.status}.")
    now = timezone.now()
    Part.objects.filter(batch=batch, status__in=[Part.Status.QUEUED, Part.Status.RUNNING]).update(
        status=Part.Status.CANCELLED, claim="", finished_at=now
    )
    batch.status = Batch.Status.CANCELLED
    batch.finished_at = now
    batch.save(update_fields=["status", "finished_at"])
    return batch


@transaction.atomic
def batch_retry_failed(*, batch: Batch) -> int:
    """Queue the failed parts of a batch again; return how many."""
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    if batch.status not in (Batch.Status.FAILED, Batch.Status.RUNNING, Batch.Status.QUEUED):
        raise GenerationError(f"Failed parts can be retried in a failed or running batch; this one is {batch.status}.")
    failed = list(Part.objects.select_for_update().filter(batch=batch, status=Part.Status.FAILED))
    if not failed:
        raise GenerationError("This batch has no failed part.")
    if batch.status == Batch.Status.FAILED:
        if Batch.objects.filter(study_id=batch.study_id, status__in=Batch.ACTIVE).exclude(pk=batch.pk).exists():
            raise GenerationError("Another batch is running for this study; cancel it or let it finish first.")
        if batch.study.status != Study.Status.DRAFT:
            raise GenerationError("The study is no longer a draft.")
        batch.status = Batch.Status.RUNNING
        batch.finished_at = None
        batch.save(update_fields=["status", "finished_at"])
    now = timezone.now()
    for part in failed:
        part.status = Part.Status.QUEUED
        part.error = ""
        part.claim = ""
        part.queued_at = now
        part.finished_at = None
        part.save(update_fields=["status", "error", "claim", "queued_at", "finished_at"])
        _enqueue(part.pk)
    return len(failed)


@transaction.atomic
def parts_requeue_stale(*, stale_after: timedelta, now=None) -> list[int]:
    """Send again the parts of active batches whose task seems lost; return their ids.

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
        batch, part = _locked(part_id)
        if part is None or not batch.is_active:
            continue
        if part.status == Part.Status.RUNNING and part.heartbeat_at < recent:
            part.error = (f"Worker {part.worker or '?'} stopped responding (last heartbeat "
                          f"{part.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); sent again.")
        elif part.status == Part.Status.QUEUED and part_id in waiting:
            part.error = f"No worker took this part for {(now - part.queued_at).total_seconds():.0f} s; sent again."
        else:
            continue  # it moved on since it was selected
        part.status = Part.Status.QUEUED
        part.claim = ""
        part.queued_at = now
        part.requeues += 1
        part.save(update_fields=["error", "status", "claim", "queued_at", "requeues"])
        _enqueue(part.pk)
        requeued.append(part.pk)
    return requeued


# --------------------------------------------------------------------------- a worker's part


@dataclass(frozen=True)
class WorkItem:
    prompt_id: int
    text: str
    is_count: bool
    seed: int


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


@dataclass(frozen=True)
class GeneratedImage:
    prompt_id: int
    seed: int
    image: PILImage.Image
    auto_count: int | None


def image_public_id(*, variant_id: int, prompt_id: int, seed: int) -> str:
    """The public id (and file name) of a variant's image for a prompt and seed.

    Derived with the secret key, so it is as opaque to evaluators as a random id, yet a
    part re-run after a crash writes the same file again instead of leaving an orphan.
    """
    message = f"fusion-eval.image:{variant_id}:{prompt_id}:{seed}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:32]


def _locked(part_id: int) -> tuple[Batch | None, Part | None]:
    batch_id = Part.objects.filter(pk=part_id).values_list("batch_id", flat=True).first()
    if batch_id is None:
        return None, None
    batch = Batch.objects.select_for_update().get(pk=batch_id)
    part = Part.objects.select_for_update(of=("self",)).select_related("variant__checkpoint").get(pk=part_id)
    return batch, part


def _owns(part: Part, claim: str) -> bool:
    return part.status == Part.Status.RUNNING and part.claim == claim


@transaction.atomic
def part_claim(*, part_id: int, claim: str, worker: str, stale_after: timedelta) -> PartJob | None:
    """Take a part for this task run; None when there is nothing for it to do.

    Nothing to do: the part is gone, finished, failed or cancelled, or another run owns
    it and its heartbeat is fresh. A run that carries the part's current claim (a retry
    of the same run) takes it back. The job lists only the images still missing.
    """
    batch, part = _locked(part_id)
    if part is None or not batch.is_active:
        return None
    now = timezone.now()
    if part.status == Part.Status.RUNNING and part.claim != claim and part.heartbeat_at >= now - stale_after:
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
    have = selectors.part_existing_pairs(part=part)
    prompts = {p.pk: p for p in Prompt.objects.filter(pk__in={pid for pid, _ in part.work})}
    todo = tuple(
        WorkItem(prompt_id=pid, text=prompts[pid].text, is_count=prompts[pid].kind == Prompt.Kind.COUNT, seed=seed)
        for pid, seed in part.work
        if (pid, seed) not in have
    )
    return PartJob(
        part_id=part.pk, batch_id=batch.pk, study_id=batch.study_id, variant_id=part.variant_id,
        variant_name=part.variant.name, claim=claim, checkpoint_id=checkpoint.pk, checkpoint_name=checkpoint.name,
        checkpoint_path=checkpoint.path, checkpoint_sha256=checkpoint.sha256, checkpoint_config=checkpoint.config,
        cfg_scale=batch.cfg_scale, steps=batch.steps, sampler=batch.sampler, todo=todo,
    )


@transaction.atomic
def part_heartbeat(*, job: PartJob, until=None) -> bool:
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
    batch, part = _locked(job.part_id)
    if part is None or not batch.is_active or not _owns(part, job.claim):
        return False
    texts = {w.prompt_id: w.text for w in job.todo}
    stored = 0
    for generated in images:
        public_id = image_public_id(variant_id=job.variant_id, prompt_id=generated.prompt_id, seed=generated.seed)
        image = Image(
            public_id=public_id, study_id=job.study_id, prompt_id=generated.prompt_id, source=Image.Source.MODEL,
            variant_id=job.variant_id, checkpoint_id=job.checkpoint_id, seed=generated.seed,
            cfg_scale=job.cfg_scale, steps=job.steps, sampler=job.sampler, auto_count=generated.auto_count,
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


@transaction.atomic
def part_finish(*, job: PartJob) -> str | None:
    """Mark the part done once every image of it exists; return the batch's status (None if not owned)."""
    batch, part = _locked(job.part_id)
    if part is None or not _owns(part, job.claim):
        return None
    have = selectors.part_existing_pairs(part=part)
    missing = [pair for pair in part.work if tuple(pair) not in have]
    now = timezone.now()
    if missing:
        _fail(batch, part, f"{len(missing)} images are still missing after the run (first: prompt {missing[0][0]}, seed {missing[0][1]}).")
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
    batch, part = _locked(part_id)
    if part is None or part.status in (Part.Status.DONE, Part.Status.CANCELLED, Part.Status.FAILED):
        return False
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


def provenance_for(*, job: PartJob, sampler_provenance: dict[str, Any], worker: str, device: str) -> dict[str, Any]:
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
        "code_version": sampler_provenance.get("code_version", ""),
        "generator": json.loads(json.dumps(sampler_provenance, default=str)),
        "batch": job.batch_id,
        "part": job.part_id,
        "worker": worker,
        "device": device,
    }
