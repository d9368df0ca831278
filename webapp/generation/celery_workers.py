"""Starting and stopping Celery worker processes from a command (the demo, the benchmark).

A worker is a separate OS process (``celery -A webapp worker``) that inherits this
process's environment: the same settings, database and broker.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TypedDict, Unpack

from django.conf import settings


def broker_prepare() -> None:
    """Create the filesystem broker's folders when that broker is in use (kombu does not)."""
    from webapp.celery import broker_folders_create

    broker_folders_create()


def worker_command(*, queues: str = "gpu,default", pool: str = "solo", concurrency: int = 1, name: str = "worker",
                   beat: bool = False, loglevel: str = "WARNING") -> list[str]:
    cmd = [
        sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", queues, "--pool", pool,
        "--concurrency", str(concurrency), "--hostname", f"{name}@%h", "--loglevel", loglevel,
        # Mingle and gossip talk to other workers at start-up; a lone worker only waits on them.
        "--without-mingle", "--without-gossip",
    ]
    if beat:
        cmd.append("--beat")
    return cmd


class WorkerOptions(TypedDict, total=False):
    """`worker_command`'s keyword arguments, as `worker_spawn` passes them on."""

    queues: str
    pool: str
    concurrency: int
    name: str
    beat: bool
    loglevel: str


def worker_spawn(*, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
                 **options: Unpack[WorkerOptions]) -> subprocess.Popen:
    """Start a worker in its own process group (so it can be stopped with its children)."""
    broker_prepare()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            worker_command(**options), stdout=log, stderr=subprocess.STDOUT, env=full_env,
            cwd=str(cwd or settings.BASE_DIR), start_new_session=True,
        )


def worker_stop(proc: subprocess.Popen, *, timeout: float = 30.0) -> int:
    """Warm shutdown, then SIGKILL to the group if it does not exit in time.

    SIGTERM goes to the main process only: it stops its pool processes itself, whereas
    pool processes that receive SIGTERM too leave it waiting on them.
    """
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker_kill(proc)
    return proc.returncode


def worker_kill(proc: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool processes, as a crash would."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def log_tail(log_path: Path, lines: int = 30) -> str:
    if not log_path.exists():
        return ""
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
