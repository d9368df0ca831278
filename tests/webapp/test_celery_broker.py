"""A Celery worker started first on a fresh checkout creates the filesystem broker's folders
(kombu does not; the README's worker used to die with FileNotFoundError var/broker/queue)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from webapp.celery import BROKER_FOLDER_OPTIONS, broker_folders_create

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_started_first_creates_the_broker_folders_and_keeps_running(tmp_path):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL", "FUSION_"))}
    env["FUSION_VAR_DIR"] = str(var)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu,default", "--pool", "solo",
             "--without-mingle", "--without-gossip", "--loglevel", "INFO"],  # INFO: its "ready." line
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        queue = var / "broker" / "queue"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.poll() is None and "ready." not in log.read_text(errors="replace"):
            time.sleep(0.5)
        assert "ready." in log.read_text(errors="replace"), log.read_text(errors="replace")
        time.sleep(2.0)  # a worker without its folders dies on its first poll of the queue
        assert worker.poll() is None, log.read_text(errors="replace")
        assert queue.is_dir() and (var / "broker" / "control").is_dir() and (var / "broker" / "processed").is_dir()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def test_other_brokers_need_no_folders(tmp_path):
    options = {key: str(tmp_path / key) for key in BROKER_FOLDER_OPTIONS}
    broker_folders_create(SimpleNamespace(broker_url="redis://127.0.0.1:6379/0", broker_transport_options=options))
    assert list(tmp_path.iterdir()) == []
    broker_folders_create(SimpleNamespace(broker_url="filesystem://", broker_transport_options=options))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BROKER_FOLDER_OPTIONS)
