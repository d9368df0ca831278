"""What a worker does with an image set uploaded on the generation page (``tasks.import_image_set``).

The import itself is ``imagesets.imageset_import``: every row checked, then all of it stored
in one transaction, or none. This module keeps the ``ImageSetImport`` row in step with it,
so that a run can be repeated after any crash (acks_late sends the message again):

- a finished import (done or failed) is left alone; only its upload is removed, should a
  crash have left it, and for a failed one first the files a killed run left (``finished_cleanup``);
- the row is marked done inside the transaction that stores the images (``on_stored``), so
  images never exist beside an import that is not done, and a run that finds the import
  finished by another run meanwhile rolls its own images back;
- the run reads its row's status before each file it decodes or stores, and stops when it
  is no longer running (an administrator's "mark failed"), rolling back and removing what
  it wrote; a mark made after the last of those reads is caught by ``_mark_done``, which
  locks the row in the storing transaction and stores nothing unless it is still running,
  and a mark asked for while that lock is held waits for the commit and then finds the
  import done;
- the images' ids are derived from the row's ``id_key``, so a run that died after writing
  some files and before its transaction committed leaves files that the next run writes
  again, instead of orphans beside a second copy.

A refused upload's problems are stored on the row for the page; any other error is logged
with its traceback and stored as one generic sentence (an exception's text may name a
path on the server). Nothing here sends Celery messages: the services queue the task.
"""
from __future__ import annotations

import logging
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import imagesets
from .models import ImageSetImport

logger = logging.getLogger(__name__)

UNEXPECTED = ("The import stopped on an unexpected error on the server, and nothing was stored. "
              "The error is in the worker's log for the administrators; try again, or ask them.")
TIME_LIMIT = ("The import ran longer than the {seconds:,} seconds a worker gives it "
              "(FUSION_IMPORT_TIME_LIMIT_S) and was stopped; nothing was stored.")
UPLOAD_MISSING = ("The uploaded file is not where the worker looks for it (the uploads folder, "
                  "FUSION_IMPORT_UPLOAD_DIR, must be shared by the web server and the workers); upload it again.")


def upload_dir() -> Path:
    """Where uploads wait for their worker: FUSION_IMPORT_UPLOAD_DIR, else MEDIA_ROOT/uploads."""
    configured = settings.FUSION_IMPORT_UPLOAD_DIR
    return Path(configured) if configured else Path(settings.MEDIA_ROOT) / "uploads"


def upload_path(job: ImageSetImport) -> Path:
    return upload_dir() / job.upload_file


class _FinishedMeanwhile(Exception):
    """The import was finished (by another run, or marked failed) while this run stored its images."""


@transaction.atomic
def _claim(import_id: int) -> ImageSetImport | None:
    """The import, marked running for this run when it is queued or running; None when it is gone."""
    job = ImageSetImport.objects.select_for_update().filter(pk=import_id).first()
    if job is None or not job.is_active:
        return job
    now = timezone.now()
    job.status = ImageSetImport.Status.RUNNING
    job.attempts += 1
    job.started_at = job.started_at or now
    job.save(update_fields=["status", "attempts", "started_at"])
    return job


def _mark_done(import_id: int, result: imagesets.ImportResult) -> None:
    """Inside the transaction that stores the images: the import is done, or (finished
    meanwhile) nothing is stored."""
    job = ImageSetImport.objects.select_for_update().get(pk=import_id)
    if job.status != ImageSetImport.Status.RUNNING:
        raise _FinishedMeanwhile
    job.status = ImageSetImport.Status.DONE
    job.summary = imagesets.import_summary(result)
    job.problems = []
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "summary", "problems", "finished_at"])


def _no_longer_running(import_id: int) -> bool:
    """Whether the import's row says it is no longer running (marked failed by an
    administrator, or finished by another run): one read by primary key, committed data."""
    return not ImageSetImport.objects.filter(pk=import_id, status=ImageSetImport.Status.RUNNING).exists()


def _mark_failed(import_id: int, problems: list[str]) -> None:
    """The import failed with ``problems``, unless it was finished meanwhile."""
    ImageSetImport.objects.filter(pk=import_id, status=ImageSetImport.Status.RUNNING).update(
        status=ImageSetImport.Status.FAILED, problems=problems, finished_at=timezone.now()
    )


def upload_remove(job: ImageSetImport) -> None:
    upload_path(job).unlink(missing_ok=True)


def finished_cleanup(job: ImageSetImport) -> None:
    """For a finished import: a failed one's files that a killed run left are removed (named
    from its upload's manifest and ``id_key``), then its upload."""
    path = upload_path(job)
    if job.status == ImageSetImport.Status.FAILED and path.is_file():
        removed = imagesets.imageset_files_remove(study=job.study, path=path, id_key=job.id_key)
        if removed:
            logger.warning("image set import %s failed; removed %d files an earlier run left", job.pk, removed)
    upload_remove(job)


def import_run(*, import_id: int) -> str:
    """Import the upload of import ``import_id``; return its status afterwards ("missing"
    when the row is gone). Never raises for a refused upload or an error of the import."""
    job = _claim(import_id)
    if job is None:
        return "missing"
    if job.is_active:
        path = upload_path(job)
        try:
            if not path.is_file():
                raise imagesets.ImageSetError([UPLOAD_MISSING])
            imagesets.imageset_import(
                study=job.study, path=path, resize=job.resize, user=job.created_by, id_key=job.id_key,
                name=f"The upload {job.upload_name}" if job.upload_name else "The upload",
                on_stored=lambda result: _mark_done(import_id, result),
                should_stop=lambda: _no_longer_running(import_id),
            )
        except imagesets.ImportStopped:
            logger.warning("image set import %s was finished meanwhile (marked failed?); this run stopped", import_id)
        except _FinishedMeanwhile:
            logger.warning("image set import %s was finished by another run; this run stored nothing", import_id)
        except imagesets.ImageSetError as exc:
            _mark_failed(import_id, exc.problems)
        except SoftTimeLimitExceeded:  # raised in the run by Celery; _store's transaction rolled back
            logger.warning("image set import %s ran past its time limit", import_id)
            _mark_failed(import_id, [TIME_LIMIT.format(seconds=settings.FUSION_IMPORT_TIME_LIMIT_S)])
        except Exception:
            logger.exception("image set import %s of study %s failed", import_id, job.study.slug)
            _mark_failed(import_id, [UNEXPECTED])
        job.refresh_from_db()
    if not job.is_active:
        finished_cleanup(job)
    return job.status
