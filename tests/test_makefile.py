"""The Makefile's two commands, as `make -n` prints them (nothing is run)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def planned(*args: str) -> list[str]:
    """The commands `make -n ARGS` would run, one a line."""
    out = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_make_demo_serves_on_addrport_by_default_127_0_0_1_8000():
    assert "DEBUG=0 .venv/bin/python manage.py demo --addrport 127.0.0.1:8000" in planned("demo")
    assert "DEBUG=0 .venv/bin/python manage.py demo --addrport 127.0.0.1:8617" in planned(
        "demo", "ADDRPORT=127.0.0.1:8617")


def test_make_test_runs_its_second_pass_on_sqlite_whatever_the_shell_exports_for_the_database_tests():
    runs = [line for line in planned("test") if "-m pytest" in line]
    assert len(runs) == 2
    assert runs[0].startswith("DATABASE_URL=postgres://")
    assert runs[1].startswith("DATABASE_URL= ") and runs[1].endswith(" --database-tests-only tests/webapp")
