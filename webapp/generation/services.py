"""Writes for generation that admins make: checkpoints, batches, their cancelling and retries,
and image sets queued for import.

Every function is keyword-only and atomic. Tasks are queued with ``delay_on_commit``: a
worker never receives a part whose row is not committed yet. What a worker does with a
part lives in ``parts.py``; this module imports the tasks, and nothing the tasks import
imports it back.
"""
from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth.models import AnonymousUser, User
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.studies.models import Checkpoint, Image, Study, Variant, new_public_id

from . import import_runner, selectors
from .celery_workers import broker_prepare
from .models import MAX_PART_SIZE, Batch, ImageSetImport, Part
from .tasks import generate_part, import_image_set

if TYPE_CHECKING:
    from generator.pipeline import PipelineConfig


class CheckpointConfig(TypedDict):
    """What registration stores of one of our checkpoints (Checkpoint.config, as-is): the
    model config (UViTConfig.to_dict), the codec and text encoder specs, what the model
    predicts ("epsilon" or "v_prediction"), the training step and the name it was saved under
    (generator.checkpoint.CheckpointMetadata). A diffusers pipeline stores a PipelineConfig."""

    model: dict[str, Any]
    codec: dict[str, Any]
    text_encoder: dict[str, Any]
    prediction_type: str
    step: int
    name: str


class GenerationError(ValueError):
    """A request that cannot be carried out as asked; the message says why, for admins."""


class BatchActiveError(GenerationError):
    """A launch while the study's ``batch`` is still queued or running."""

    def __init__(self, batch: Batch):
        self.batch = batch
        super().__init__(f"Batch {batch.pk} is already {batch.status} for this study: "
                         "follow it, or cancel it before launching another.")


class ImportActiveError(GenerationError):
    """An image set uploaded while the study's ``job`` is still queued or running."""

    def __init__(self, job: ImageSetImport):
        self.job = job
        super().__init__(f"The image set {job.upload_name} (import {job.pk}) is still {job.status} for this study: "
                         "wait for it to end (this page shows it), then import another.")


def _enqueue(part_id: int) -> None:
    broker_prepare()  # the filesystem broker's folders, on first use by a fresh checkout
    generate_part.delay_on_commit(part_id)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_read(*, path: str | Path) -> tuple[str, CheckpointConfig | PipelineConfig]:
    """(sha256 of the weights, config to record) of a checkpoint folder or weights file.

    The config holds the model config, the codec and text encoder specs, what the model
    predicts (epsilon or v), the training step and the name the checkpoint was saved under.
    A folder written by diffusers' ``save_pretrained`` (it holds a ``model_index.json``) is
    a diffusers pipeline instead: it is loaded once to prove it can be, and its sha256 is
    that of its files' hashes (the config lists each file's hash, the pipeline class and
    its scheduler).

    Raises GenerationError for a path that holds neither, with the reason; the messages name
    ``path`` as given (``~`` is expanded for reading only).
    """
    from safetensors import SafetensorError

    from generator.checkpoint import WEIGHTS_FILE, checkpoint_sha256, read_metadata, weights_path
    from generator.pipeline import MODEL_INDEX, PipelineError, is_pipeline_folder, read_pipeline

    folder = Path(path).expanduser()
    if is_pipeline_folder(folder):
        try:
            info = read_pipeline(folder)
        except PipelineError as exc:
            raise GenerationError(str(exc)) from exc
        return info.sha256, info.to_dict()
    if folder.is_dir() and not (folder / WEIGHTS_FILE).is_file():
        raise GenerationError(
            f"{path} is neither a checkpoint (no {WEIGHTS_FILE} in it) nor a diffusers pipeline "
            f"(no {MODEL_INDEX} in it, as save_pretrained writes)."
        )
    file = weights_path(folder)
    if not file.is_file():
        raise GenerationError(f"No checkpoint weights at {path}: no such file or folder.")
    try:
        meta = read_metadata(file)
    except (SafetensorError, ValueError, KeyError, OSError) as exc:
        raise GenerationError(f"{file} is not a readable fusion-eval checkpoint: {exc}") from exc
    config = CheckpointConfig(model=meta.config.to_dict(), codec=meta.codec, text_encoder=meta.text_encoder,
                              prediction_type=meta.prediction_type, step=meta.step, name=meta.name)
    return checkpoint_sha256(file), config


def variant_expected_model(name: str) -> dict[str, str] | None:
    """The model a variant's name promises: ``concat-early`` is conditioning 'concat' with
    fusion 'early' (the paper's four names, optionally followed by more, e.g. ``cross-early-v2``);
    None for a name that promises nothing."""
    from generator.model import CONDITIONINGS, FUSIONS

    parts = name.split("-")
    if len(parts) >= 2 and parts[0] in CONDITIONINGS and parts[1] in FUSIONS:
        return {"conditioning": parts[0], "fusion": parts[1]}
    return None


def _check_fits(*, variant: Variant, checkpoint_name: str, config: Mapping[str, object]) -> None:
    """Refuse a checkpoint whose stored model config (a CheckpointConfig; a PipelineConfig has
    none) contradicts its variant's name."""
    expected = variant_expected_model(variant.name)
    if expected is None:
        return
    model = config.get("model")
    stored = {key: model.get(key) if isinstance(model, dict) else None for key in expected}
    if stored != expected:
        def show(d: dict) -> str:
            return ", ".join(f"{k}={v!r}" for k, v in d.items())

        raise GenerationError(
            f"Checkpoint {checkpoint_name!r} does not fit variant {variant.name}: its stored config has "
            f"{show(stored)}, the variant needs {show(expected)}."
        )


@transaction.atomic
def checkpoint_register(*, name: str, path: str | Path, variant: Variant | None = None) -> Checkpoint:
    """Register a checkpoint under ``name``, recording its sha256 and config; with
    ``variant``, assign it to that variant too, or neither when it does not fit.

    Registering the same weights under the same name again returns the existing row (its
    path updated if the file moved); other weights under a taken name are refused, since
    images already made would then point at weights that no longer exist.
    """
    name = name.strip()
    if not name:
        raise GenerationError("A checkpoint needs a name.")
    resolved = Path(path).expanduser().resolve()
    sha256, config = checkpoint_read(path=path)  # its messages name the path as it was given
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
        checkpoint = existing
    else:
        if variant is not None:
            _check_fits(variant=variant, checkpoint_name=name, config=config)
        checkpoint = Checkpoint.objects.create(name=name, path=str(resolved), sha256=sha256, config=config)
    if variant is not None:
        variant_assign_checkpoint(variant=variant, checkpoint=checkpoint)
    return checkpoint


@transaction.atomic
def variant_assign_checkpoint(*, variant: Variant, checkpoint: Checkpoint | None) -> Variant:
    """Choose the checkpoint that makes a variant's images; only while the study is a draft,
    and only one whose stored model config fits the variant's name."""
    variant = Variant.objects.select_related("study").select_for_update().get(pk=variant.pk)
    if variant.study.status != Study.Status.DRAFT:
        raise GenerationError("Checkpoints can only change while the study is a draft.")
    if variant.checkpoint_id == (checkpoint.pk if checkpoint else None):
        return variant
    if checkpoint is not None:
        _check_fits(variant=variant, checkpoint_name=checkpoint.name, config=checkpoint.config)
    if Batch.objects.filter(study_id=variant.study_id, status__in=Batch.ACTIVE).exists():
        raise GenerationError("A batch is running for this study: cancel it before changing checkpoints.")
    if variant.images.filter(source=Image.Source.MODEL).exclude(checkpoint=checkpoint).exists():
        raise GenerationError(
            f"Variant {variant.name} already has images from another checkpoint; start a fresh study instead."
        )
    variant.checkpoint = checkpoint
    variant.save(update_fields=["checkpoint"])
    return variant


@transaction.atomic
def variants_assign_checkpoints(*, assignments: list[tuple[Variant, Checkpoint | None]]) -> None:
    """Assign several variants at once: all of them, or (one refused) none."""
    for variant, checkpoint in assignments:
        variant_assign_checkpoint(variant=variant, checkpoint=checkpoint)


# --------------------------------------------------------------------------- launching


@transaction.atomic
def batch_launch(
    *,
    study: Study,
    cfg_scale: float | None = None,
    steps: int | None = None,
    part_size: int = MAX_PART_SIZE,
    open_when_complete: bool = False,
    user: User | AnonymousUser | None = None,
) -> Batch:
    """Plan the study's missing images as parts and queue them on the ``gpu`` queue.

    CFG scale and steps default to the protocol's sampling section. Parts hold at most
    ``part_size`` (prompt, seed) pairs of one variant. The missing images include the
    judge-only ones of the protocol's ``analysis.judge_images_per_cell``
    (``selectors.study_judge_work``: their seeds follow the evaluators'), after the
    evaluators' images of each variant; the worker marks them ``judge_only``.
    """
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status != Study.Status.DRAFT:
        raise GenerationError(f"Images are generated for draft studies only; this one is {study.status}.")
    if not 1 <= part_size <= MAX_PART_SIZE:
        raise GenerationError(f"A part holds 1 to {MAX_PART_SIZE} images, not {part_size}.")
    variants = list(study.variants.select_related("checkpoint").order_by("index"))
    work = selectors.study_missing_work(study=study)
    shown = selectors.study_missing_work(study=study, judge_only=False)
    # A variant whose images were all imported (an image set) needs no checkpoint; it has
    # none to draw judge-only images with either, so it goes without them.
    unassigned = [v.name for v in variants if v.checkpoint is None and shown[v.pk]]
    work = {v.pk: work[v.pk] if v.checkpoint is not None else [] for v in variants}
    if unassigned:
        first = "Assign" if Checkpoint.objects.exists() else "Register and assign"
        raise GenerationError(f"{first} a checkpoint for every variant before launching, or import an image "
                              f"set for a model trained elsewhere; without either: {', '.join(unassigned)}.")
    active = Batch.objects.filter(study=study, status__in=Batch.ACTIVE).first()
    if active is not None:
        raise BatchActiveError(active)
    sampling = selectors.study_sampling(study=study)
    cfg_scale = float(sampling.cfg_scale if cfg_scale is None else cfg_scale)
    steps = int(sampling.steps if steps is None else steps)
    if steps < 1 or cfg_scale < 0 or not math.isfinite(cfg_scale):
        raise GenerationError("Steps must be at least 1 and the CFG scale a number of at least 0.")
    total = sum(len(pairs) for pairs in work.values())
    if total == 0:
        raise GenerationError("Every image of this study exists already: there is nothing to generate.")
    batch = Batch.objects.create(
        study=study, cfg_scale=cfg_scale, steps=steps, sampler=sampling.sampler[:50],
        part_size=part_size, open_when_complete=open_when_complete, total_images=total,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    now = timezone.now()
    parts, number = [], 0
    for variant in variants:
        pairs = work[variant.pk]
        for start in range(0, len(pairs), part_size):
            chunk = [list(p) for p in pairs[start:start + part_size]]
            # Each image's random id is chosen now and kept with the part, so that a run
            # interrupted after writing a file and before committing its row writes the
            # same file again instead of leaving an orphan beside a second copy.
            image_ids = [new_public_id() for _ in chunk]
            parts.append(Part(batch=batch, variant=variant, number=number, work=chunk, image_ids=image_ids,
                              size=len(chunk), queued_at=now))
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


# --------------------------------------------------------------------------- image sets from the web


def _import_refusal(study: Study) -> None:
    """GenerationError when an image set cannot be queued for ``study`` now."""
    if study.status != Study.Status.DRAFT:
        raise GenerationError(f"Images are imported into draft studies only; this one is {study.status}.")
    active = ImageSetImport.objects.filter(study=study, status__in=ImageSetImport.ACTIVE).first()
    if active is not None:
        raise ImportActiveError(active)


def _upload_keep(upload: File, path: Path) -> None:
    """Copy ``upload`` to ``path`` (a new file, its owner's only, in a folder only its owner
    can list when it is created here), chunk by chunk."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def imageset_import_request(*, study: Study, upload: File, resize: bool = False,
                            user: User | AnonymousUser | None = None) -> ImageSetImport:
    """Keep an uploaded image set for a worker and queue its import (``tasks.import_image_set``).

    Refused (GenerationError) unless the study is a draft with no import queued or running.
    The upload is copied into the uploads folder (``import_runner.upload_dir``) under a
    random name of ours, never the uploaded one, before the row exists: copying up to
    2 GiB must not hold a transaction (on SQLite, every writer's lock) open. Refused
    after the copy, the copy is removed. The task is sent once the row is committed (a
    broker that cannot be reached then leaves the import queued, its upload kept: the
    admin's "mark failed" action releases it).
    """
    _import_refusal(study)  # before copying what may be 2 GiB
    name = f"imageset-{secrets.token_hex(16)}.zip"
    path = import_runner.upload_dir() / name
    _upload_keep(upload, path)
    try:
        with transaction.atomic():
            locked = Study.objects.select_for_update().get(pk=study.pk)
            _import_refusal(locked)
            try:
                with transaction.atomic():
                    job = ImageSetImport.objects.create(
                        study=locked, upload_name=Path(upload.name or "upload.zip").name[:255], upload_file=name,
                        resize=resize, created_by=user if user is not None and user.is_authenticated else None,
                    )
            except IntegrityError:  # another request queued one meanwhile (the unique constraint)
                active = ImageSetImport.objects.filter(study=locked, status__in=ImageSetImport.ACTIVE).first()
                if active is None:
                    raise GenerationError("Another image set was queued for this study meanwhile.") from None
                raise ImportActiveError(active) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    broker_prepare()  # the filesystem broker's folders, on first use by a fresh checkout
    import_image_set.delay_on_commit(job.pk)  # at once, or when the caller's transaction commits
    return job


@transaction.atomic
def imageset_import_abandon(*, job: ImageSetImport) -> ImageSetImport:
    """Mark a queued or running import failed, for one whose worker or message was lost
    (a run still going stores nothing: ``import_runner`` checks the row before it commits),
    and remove the files a killed run left, then its upload, so that the study can take another."""
    job = ImageSetImport.objects.select_for_update().get(pk=job.pk)
    if not job.is_active:
        raise GenerationError(f"Only a queued or running import can be marked failed; this one is {job.status}.")
    job.status = ImageSetImport.Status.FAILED
    job.problems = ["Marked failed by an administrator (its worker stopped, or its task was lost); "
                    "nothing was stored. Upload it again."]
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "problems", "finished_at"])
    transaction.on_commit(lambda: import_runner.finished_cleanup(job))
    return job
