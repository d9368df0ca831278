"""Settings come from the environment; no key is ever public; production fails loudly without one."""
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], 'broker': settings.CELERY_BROKER_URL, "
    "'debug': settings.DEBUG, 'key': settings.SECRET_KEY, 'ssl_redirect': settings.SECURE_SSL_REDIRECT, "
    "'hsts': settings.SECURE_HSTS_SECONDS, 'proxy': settings.SECURE_PROXY_SSL_HEADER, "
    "'cookie_secure': settings.SESSION_COOKIE_SECURE, 'sessions': settings.SESSION_ENGINE}))"
)
CLEARED = {"DATABASE_URL", "CELERY_BROKER_URL", "FUSION_CACHE_URL", "SECRET_KEY", "DEBUG", "FUSION_VAR_DIR",
           "FUSION_HTTPS", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER",
           "SESSION_COOKIE_SECURE"}


def settings_with(var_dir: Path, **env):
    clean = {k: v for k, v in os.environ.items() if k not in CLEARED}
    clean.update(env, DJANGO_SETTINGS_MODULE="webapp.settings", FUSION_VAR_DIR=str(var_dir))
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True)


def probe(var_dir: Path, **env) -> dict:
    out = settings_with(var_dir, **env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_nothing_set_means_sqlite_the_filesystem_broker_and_debug_off(tmp_path):
    got = probe(tmp_path)
    assert (got["engine"], got["debug"]) == ("django.db.backends.sqlite3", False)
    assert got["broker"].startswith("filesystem://")
    assert probe(tmp_path, DEBUG="1")["debug"] is True  # developers opt in
    # Empty is unset (the Makefile's SQLite pass runs with DATABASE_URL= whatever the shell exports).
    assert probe(tmp_path, DATABASE_URL="")["engine"] == "django.db.backends.sqlite3"


def test_the_default_broker_url_connects_without_kombu_s_hostname_warning(tmp_path, caplog):
    """The demo printed kombu's "No hostname was supplied. Reverting to default 'localhost'"."""
    from kombu import Connection

    broker = probe(tmp_path)["broker"]
    with caplog.at_level(logging.WARNING, logger="kombu"):
        info = Connection(broker).info()
    assert info["transport"] == "filesystem" and info["hostname"] == "localhost"
    assert not [r for r in caplog.records if r.name.startswith("kombu")], caplog.text


def test_urls_select_postgresql_and_redis(tmp_path):
    got = probe(tmp_path, DATABASE_URL="postgres://u@127.0.0.1:5432/x", CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert got["engine"] == "django.db.backends.postgresql" and got["broker"] == "redis://127.0.0.1:6379/0"


def test_sessions_are_read_from_the_cache_only_when_every_web_process_shares_it(tmp_path):
    assert probe(tmp_path)["sessions"] == "django.contrib.sessions.backends.db"  # a per-process cache
    shared = probe(tmp_path, FUSION_CACHE_URL="redis://127.0.0.1:6379/0")
    assert shared["sessions"] == "webapp.sessions"  # cached_db (webapp/sessions.py)


def test_without_secret_key_a_random_key_is_made_once_and_kept_owner_only(tmp_path):
    first = probe(tmp_path)["key"]
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first and len(first) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert probe(tmp_path)["key"] == first  # kept: sessions and signed forms survive a restart
    assert probe(tmp_path / "elsewhere")["key"] != first  # random, not a constant of the code
    assert "development" not in first


def test_a_key_file_others_can_read_is_made_owner_only(tmp_path):
    key = probe(tmp_path)["key"]
    (tmp_path / "secret_key").chmod(0o644)
    assert probe(tmp_path)["key"] == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_production_without_secret_key_fails_loudly(tmp_path):
    out = settings_with(tmp_path, FUSION_HTTPS="1")
    assert out.returncode != 0 and "SECRET_KEY must be set" in out.stderr
    assert not (tmp_path / "secret_key").exists()


def test_https_turns_on_redirect_hsts_proxy_header_and_secure_cookies(tmp_path):
    got = probe(tmp_path, FUSION_HTTPS="1", SECRET_KEY="s" * 50)
    assert got["ssl_redirect"] and got["hsts"] == 31536000 and got["cookie_secure"]
    assert got["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    plain = probe(tmp_path)
    assert not plain["ssl_redirect"] and plain["hsts"] == 0 and plain["proxy"] is None and not plain["cookie_secure"]
    # Each can be set on its own.
    got = probe(tmp_path, FUSION_HTTPS="1", SECRET_KEY="s" * 50, SECURE_HSTS_SECONDS="600", SECURE_PROXY_SSL_HEADER="")
    assert got["hsts"] == 600 and got["proxy"] is None
