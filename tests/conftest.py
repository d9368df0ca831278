"""Settings for every test process.

``make test`` runs the tests in two processes (pytest-xdist, ``-n 2``). The tests that use the
Redis server flush their database and start Celery workers on it as a broker, so each process
gets a database of its own: the one FUSION_TEST_REDIS_URL names for the first process (gw0),
the one below it for the next (gw1), and so on.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist; unset otherwise
    url = os.environ.get("FUSION_TEST_REDIS_URL", "")
    if not worker or not url:
        return
    base, _, number = url.rstrip("/").rpartition("/")
    if not number.isdigit():
        raise pytest.UsageError(f"FUSION_TEST_REDIS_URL must end in a database number (e.g. /15), not {url!r}")
    database = int(number) - int(worker.removeprefix("gw"))
    if database < 0:
        raise pytest.UsageError(
            f"FUSION_TEST_REDIS_URL's database {number} leaves no database for process {worker}: name a higher one")
    os.environ["FUSION_TEST_REDIS_URL"] = f"{base}/{database}"
