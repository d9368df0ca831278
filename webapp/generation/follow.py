"""Following a batch from a terminal: the one polling loop of ``launch_batch --wait``,
``batch_status --follow`` and ``demo``.

The loop only reads (``selectors.batch_progress``); what to print is the caller's.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from .models import Batch
from .selectors import BatchProgress, batch_progress

# What the README's "Running a study" block starts; production runs one per GPU
# (docs/operations.md).
WORKER_COMMAND = "celery -A webapp worker -Q gpu,default --pool solo"
# A worker takes a queued part within a second or two once it is up (and a cold start on a
# busy machine, importing torch, takes a few more): after this long nobody is listening.
NO_WORKER_SECONDS = 8.0


def counted(n: int, noun: str) -> str:
    """``1 part``, ``4 parts``: a count and its noun (a regular plural), for messages."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def batch_size_text(batch: Batch) -> str:
    """What a batch makes, e.g. ``160 images in 4 parts`` (``4 images in 1 part``)."""
    return f"{counted(batch.total_images, 'image')} in {counted(batch.parts.count(), 'part')}"


def progress_line(p: BatchProgress) -> str:
    """One line for a ``batch_progress`` snapshot: status, images done (per variant), speed."""
    line = f"batch {p['batch']} {p['status']}: {p['done']}/{p['total']} images" + "".join(
        f", {v['name']} {v['done']}/{v['total']}" for v in p["variants"])
    if p["rate"] and p["status"] in Batch.ACTIVE:
        line += f" ({p['rate']:.2f} images/s" + (f", about {p['eta_seconds']:.0f} s left)" if p["eta_seconds"]
                                                   is not None else ")")
    return line


def no_worker_message(p: BatchProgress, waited: float) -> str:
    return (f"No worker has taken batch {p['batch']} after {waited:.0f} s. If none is running, start one in "
            f"another shell, in this folder with the same environment:\n    {WORKER_COMMAND}\n"
            f"Still waiting (Ctrl-C stops waiting, not the batch; `python manage.py batch_status {p['study']}` "
            "shows it later).")


def batch_follow(*, batch: Batch, on_progress: Callable[[BatchProgress], None], interval: float = 1.0,
                 on_no_worker: Callable[[BatchProgress, float], None] | None = None,
                 no_worker_after: float | None = None, check: Callable[[], None] | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> BatchProgress:
    """Poll ``batch`` every ``interval`` seconds until it ends; return its last snapshot.

    ``on_progress`` gets every snapshot. ``on_no_worker`` is called once when the batch is
    still queued (no worker has claimed any of its parts) ``no_worker_after`` seconds
    (default NO_WORKER_SECONDS) after the loop began. ``check`` runs between polls and may
    raise to stop following (the demo stops when its own worker dies).
    """
    no_worker_after = NO_WORKER_SECONDS if no_worker_after is None else no_worker_after
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    started = clock()
    warned = False
    while True:
        p = batch_progress(batch=batch)
        on_progress(p)
        if p["status"] not in Batch.ACTIVE:
            return p
        waited = clock() - started
        if on_no_worker is not None and not warned and p["status"] == Batch.Status.QUEUED and waited >= no_worker_after:
            warned = True
            on_no_worker(p, waited)
        if check is not None:
            check()
        sleep(interval)


def batch_end_message(p: BatchProgress) -> str:
    """Why a batch that did not complete ended so, part by part."""
    errors = "".join(f"\n  part {e['part']} ({e['variant']}): {e['message']}" for e in p["errors"])
    return f"Batch {p['batch']} ended {p['status']}." + errors
