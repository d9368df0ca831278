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
'''


def test_database_tests_only_keeps_every_test_that_can_reach_the_database(pytester: pytest.Pytester, monkeypatch):
    """Run in a child pytest on example tests: the project's conftest as a plugin, on SQLite."""
    pytester.makepyfile(test_examples=EXAMPLES)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DATABASE_URL", "")
    common = ["-p", "tests.conftest", "--ds", "webapp.settings", "--collect-only", "-q", "-p", "no:cacheprovider"]
    kept = pytester.runpytest_subprocess(*common, "--database-tests-only")
    kept.stdout.fnmatch_lines(["*5/7 tests collected (2 deselected)*"])
    listed = {line.split("::")[-1] for line in kept.outlines if "::" in line}
    assert listed == {"test_marked", "test_db", "test_transactional", "test_live", "test_through_a_fixture"}
