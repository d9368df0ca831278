"""The README's "Running a study" block, run as written on a fresh checkout.

The block is extracted from README.md (the first ```sh block under the heading "Running
a study"), and run by bash in a copy of the working tree (what `git clone` would give:
tracked files and untracked ones that git does not ignore, so no var/ and no .venv), on
SQLite and the filesystem broker, with the project's Python first on PATH as an activated
virtual environment puts it. It generates the demo protocol's 160 images on the CPU:
about 3 minutes on 2 busy cores, hence the `slow` marker (deselect with -m "not slow").
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.narrow import present

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "a-long-password-for-alice-7"


def running_a_study_block(readme: str) -> str:
    """The shell block the README shows under "## Running a study"."""
    section = re.search(r"^## Running a study\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section, "README.md has no '## Running a study' section"
    block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
    assert block, "the 'Running a study' section has no ```sh block"
    return block.group(1)


def fresh_checkout(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():  # a file deleted but not yet committed is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _wait_unless_a_traceback(proc: subprocess.Popen, log: Path, *, timeout: float) -> int | None:
    """bash's exit status; None as soon as the log shows a traceback (the background worker
    dying leaves `launch_batch --wait` waiting for ever, as the block is written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        if "Traceback (most recent call last)" in log.read_text(errors="replace"):
            return None
        time.sleep(2.0)
    return None


def test_the_block_leaves_the_study_open_and_the_readme_closes_it_after_serving():
    """Run top to bottom, the README must not close the study before its serving block: a
    closed study stays closed, so a newcomer would serve a study nobody can join."""
    readme = (ROOT / "README.md").read_text()
    block = running_a_study_block(readme)
    assert "--close" not in block
    serve = readme.index("python manage.py runserver")
    close = readme.index("python manage.py study_status my-study --close")
    assert close > serve


@pytest.mark.slow
def test_the_running_a_study_block_works_as_written_on_a_fresh_checkout(tmp_path):
    block = running_a_study_block((ROOT / "README.md").read_text())
    assert "launch_batch" in block and "celery -A webapp worker" in block
    checkout = fresh_checkout(tmp_path / "fusion-eval")
    assert not (checkout / "var").exists()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "CELERY_", "FUSION_", "DJANGO_", "PYTEST", "SECRET_KEY", "DEBUG"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # No terminal (a new session has none): createsuperuser skips itself, and changepassword's
    # getpass reads the new password, twice, from stdin.
    # The output goes to a file: the background worker keeps a pipe open after bash exits.
    log = tmp_path / "block.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-e", "-c", block], cwd=checkout, env=env, stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            present(proc.stdin).write(f"{PASSWORD}\n{PASSWORD}\n")
            present(proc.stdin).close()
            returncode = _wait_unless_a_traceback(proc, log, timeout=20 * 60)
        finally:
            try:  # the block's background worker is in bash's process group
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait()
    output = log.read_text()
    assert returncode == 0, output
    assert re.search(r"batch \d+ complete: 160/160 images", output), output
    assert "Study my-study is open." in output, output
    db = sqlite3.connect(checkout / "var" / "db.sqlite3")
    (status, opened), = db.execute("SELECT status, opened_at FROM studies_study WHERE slug = 'my-study'")
    assert status == "open" and opened is not None  # opened when its images existed, left open to be served
    (n_images,), = db.execute("SELECT count(*) FROM studies_image WHERE variant_id IS NOT NULL")
    assert n_images == 160  # the model images; the gold images come with the study
    (has_password,), = db.execute("SELECT password NOT LIKE '!%' FROM auth_user WHERE username = 'alice'")
    assert has_password
