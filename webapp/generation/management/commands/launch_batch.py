"""Launch (or retry, or cancel) a study's generation batch; optionally wait for it.

    python manage.py launch_batch SLUG [--cfg-scale S] [--steps N] [--part-size N] [--open] [--wait]
    python manage.py launch_batch SLUG --retry-failed [--wait]
    python manage.py launch_batch SLUG --cancel

The parts go to the broker named by CELERY_BROKER_URL, for workers of the ``gpu`` queue.
``--wait`` follows the batch like ``batch_status SLUG --follow`` (and says so when no
worker has taken it after a few seconds).
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.generation import celery_workers, follow, selectors, services
from webapp.generation.management.commands.batch_status import follow_and_report
from webapp.generation.models import MAX_PART_SIZE
from webapp.studies.models import Study


class Command(BaseCommand):
    help = "Queue the missing images of a study as parts on the gpu queue (or retry / cancel its batch)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--cfg-scale", type=float, default=None, help="Default: the protocol's.")
        parser.add_argument("--steps", type=int, default=None, help="Default: the protocol's.")
        parser.add_argument("--part-size", type=int, default=MAX_PART_SIZE)
        parser.add_argument("--open", action="store_true", help="Open the study when the batch completes.")
        parser.add_argument(
            "--retry-failed", action="store_true", help="Queue the failed parts of the latest batch again."
        )
        parser.add_argument("--cancel", action="store_true", help="Cancel the latest batch.")
        parser.add_argument(
            "--wait", action="store_true", help="Print progress until the batch ends; fail if it fails."
        )

    def handle(self, *args: object, **opts: Any) -> None:  # Any: argparse's values, one type per option
        study = study_by_slug(opts["slug"])
        celery_workers.broker_prepare()
        latest = selectors.study_latest_batch(study=study)
        try:
            if opts["retry_failed"] or opts["cancel"]:
                if latest is None:
                    raise CommandError("This study has no batch.")
                if opts["cancel"]:
                    services.batch_cancel(batch=latest)
                    self.stdout.write(f"Batch {latest.pk} cancelled.")
                    return
                n = services.batch_retry_failed(batch=latest)
                self.stdout.write(f"Batch {latest.pk}: {follow.counted(n, 'failed part')} queued again.")
                batch = latest
            else:
                batch = services.batch_launch(
                    study=study, cfg_scale=opts["cfg_scale"], steps=opts["steps"], part_size=opts["part_size"],
                    open_when_complete=opts["open"],
                )
                self.stdout.write(
                    f"Batch {batch.pk}: {follow.batch_size_text(batch)} queued"
                    + (f"; study {study.slug} opens when every image exists." if opts["open"] else ".")
                )
        except services.BatchActiveError as exc:
            raise CommandError(
                f"Batch {exc.batch.pk} of {study.slug} is already {exc.batch.status}. Follow it with\n"
                f"    python manage.py batch_status {study.slug} --follow\n"
                f"or stop it with: python manage.py launch_batch {study.slug} --cancel"
            ) from exc
        except services.GenerationError as exc:
            raise CommandError(str(exc)) from exc
        if opts["wait"]:
            follow_and_report(self, batch)
            study.refresh_from_db()
            if batch.open_when_complete and study.status == Study.Status.OPEN:
                # (when it could not be opened, follow_and_report has printed the batch's note: why)
                self.stdout.write(f"Study {study.slug} is open.")
