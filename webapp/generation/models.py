"""Generation batches: the study's missing images, cut into parts that GPU workers run; and
image sets uploaded on the generation page, imported by a worker.

A batch is launched for one study with one sampling setting (CFG scale, steps). It is cut
into parts of at most ``MAX_PART_SIZE`` (prompt, seed) pairs of one variant; each part is
one Celery task. Progress is counted in the database, in the same transaction that stores
an image, so it stays right when a worker dies and its part is re-run.
"""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from webapp.studies.models import Study, Variant

MAX_PART_SIZE = 50
MAX_PROBLEMS_SHOWN = 50  # of a refused image set's problems, those listed (the rest are counted)


class Batch(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETE = "complete", "Complete"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="generation_batches")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    cfg_scale = models.FloatField()
    steps = models.PositiveIntegerField()
    sampler = models.CharField(max_length=50, help_text="The protocol's sampler name.")
    part_size = models.PositiveSmallIntegerField(default=MAX_PART_SIZE)
    open_when_complete = models.BooleanField(default=False, help_text="Open the study when every image exists.")
    total_images = models.PositiveIntegerField(help_text="Images this batch was launched to make.")
    note = models.TextField(blank=True, help_text="Why the study was not opened, when it was asked to be.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        constraints = [
            # Two batches writing the same study's images at once would race for nothing.
            models.UniqueConstraint(
                fields=["study"], condition=Q(status__in=["queued", "running"]), name="batch_one_active_per_study"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "complete", "failed", "cancelled"]),
                name="batch_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(part_size__gte=1) & Q(part_size__lte=MAX_PART_SIZE), name="batch_part_size_range"
            ),
            models.CheckConstraint(condition=Q(steps__gte=1) & Q(cfg_scale__gte=0), name="batch_sampling_valid"),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} of {self.study.slug} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class Part(models.Model):
    """Up to ``MAX_PART_SIZE`` images of one variant: one Celery task.

    ``work`` lists ``[prompt_id, seed]`` pairs; ``image_ids`` the random public id that each
    pair's image gets, chosen at launch, so a re-run writes the same file. ``claim`` is the token of the task run that
    owns the part while it is running; a run whose claim was taken over (the part was
    re-queued because its heartbeat went stale) stops at its next write.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="parts")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="generation_parts")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    work = models.JSONField(help_text="[prompt id, seed] pairs, in generation order.")
    image_ids = models.JSONField(default=list, blank=True, help_text="The random public id of each pair's image.")
    size = models.PositiveSmallIntegerField()
    images_done = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="Task runs that claimed this part.")
    requeues = models.PositiveIntegerField(default=0, help_text="Times it was re-sent after its worker vanished.")
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="Host name of the last worker that ran it.")
    claim = models.CharField(max_length=32, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "number"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "number"], name="part_unique_number"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed", "cancelled"]), name="part_status_valid"
            ),
            models.CheckConstraint(condition=Q(size__gte=1) & Q(size__lte=MAX_PART_SIZE), name="part_size_range"),
            models.CheckConstraint(condition=Q(images_done__lte=F("size")), name="part_done_within_size"),
            models.CheckConstraint(
                condition=~Q(status="running") | (~Q(claim="") & Q(heartbeat_at__isnull=False)),
                name="part_running_is_claimed",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="part_status_heartbeat")]

    def __str__(self) -> str:
        return f"part {self.number} of batch {self.batch_id} ({self.variant.name}, {self.status})"


# --------------------------------------------------------------------------- image set imports


def new_id_key() -> str:
    return secrets.token_hex(16)


class ImageSetImport(models.Model):
    """An image set uploaded on the generation page, imported by a Celery task
    (``tasks.import_image_set``, ``import_runner.import_run``).

    The upload waits in the uploads folder under ``upload_file``, a random name of ours,
    until the task ends, and is deleted then. The images' public ids are derived from
    ``id_key`` (``imagesets.imageset_import``), so a run that died after writing some files
    and is run again writes the same files. The import is marked done in the transaction
    that stores its images. At most one import per study waits or runs at a time.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="imageset_imports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    upload_name = models.CharField(max_length=255, help_text="The file's name as the browser sent it: shown only.")
    upload_file = models.CharField(max_length=100, unique=True,
                                   help_text="The kept upload's file name in the uploads folder (random).")
    resize = models.BooleanField(default=False, help_text="Resize every image to the protocol's sampling.size.")
    id_key = models.CharField(max_length=32, default=new_id_key, editable=False,
                              help_text="The key the images' public ids are derived from.")
    summary = models.TextField(blank=True, help_text="What the import stored (imagesets.import_summary).")
    problems = models.JSONField(default=list, blank=True,
                                help_text="Why it was refused, in words (ImageSetError keeps MAX_PROBLEMS_SHOWN).")
    attempts = models.PositiveIntegerField(default=0, help_text="Task runs that started it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A second import of the same study would decode the whole upload only to be
            # refused at the end (its variants would have images by then): refuse it at once.
            models.UniqueConstraint(
                fields=["study"], condition=Q(status__in=["queued", "running"]),
                name="imageset_import_one_active_per_study",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed"]), name="imageset_import_status_valid"
            ),
            models.CheckConstraint(condition=~Q(status="done") | ~Q(summary=""), name="imageset_import_done_summary"),
        ]

    def __str__(self) -> str:
        return f"image set import {self.pk} of {self.study.slug} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

