"""evalstudy.provenance: the commit and the package versions a results file records."""

import json
import os
import subprocess

import django
import numpy
import scipy

from evalstudy import provenance
from tests.narrow import present


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   check=True, capture_output=True)


def _repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def _head(repo):
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_versions_are_those_the_imported_packages_report():
    v = provenance.package_versions()
    assert list(v) == list(provenance.PACKAGES)
    assert v["numpy"] == numpy.__version__
    assert v["scipy"] == scipy.__version__
    assert v["django"] == django.__version__


def test_a_package_that_is_not_installed_is_none():
    assert provenance.package_versions(["numpy", "no-such-package-fusion-eval"]) == {
        "numpy": numpy.__version__, "no-such-package-fusion-eval": None}


def test_commit_is_head_and_clean_after_commit(tmp_path):
    repo = _repo(tmp_path)
    c = provenance.git_commit(repo)
    assert c == provenance.GitCommit(sha=_head(repo), dirty=False)
    assert len(c.sha) == 40
    assert str(c) == c.sha


def test_a_changed_tracked_file_makes_it_dirty_an_untracked_or_touched_one_does_not(tmp_path):
    repo = _repo(tmp_path)
    (repo / "new.txt").write_text("untracked\n")
    st = (repo / "a.txt").stat()
    os.utime(repo / "a.txt", (st.st_atime + 10, st.st_mtime + 10))  # same content, newer mtime
    assert present(provenance.git_commit(repo)).dirty is False
    (repo / "a.txt").write_text("two\n")
    c = present(provenance.git_commit(repo))
    assert c.dirty is True and c.sha == _head(repo)
    assert str(c) == f"{c.sha} (uncommitted changes)"


def test_outside_a_repository_there_is_no_commit(tmp_path):
    assert provenance.git_commit(tmp_path) is None
    p = provenance.collect(tmp_path, names=["numpy"])
    assert p.commit is None
    assert p.line() == f"commit unknown (no git checkout) | numpy {numpy.__version__}"


def test_line_and_json_name_the_commit_and_every_package(tmp_path):
    repo = _repo(tmp_path)
    p = provenance.collect(repo, names=["numpy", "no-such-package-fusion-eval"])
    assert p.line() == f"commit {_head(repo)} | numpy {numpy.__version__}, no-such-package-fusion-eval not installed"
    doc = json.loads(json.dumps(p.as_dict()))
    assert doc == {"commit": _head(repo), "dirty": False,
                   "packages": {"numpy": numpy.__version__, "no-such-package-fusion-eval": None}}
