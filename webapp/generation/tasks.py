"""Celery tasks of the generation app: one part of a batch; the stale-part sweep; an
image set uploaded on the generation page.

``generate_part`` is routed to the ``gpu`` queue (CELERY_TASK_ROUTES). It takes the
part's id, re-reads everything, and returns early when the part is done or owned by a
live run, so a message delivered twice (acks_late after a crash) does no harm.
``import_image_set`` runs on the ``default`` queue (no route names it), as safe to run
twice (``import_runner``).
"""
from __future__ import annotations

import logging
import random
import uuid

from celery import Task, shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from . import import_runner, part_runner, parts

logger = logging.getLogger(__name__)

# Errors that may pass if the same run is tried again a little later: the database or
# the shared file system hiccuped. Anything the run itself got wrong is a PartFailure.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
MAX_RETRIES = 5
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 120.0


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with jitter: about 2, 4, 8, ... seconds, at most two minutes."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**retries) * random.uniform(0.75, 1.25)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def generate_part(self: Task, part_id: int, claim: str | None = None) -> str:
    """Generate the missing images of part ``part_id``; ``claim`` is passed on retries only."""
    claim = claim or uuid.uuid4().hex
    host = self.request.hostname or "local"
    try:
        return part_runner.part_run(part_id=part_id, claim=claim, worker=host)
    except parts.PartFailure as exc:
        parts.part_fail(part_id=part_id, claim=claim, message=str(exc))
        return "failed"
    except TRANSIENT_ERRORS as exc:
        message = f"{type(exc).__name__}: {exc}"
        if self.request.retries >= self.max_retries:
            parts.part_fail(
                part_id=part_id, claim=claim, message=f"Gave up after {self.request.retries} retries: {message}"
            )
            return "failed"
        countdown = backoff_seconds(self.request.retries)
        try:
            parts.part_postpone(part_id=part_id, claim=claim, seconds=countdown + 60,
                                   message=f"Retrying (attempt {self.request.retries + 2}) after: {message}")
        except DatabaseError:
            # The database itself is down: the retry will find out; if this worker dies
            # meanwhile, the part's heartbeat goes stale and the sweep sends it again.
            logger.warning("part %s: could not record the retry", part_id, exc_info=True)
        raise self.retry(exc=exc, countdown=countdown, args=(part_id,), kwargs={"claim": claim}) from exc
    except Exception as exc:
        # A bug or an error nobody foresaw: report it on the part, then let Celery log it.
        parts.part_fail(part_id=part_id, claim=claim, message=f"Unexpected {type(exc).__name__}: {exc}")
        raise


@shared_task(acks_late=True)
def requeue_stale_parts() -> list[int]:
    """Send again the running parts whose worker vanished (run by Celery beat)."""
    requeued = parts.parts_requeue_stale(stale_after=part_runner.stale_after())
    for part_id in requeued:  # committed by now: a worker finds the part queued
        generate_part.delay(part_id)
    if requeued:
        logger.warning("re-queued %d stale parts: %s", len(requeued), requeued)
    return requeued


@shared_task(acks_late=True)
def import_image_set(import_id: int) -> str:
    """Import the image set of ``ImageSetImport`` ``import_id``; returns its status afterwards."""
    return import_runner.import_run(import_id=import_id)
