"""Settings for every test process.

``make test`` runs the tests in two processes (pytest-xdist, ``-n 2``). The tests that use the
Redis server flush their database and start Celery workers on it as a broker, so each process
gets a database of its own: the one FUSION_TEST_REDIS_URL names for the first process (gw0),
the one below it for the next (gw1), and so on.

``--database-tests-only`` keeps the tests that can reach the database and deselects the rest:
``make test``'s second pass, on SQLite, runs only those (docs/development.md says why).
"""

from __future__ import annotations

import os

import pytest

# The fixtures through which pytest-django lets a test reach the database (the others it
# provides, django_db_reset_sequences and django_db_serialized_rollback, request one of these).
DATABASE_FIXTURES = frozenset({"db", "transactional_db", "live_server"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only", action="store_true",
        help="run only the tests that use the database (django_db marker, or the db, transactional_db or "
             "live_server fixture); pytest-django refuses the others any database access",
    )


def uses_database(item: pytest.Item) -> bool:
    """Whether pytest-django lets this test reach the database: the same rule its own
    ordering of tests applies (a django_db marker, or one of DATABASE_FIXTURES)."""
    return item.get_closest_marker("django_db") is not None or bool(
        DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("database_tests_only"):
        return
    deselected = [item for item in items if not uses_database(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if uses_database(item)]


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
