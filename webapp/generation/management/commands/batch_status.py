"""Show a study's generation batch: images done per variant, speed, errors; optionally follow it.

    python manage.py batch_status SLUG [--batch N] [--follow]

Without --follow it prints one snapshot and exits 0 whatever the batch's state. With
--follow it prints a line whenever the progress changes until the batch ends, and fails
(exit 1, each failed part's message) when it ends other than complete.
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.generation import follow, selectors
from webapp.generation.models import Batch


class Command(BaseCommand):
    help = "Show the progress of a study's latest generation batch (or of --batch N); --follow until it ends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--batch", type=int, default=None, help="A batch number (default: the study's latest).")
        parser.add_argument("--follow", action="store_true", help="Print progress until the batch ends.")

    def handle(self, *args: object, **opts: Any) -> None:  # Any: argparse's values, one type per option
        study = study_by_slug(opts["slug"])
        if opts["batch"] is None:
            batch = selectors.study_latest_batch(study=study)
            if batch is None:
                raise CommandError(f"Study {study.slug} has no batch yet: python manage.py launch_batch {study.slug}")
        else:
            batch = Batch.objects.filter(study=study, pk=opts["batch"]).first()
            if batch is None:
                raise CommandError(f"Study {study.slug} has no batch {opts['batch']}.")
        if opts["follow"]:
            follow_and_report(self, batch)
            return
        p = selectors.batch_progress(batch=batch)
        self.stdout.write(follow.progress_line(p))
        for e in p["errors"]:
            self.stdout.write(f"  part {e['part']} ({e['variant']}, {e['status']}): {e['message']}")
        if p["note"]:
            self.stdout.write(f"  {p['note']}")
        if p["status"] == Batch.Status.QUEUED:
            self.stdout.write(f"  No worker has taken it yet; one is started with: {follow.WORKER_COMMAND}")


def follow_and_report(command: BaseCommand, batch: Batch) -> None:
    """Print each change of the batch's progress until it ends (``follow.batch_follow``);
    say when no worker has taken it; CommandError unless it completes."""
    last: list[tuple] = []

    def on_progress(p: selectors.BatchProgress) -> None:
        # A line when an image is done or the status changes, not when only the estimate moves.
        state = (p["status"], p["done"], len(p["errors"]))
        if not last or state != last[-1]:
            command.stdout.write(follow.progress_line(p))
            last.append(state)

    def on_no_worker(p: selectors.BatchProgress, waited: float) -> None:
        command.stderr.write(follow.no_worker_message(p, waited))

    p = follow.batch_follow(batch=batch, on_progress=on_progress, on_no_worker=on_no_worker)
    if p["status"] != Batch.Status.COMPLETE:
        raise CommandError(follow.batch_end_message(p))
    if p["note"]:
        command.stderr.write(p["note"])
