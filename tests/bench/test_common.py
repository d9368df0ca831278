"""bench/_common.save_result: every table written names the commit and the package versions."""

import datetime as dt

from bench import _common
from evalstudy import provenance


def test_each_saved_table_ends_with_the_commit_and_versions(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    day = dt.date(2026, 12, 1)
    line = provenance.collect(_common.ROOT).line()
    assert line.startswith("commit ") and "torch " in line and "django " in line

    path = _common.save_result("demo", "table one", day=day)
    assert path == tmp_path / "demo-2026-12-01.txt"
    assert path.read_text() == f"table one\n{line}\n"

    _common.save_result("demo", "table two\n\n", append=True, day=day)
    assert path.read_text() == f"table one\n{line}\ntable two\n{line}\n\n"

    _common.save_result("demo", "replaced", day=day)
    assert path.read_text() == f"replaced\n{line}\n"
