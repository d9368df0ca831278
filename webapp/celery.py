"""The Celery application; it reads every ``CELERY_*`` Django setting."""
import os
from pathlib import Path

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The filesystem broker's folders (settings.py names them); kombu expects them to exist.
BROKER_FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


def broker_folders_create(conf=None) -> None:
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
def _worker_broker_folders(sender=None, **kwargs) -> None:
    broker_folders_create(sender.app.conf if sender is not None else None)


@signals.beat_init.connect
def _beat_broker_folders(sender=None, **kwargs) -> None:
    broker_folders_create(sender.app.conf if sender is not None else None)
