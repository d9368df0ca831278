"""Settings come from the environment; production without a secret fails loudly."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], 'broker': settings.CELERY_BROKER_URL, "
    "'debug': settings.DEBUG}))"
)


def settings_with(**env):
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG"}}
    clean.update(env, DJANGO_SETTINGS_MODULE="webapp.settings")
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_nothing_set_means_sqlite_and_the_filesystem_broker():
    out = settings_with()
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got == {"engine": "django.db.backends.sqlite3", "broker": "filesystem://", "debug": True}


def test_urls_select_postgresql_and_redis():
    out = settings_with(DATABASE_URL="postgres://u@127.0.0.1:5432/x", CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    got = json.loads(out.stdout)
    assert got["engine"] == "django.db.backends.postgresql" and got["broker"] == "redis://127.0.0.1:6379/0"


def test_production_without_secret_key_fails_loudly():
    out = settings_with(DEBUG="0")
    assert out.returncode != 0 and "SECRET_KEY must be set" in out.stderr
    assert settings_with(DEBUG="0", SECRET_KEY="s" * 50).returncode == 0
