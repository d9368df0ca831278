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


def test_replacing_a_committed_table_does_not_count_as_a_changed_tree(tmp_path, monkeypatch):
    """The tree's state is read before the file is opened: truncating a committed results
    file on the way to rewriting it must not make the table say '(uncommitted changes)'."""
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    (results / "demo-2026-12-01.txt").write_text("old table\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "table")
    monkeypatch.setattr(_common, "ROOT", tmp_path)
    monkeypatch.setattr(_common, "RESULTS", results)
    path = _common.save_result("demo", "new table", day=dt.date(2026, 12, 1))
    last = path.read_text().splitlines()[-1]
    assert last.startswith("commit ") and "uncommitted" not in last, last
