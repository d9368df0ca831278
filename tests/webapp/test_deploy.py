"""`manage.py check --deploy` is clean with the production environment docs/operations.md documents."""
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

from tests.narrow import present

ROOT = Path(__file__).resolve().parents[2]


def readme_production_env() -> dict[str, str]:
    """The variables exported in docs/operations.md's "Set-up, once" block."""
    readme = (ROOT / "docs" / "operations.md").read_text()
    block = present(re.search(r"## Set-up, once\s+```sh\n(.*?)```", readme, re.S)).group(1)
    env = {}
    for line in block.splitlines():
        if line.startswith("export "):
            for pair in shlex.split(line[len("export "):], comments=True):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_check_deploy_prints_no_issue_with_the_readme_production_env(tmp_path):
    env = readme_production_env()
    assert env["SECRET_KEY"] == "..." and env["FUSION_HTTPS"] == "1"
    env["SECRET_KEY"] = secrets.token_urlsafe(50)  # "..." in the README: one of your own
    # The test process's own switches stay out (tests/e2e sets DJANGO_ALLOW_ASYNC_UNSAFE).
    clean = {k: v for k, v in os.environ.items()
             if k not in {"DEBUG", "DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env={**clean, **env, "FUSION_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "webapp.settings"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert not (tmp_path / "secret_key").exists()  # production never makes a key of its own


TEMPLATE_DIRS = [ROOT / "webapp"]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:", re.I)


def test_no_template_has_an_inline_script():
    """The CSP allows scripts from this site's own files only: an inline one would be blocked."""
    offenders = [f"{path.relative_to(ROOT)}: {m.group(0)}" for d in TEMPLATE_DIRS for path in d.rglob("*.html")
                 for m in INLINE_SCRIPT.finditer(path.read_text())]
    assert not offenders, offenders


def test_every_page_carries_the_csp_and_https_headers_when_asked(settings, db):
    from django.test import Client

    response = Client().get("/research/login/")
    csp = response["Content-Security-Policy"]
    script_src = present(re.search(r"script-src ([^;]*)", csp)).group(1)
    assert script_src.split() == ["'self'"] and "frame-ancestors 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff" and response["X-Frame-Options"] == "DENY"
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    redirected = Client().get("/research/login/")
    assert redirected.status_code == 301 and redirected["Location"].startswith("https://")
    behind_proxy = Client().get("/research/login/", HTTP_X_FORWARDED_PROTO="https")
    assert behind_proxy.status_code == 200 and behind_proxy["Strict-Transport-Security"].startswith("max-age=3600")
