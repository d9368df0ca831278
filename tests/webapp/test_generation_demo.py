"""``manage.py demo --no-serve`` on a fresh SQLite database, through a real Celery worker.

The shipped demo checkpoints are replaced by untrained tiny ones (one weights file
copied for all four variants) and the sampling steps cut to 2, so that the test checks
the whole path (migrate, users, study, checkpoints, worker, batch, opening, summary) in
well under a minute; `make demo` runs the real thing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.helpers import ROOT, VARIANTS, make_tiny_checkpoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALLOWED_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def png_chunk_types(data: bytes) -> set[bytes]:
    assert data[:8] == PNG_SIGNATURE
    types, pos = set(), 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        types.add(data[pos + 4:pos + 8])
        pos += 12 + length
    return types


def run_demo(var_dir: Path, checkpoints: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "FUSION_MEDIA_ROOT")}
    env.update(FUSION_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="webapp.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve", "--checkpoints", str(checkpoints), "--steps", "2",
         "--concurrency", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    log = (var_dir / "demo-worker.log")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{log.read_text() if log.exists() else ''}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def demo_checkpoints(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo-checkpoints")
    first = make_tiny_checkpoint(root / VARIANTS[0])
    for variant in VARIANTS[1:]:
        shutil.copytree(first, root / variant)
    return root


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")),
                    reason="the demo always runs on its own SQLite database; `make test` runs this in its SQLite pass")
def test_demo_no_serve_generates_opens_and_is_rerunnable(tmp_path, demo_checkpoints):
    var_dir = tmp_path / "var"
    summary = run_demo(var_dir, demo_checkpoints)
    assert summary["study"] == "demo" and not summary["reused"]
    assert summary["images"] == dict.fromkeys(VARIANTS, 40)
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/join/[\w-]+/", summary["invite_url"])
    assert summary["logins"]["admin"]["username"] == "admin" and summary["logins"]["admin"]["password"]
    files = sorted((var_dir / "media" / "images").rglob("*"))
    pngs = [f for f in files if f.is_file()]
    assert len(pngs) == 160 + 2  # the generated images and the protocol's two gold images
    for png in pngs:
        assert re.fullmatch(r"[0-9a-f]{32}\.png", png.name) and png.parent.name == png.name[:2]
        assert png_chunk_types(png.read_bytes()) <= ALLOWED_CHUNKS
    # Again: the same study is reused as it is; nothing is generated twice.
    again = run_demo(var_dir, demo_checkpoints)
    assert again["reused"] and again["study"] == "demo" and again["invite_url"] == summary["invite_url"]
    assert sorted(f for f in (var_dir / "media" / "images").rglob("*") if f.is_file()) == pngs
