"""Settings for every test process.

``make test`` runs the tests in two processes (pytest-xdist, ``-n 2``). The tests that use the
Redis server flush their database and start Celery workers on it as a broker, so each process
gets a database of its own: the one FUSION_TEST_REDIS_URL names for the first process (gw0),
the one below it for the next (gw1), and so on.

``--database-tests-only`` keeps the tests whose run depends on the database of the pass and
deselects the rest: ``make test``'s second pass, on SQLite, runs only those (docs/development.md
says why). A test marked ``sqlite_only("why")`` is skipped when DATABASE_URL is set.
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
             "live_server fixture) and those marked sqlite_only; pytest-django refuses the others any database access",
    )


def uses_database(item: pytest.Item) -> bool:
    """Whether this test's run depends on the pass's database: pytest-django lets it reach the
    database (its own rule for ordering tests: a django_db marker, or one of DATABASE_FIXTURES),
    or it runs only on SQLite (skipped on PostgreSQL, so the SQLite pass is its only run)."""
    return (item.get_closest_marker("django_db") is not None or item.get_closest_marker("sqlite_only") is not None
            or bool(DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))))


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("sqlite_only")
    if marker is not None and os.environ.get("DATABASE_URL"):
        pytest.skip(f"SQLite only ({marker.args[0] if marker.args else 'sqlite_only'}); DATABASE_URL is set")


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
