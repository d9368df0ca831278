"""tests/conftest.py's --database-tests-only: what `make test`'s SQLite pass keeps."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]

EXAMPLES = '''
import pytest

@pytest.mark.django_db
def test_marked(): pass

def test_db(db): pass

def test_transactional(transactional_db): pass

def test_live(live_server): pass

@pytest.fixture
def rows(db): return []

def test_through_a_fixture(rows): pass

def test_plain(): pass

def test_tmp(tmp_path): pass

@pytest.mark.sqlite_only("its own SQLite database")
def test_own_sqlite(tmp_path): pass
'''


def test_database_tests_only_keeps_every_test_that_can_reach_the_database(pytester: pytest.Pytester, monkeypatch):
    """Run in a child pytest on example tests: the project's conftest as a plugin, on SQLite."""
    pytester.makepyfile(test_examples=EXAMPLES)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DATABASE_URL", "")
    common = ["-p", "tests.conftest", "--ds", "webapp.settings", "--collect-only", "-q", "-p", "no:cacheprovider"]
    kept = pytester.runpytest_subprocess(*common, "--database-tests-only")
    kept.stdout.fnmatch_lines(["*6/8 tests collected (2 deselected)*"])
    listed = {line.split("::")[-1] for line in kept.outlines if "::" in line}
    assert listed == {"test_marked", "test_db", "test_transactional", "test_live", "test_through_a_fixture",
                      "test_own_sqlite"}


def test_sqlite_only_is_skipped_when_database_url_is_set(pytester: pytest.Pytester, monkeypatch):
    pytester.makepyfile(test_examples=EXAMPLES)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")  # never reached: nothing is run on it
    ran = pytester.runpytest_subprocess("-p", "tests.conftest", "--ds", "webapp.settings", "-p", "no:cacheprovider",
                                        "-rs", "-k", "own_sqlite or plain")
    ran.assert_outcomes(passed=1, skipped=1)
    ran.stdout.fnmatch_lines(["*SQLite only (its own SQLite database); DATABASE_URL is set*"])
