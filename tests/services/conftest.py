"""Service tests: real Celery worker processes, the real Redis server, one shared database.

They need FUSION_TEST_REDIS_URL (``make test`` sets it to redis://127.0.0.1:6379/15; that
database is flushed). The database is pytest-django's test database, file-based SQLite or
PostgreSQL (DATABASE_URL): worker processes get its name and connect to it too, which is
why these tests use ``transactional_db`` (committed rows) rather than ``db``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from webapp.generation import celery_workers

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("FUSION_TEST_REDIS_URL", "")

requires_redis = pytest.mark.skipif(
    not REDIS_URL, reason="FUSION_TEST_REDIS_URL is not set: service tests need the Redis server (make test sets it)"
)


@pytest.fixture(scope="module")
def redis_flushed():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.close()


@pytest.fixture(scope="module")
def media_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def service_env(django_db_setup, django_db_blocker, redis_flushed, media_root, tmp_path_factory) -> dict[str, str]:
    """The environment of every process a service test starts (workers, commands)."""
    with django_db_blocker.unblock():
        name = str(connection.settings_dict["NAME"])
    return {
        "DJANGO_SETTINGS_MODULE": "tests.services.worker_settings",
        "PYTHONPATH": str(ROOT),
        "FUSION_TEST_DB_NAME": name,
        "FUSION_TEST_REDIS_URL": redis_flushed,
        "FUSION_TEST_BEAT_FILE": str(tmp_path_factory.mktemp("beat") / "schedule"),
        "FUSION_MEDIA_ROOT": str(media_root),
        "FUSION_TORCH_THREADS": "1",
        "FUSION_GENERATION_CHUNK": "2",
        "FUSION_PART_STALE_SECONDS": "6",
    }


@pytest.fixture(autouse=True)
def _same_media_root(settings, media_root):
    settings.MEDIA_ROOT = media_root


class Workers:
    """Worker processes started by a test; all stopped (or killed) at its end."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, **options) -> subprocess.Popen:
        proc = celery_workers.worker_spawn(log_path=self.logs / f"{name}.log", env=self.env, cwd=ROOT, name=name,
                                       loglevel="INFO", **options)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        celery_workers.worker_kill(proc)

    def logs_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{celery_workers.log_tail(p, 25)}" for p in sorted(self.logs.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            celery_workers.worker_stop(proc, timeout=20)


@pytest.fixture
def workers(service_env, tmp_path):
    pool = Workers(service_env, tmp_path / "logs")
    yield pool
    pool.stop_all()


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``manage.py`` in a child process with the service tests' environment."""
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env={**os.environ, **env}, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def wait_for(predicate, *, timeout: float, what: str, workers: Workers | None = None, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}.\n{workers.logs_tail() if workers else ''}")
