"""The Celery application; it reads every ``CELERY_*`` Django setting."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from celery import Celery, signals

if TYPE_CHECKING:
    from celery.app.utils import Settings
    from celery.beat import Service
    from celery.worker import WorkController

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The filesystem broker's folders (settings.py names them); kombu expects them to exist.
BROKER_FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


def broker_folders_create(conf: Settings | None = None) -> None:
    """Create the filesystem broker's folders when that broker is in use; nothing otherwise.

    Every process that talks to the broker calls this before its first message: a worker
    and beat as they start (the signals below), the web server and the commands when they
    queue a task (``webapp.generation.celery_workers.broker_prepare``).
    """
    conf = conf if conf is not None else app.conf
    if not str(conf.broker_url or "").startswith("filesystem://"):
        return
    options = conf.broker_transport_options or {}
    for key in BROKER_FOLDER_OPTIONS:
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@signals.worker_init.connect
def _worker_broker_folders(sender: WorkController | None = None, **kwargs: object) -> None:
    broker_folders_create(sender.app.conf if sender is not None else None)


@signals.beat_init.connect
def _beat_broker_folders(sender: Service | None = None, **kwargs: object) -> None:
    broker_folders_create(sender.app.conf if sender is not None else None)
