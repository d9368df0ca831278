"""``manage.py demo --no-serve`` on a fresh SQLite database, through a real Celery worker.

The shipped demo checkpoints are replaced by untrained tiny ones (one per variant, of
the variant's own tiny preset) and the sampling steps cut to 2, so that the test checks
the whole path (migrate, users, study, checkpoints, worker, batch, opening, summary) in
well under a minute; `make demo` runs the real thing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.services.helpers import ROOT, VARIANTS, free_port, make_tiny_checkpoints

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALLOWED_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def png_chunk_types(data: bytes) -> set[bytes]:
    assert data[:8] == PNG_SIGNATURE
    types, pos = set(), 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        types.add(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def demo_env(var_dir: Path) -> dict[str, str]:
    """The environment of someone who typed `make demo`: nothing set but where var/ is."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "FUSION_MEDIA_ROOT", "SECRET_KEY", "DEBUG")
    }
    env.update(FUSION_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="webapp.settings")
    return env


def run_demo(var_dir: Path, checkpoints: Path) -> dict:
    env = demo_env(var_dir)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "demo",
            "--no-serve",
            "--checkpoints",
            str(checkpoints),
            "--steps",
            "2",
            "--concurrency",
            "1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = var_dir / "demo-worker.log"
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{log.read_text() if log.exists() else ''}"
    return json.loads(result.stdout.strip().splitlines()[-1])


# The key the code shipped before keys were random, and the id construction of that time.
OLD_DEVELOPMENT_KEY = "fusion-eval-development-key-not-for-production"


def old_image_id(key: str, variant_id: int, prompt_id: int, seed: int) -> str:
    return hmac.new(
        key.encode(), f"fusion-eval.image:{variant_id}:{prompt_id}:{seed}".encode(), hashlib.sha256
    ).hexdigest()[:32]


def assert_ids_unpredictable(var_dir: Path) -> None:
    """With the demo's own settings, the served ids cannot be recomputed: not with the key the
    code once shipped, nor with the demo's generated key (kept owner-only)."""
    key_file = var_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        rows = db.execute("SELECT public_id, prompt_id, seed FROM studies_image").fetchall()
        variants = [v for (v,) in db.execute("SELECT id FROM studies_variant")]
    served = {pid for pid, _, _ in rows}
    assert len(served) == 162
    for key in (OLD_DEVELOPMENT_KEY, key_file.read_text().strip()):
        assert not served & {old_image_id(key, v, p, seed) for _, p, seed in rows for v in variants}


# The passwords the demo printed before they were random.
OLD_DEMO_PASSWORDS = {"admin": "demo-admin-2403", "researcher": "demo-researcher-2403"}


def assert_passwords_private(var_dir: Path, summary: dict) -> None:
    """The demo's logins are random, kept owner-only under var/, and the old public ones fail."""
    from django.contrib.auth.hashers import check_password

    file = var_dir / "demo_passwords.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    passwords = json.loads(file.read_text())
    assert passwords == {role: login["password"] for role, login in summary["logins"].items()}
    code = (ROOT / "webapp" / "generation" / "demo.py").read_text()
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        stored = dict(db.execute("SELECT username, password FROM auth_user"))
    for role, password in passwords.items():
        assert len(password) >= 16 and password not in code
        assert check_password(password, stored[role])
        assert not check_password(OLD_DEMO_PASSWORDS[role], stored[role])


@pytest.fixture(scope="module")
def demo_checkpoints(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo-checkpoints")
    make_tiny_checkpoints(root)  # <root>/<variant>/, each of the variant's own tiny preset
    return root


# The demo always runs on its own SQLite database; `make test` runs these in its SQLite pass
# (tests/conftest.py skips them when DATABASE_URL is set, and --database-tests-only keeps them).
sqlite_only = pytest.mark.sqlite_only("the demo runs on its own SQLite database")


@sqlite_only
def test_demo_no_serve_generates_opens_and_is_rerunnable(tmp_path, demo_checkpoints):
    var_dir = tmp_path / "var"
    summary = run_demo(var_dir, demo_checkpoints)
    assert summary["study"] == "demo" and not summary["reused"]
    assert summary["images"] == dict.fromkeys(VARIANTS, 40)
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/join/[\w-]+/", summary["invite_url"])
    assert summary["logins"]["admin"]["username"] == "admin"
    assert_passwords_private(var_dir, summary)
    files = sorted((var_dir / "media" / "images").rglob("*"))
    pngs = [f for f in files if f.is_file()]
    assert len(pngs) == 160 + 2  # the generated images and the protocol's two gold images
    for png in pngs:
        assert re.fullmatch(r"[0-9a-f]{32}\.png", png.name) and png.parent.name == png.name[:2]
        assert png_chunk_types(png.read_bytes()) <= ALLOWED_CHUNKS
    assert_ids_unpredictable(var_dir)
    # Again: the same study is reused as it is; nothing is generated twice.
    again = run_demo(var_dir, demo_checkpoints)
    assert again["reused"] and again["study"] == "demo" and again["invite_url"] == summary["invite_url"]
    assert again["logins"] == summary["logins"]  # the printed passwords stay valid
    assert sorted(f for f in (var_dir / "media" / "images").rglob("*") if f.is_file()) == pngs


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def assert_generic(body: str) -> None:
    """An evaluator's error page: the invite-link advice, nothing of the server inside."""
    assert "use your invite link again" in body
    for leak in ("Traceback", "SECRET_KEY", "OperationalError", "urlpatterns", "URLconf", str(ROOT), "site-packages"):
        assert leak not in body, leak


@sqlite_only
def test_the_demo_server_answers_errors_with_the_generic_pages(tmp_path, demo_checkpoints):
    var_dir = tmp_path / "var"
    summary = run_demo(var_dir, demo_checkpoints)
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "demo",
            "--checkpoints",
            str(demo_checkpoints),
            "--concurrency",
            "1",
            "--addrport",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=demo_env(var_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = fetch(f"{base}/no-such-page/")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        status, body = fetch(f"{base}/no-such-page/")
        assert status == 404
        assert_generic(body)
        # Force a server error: the table every evaluator page reads is gone.
        with sqlite3.connect(var_dir / "db.sqlite3") as db:
            db.execute("DROP TABLE studies_study")
        status, body = fetch(summary["invite_url"].replace("http://127.0.0.1:8000", base))
        assert status == 500
        assert_generic(body)
    finally:
        os.kill(server.pid, signal.SIGTERM)  # the demo stops its Celery worker on SIGTERM
        server.wait(timeout=60)
        log.close()


def test_demo_passwords_differ_per_install_persist_and_a_bad_file_is_refused(tmp_path):
    from django.core.management.base import CommandError

    from webapp.generation.demo import PASSWORDS_FILE, demo_passwords

    first, second = demo_passwords(tmp_path / "a"), demo_passwords(tmp_path / "b")
    assert set(first) == {"admin", "researcher"} and not set(first.values()) & set(second.values())
    assert demo_passwords(tmp_path / "a") == first
    (tmp_path / "b" / PASSWORDS_FILE).write_text('{"admin": "short"}')
    with pytest.raises(CommandError, match="remove it to have new ones made"):
        demo_passwords(tmp_path / "b")
    (tmp_path / "b" / PASSWORDS_FILE).write_text("not json")
    with pytest.raises(CommandError, match="remove it to have new ones made"):
        demo_passwords(tmp_path / "b")
