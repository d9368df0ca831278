"""fusion-eval settings: one module, everything that varies comes from the environment.

With nothing set, the site runs on SQLite under ``var/`` and Celery uses kombu's
``filesystem://`` transport (also under ``var/``), so a fresh clone needs no server.

Environment:
    DEBUG               "1" to develop with Django's debug pages; off unless asked for (the
                        demo serves as production does).
    SECRET_KEY          required when FUSION_HTTPS is on; otherwise, when unset, a random key
                        made once and kept in $FUSION_VAR_DIR/secret_key (owner-only).
    FUSION_HTTPS        "1" in production, served over HTTPS behind a proxy: redirects to
                        HTTPS, sends HSTS, marks cookies Secure, requires SECRET_KEY.
    SECURE_HSTS_SECONDS, SECURE_HSTS_INCLUDE_SUBDOMAINS, SECURE_HSTS_PRELOAD,
    SECURE_SSL_REDIRECT, SECURE_PROXY_SSL_HEADER ("HTTP_X_FORWARDED_PROTO,https"; "" for
                        none), SESSION_COOKIE_SECURE: each overrides what FUSION_HTTPS implies.
    FUSION_CACHE_URL    redis://host:6379/1 for the rate limits' counters, shared by every web
                        process; by default each process counts in its own memory.
    FUSION_RATELIMITS   "0" turns the rate limits and the login lock-out off.
    FUSION_SERVER_TIMING  "0" leaves out the Server-Timing header (server time, query count).
    FUSION_CLIENT_IP_HEADER  the request META key with the client's address behind a proxy
                        (HTTP_X_FORWARDED_FOR, HTTP_X_REAL_IP); REMOTE_ADDR by default.
    DATABASE_URL        e.g. postgres://user@127.0.0.1:5432/fusion ; SQLite when unset.
    CELERY_BROKER_URL   e.g. redis://127.0.0.1:6379/0 ; the filesystem broker when unset.
    FUSION_VAR_DIR      where SQLite, the filesystem broker and media live (default ./var).
    FUSION_MEDIA_ROOT   where generated images are written (default $FUSION_VAR_DIR/media);
                        a shared path when several GPU workers serve one batch.
    FUSION_IMPORT_UPLOAD_DIR  where an image set uploaded on the generation page waits for
                        the worker that imports it (default $FUSION_MEDIA_ROOT/uploads); a
                        path the web server and the default-queue workers share.
    FUSION_IMPORT_TIME_LIMIT_S  seconds an image set's import may run before it is marked
                        failed (default 3600).
    ALLOWED_HOSTS       comma separated (default: localhost names).
    FUSION_BASE_URL     the public origin used in invite links (default http://127.0.0.1:8000).
    FUSION_PROTOCOL_FILES_DIR  the folder every file a protocol names must lie in (default
                        ./fixtures); uploaded protocols read relative paths from its protocols/.
    FUSION_PROLIFIC_API_TOKEN  a Prolific API token: when set, a Prolific study's invite link
                        takes or resumes a place only for a session Prolific confirms (one GET
                        per new browser session; webapp/studies/prolific.py). Unset: off.
    FUSION_PROLIFIC_API_URL  the API's origin (default https://api.prolific.com; tests point
                        it at a local server).
    FUSION_PROLIFIC_API_TIMEOUT_S  seconds a confirmation may take before the join page says
                        "try again in a minute" (default 4).
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webapp.ownerfiles import owner_only_text

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FUSION_VAR_DIR", BASE_DIR / "var"))


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _secret_key_file(path: Path) -> str:
    """The key kept in ``path``, readable by its owner only; made once when it is missing
    (``ownerfiles.owner_only_text``: a web server and a worker starting together agree on
    one key)."""
    key = owner_only_text(path, lambda: secrets.token_urlsafe(48))  # 64 characters, 384 random bits
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} holds no usable secret key; remove it to have a new one made.")
    return key


# HTTPS in production: the switch that makes a missing secret an error and turns on the
# headers that `manage.py check --deploy` asks for. Each of them can be set on its own.
HTTPS = _env_flag("FUSION_HTTPS", False)
DEBUG = _env_flag("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if HTTPS:
        raise ImproperlyConfigured("SECRET_KEY must be set in production (FUSION_HTTPS=1), the same on every process.")
    # The demo and development: a key nobody else knows, kept with the database it signs for.
    SECRET_KEY = _secret_key_file(VAR_DIR / "secret_key")

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()
]
FUSION_BASE_URL = os.environ.get("FUSION_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "axes",
    "webapp.studies",
    "webapp.generation",
    "webapp.research",
]

MIDDLEWARE = [
    # First, so that its time covers every other middleware (webapp/servertiming.py).
    "webapp.servertiming.ServerTimingMiddleware",
    # Before anything reads the session or the database: a NUL is a 400 (webapp/badinput.py).
    "webapp.badinput.NulByteMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Turns django-ratelimit's refusals into RATELIMIT_VIEW's 429 page.
    "django_ratelimit.middleware.RatelimitMiddleware",
    # Last, as django-axes asks: it answers locked-out logins itself.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --------------------------------------------------------------------------- database
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            # Celery workers and the web server write to the same file: wait for locks
            # instead of failing, and use WAL so readers don't block the writer.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
            # Tests use a file too: an in-memory shared-cache database answers concurrent
            # writers with "table is locked" instead of waiting, unlike the real thing.
            # One file per test process: parallel test runs must not share it.
            "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"fusion-eval-test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --------------------------------------------------------------------------- rate limits
# The counters live in this cache. Redis (FUSION_CACHE_URL) counts atomically for every
# web process; without it each process counts on its own, which is exact for the demo's
# single server and lets each of N gunicorn workers admit the limit once more.
if os.environ.get("FUSION_CACHE_URL"):
    # Django's Redis cache, reusing one client per process and incrementing in one round
    # trip (webapp/cache.py).
    CACHES = {"default": {"BACKEND": "webapp.cache.RedisCache",
                          "LOCATION": os.environ["FUSION_CACHE_URL"]}}
    # Sessions are read from that shared cache (the database stays their record, written
    # through): one query less on every page. Only with a cache every web process shares:
    # a per-process cache would serve one process's stale copy of another's write.
    # webapp/sessions.py: cached_db, without the look-up before each new session's INSERT.
    SESSION_ENGINE = "webapp.sessions"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fusion-eval"}}
RATELIMIT_ENABLE = _env_flag("FUSION_RATELIMITS", True)
FUSION_SERVER_TIMING = _env_flag("FUSION_SERVER_TIMING", True)
# Behind a proxy every request comes from the proxy: count by the address it forwards
# (e.g. FUSION_CLIENT_IP_HEADER=HTTP_X_FORWARDED_FOR; see webapp/clientip.py).
FUSION_CLIENT_IP_HEADER = os.environ.get("FUSION_CLIENT_IP_HEADER", "REMOTE_ADDR")
RATELIMIT_IP_META_KEY = "webapp.clientip.client_ip"
RATELIMIT_VIEW = "webapp.views.too_many_requests"
CSRF_FAILURE_VIEW = "webapp.views.csrf_failure"
# Per client address: opening the invite link, and agreeing to take part (which takes
# a slot); per evaluator: answers and undos. A person needs a few of each per minute.
FUSION_RATE_JOIN = os.environ.get("FUSION_RATE_JOIN", "30/m")
FUSION_RATE_CONSENT = os.environ.get("FUSION_RATE_CONSENT", "10/m")
FUSION_RATE_ANSWER = os.environ.get("FUSION_RATE_ANSWER", "5/s")
# Per evaluator: the task page's reports of time away (tasks.js: a few per absence).
FUSION_RATE_AWAY = os.environ.get("FUSION_RATE_AWAY", "60/m")
# Places of one study held at once (consented, unfinished, active) by evaluators who agreed
# from one client address: one address cannot take every place of a study (the consent rate
# alone let one fill 20 in two minutes). A lab whose participants share an address raises
# it; 0 means no cap. Off with the rate limits (FUSION_RATELIMITS=0).
FUSION_SLOTS_PER_ADDRESS = _env_int("FUSION_SLOTS_PER_ADDRESS", 5)

# Logins (research and admin) through django-axes: five failures from one address for
# one user name lock that pair out for 15 minutes; a success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_ENABLED = RATELIMIT_ENABLE
AXES_FAILURE_LIMIT = _env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = _env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "429.html"
AXES_CLIENT_IP_CALLABLE = "webapp.clientip.client_ip"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "research:login"
# Where a login goes when its ``next`` is missing or refused (another site, a scheme): the
# research home. Django's default, /accounts/profile/, is no page here, so the admin's login
# with a refused ``next`` ended on a 404.
LOGIN_REDIRECT_URL = "research:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Django's two finders, with a path outside the static roots answered 404 rather than 500.
STATICFILES_FINDERS = ["webapp.staticfinders.FileSystemFinder", "webapp.staticfinders.AppDirectoriesFinder"]
MEDIA_ROOT = Path(os.environ.get("FUSION_MEDIA_ROOT", VAR_DIR / "media"))
# Images are never served from MEDIA_URL: evaluators fetch them through an access-checked
# view under an opaque id. MEDIA_URL is only used by the Django admin's file widgets.
MEDIA_URL = "/media-admin/"

SESSION_COOKIE_AGE = 60 * 60 * 24 * 14  # evaluators resume within two weeks
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False

# --------------------------------------------------------------------------- security headers
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = _env_flag("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 365 * 24 * 60 * 60 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = _env_flag("SECURE_HSTS_PRELOAD", False)
# The proxy in front says which scheme the visitor used; trust it only when told to.
_proxy_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https" if HTTPS else "")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header.split(",", 1)) if _proxy_header else None
SESSION_COOKIE_SECURE = _env_flag("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# No inline script anywhere (every script is a static file). Inline style attributes stay
# allowed: the progress bars set their width in the template.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}

# --------------------------------------------------------------------------- celery
# The filesystem transport ignores the host, but kombu warns "No hostname was supplied" on
# every connection to a URL without one: the default names the host kombu would assume.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is ./control
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True  # progress lives in the database, not a result backend
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ROUTES = {"webapp.generation.tasks.generate_part": {"queue": "gpu"}}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-parts": {"task": "webapp.generation.tasks.requeue_stale_parts", "schedule": 60.0},
}
CELERY_TASK_ALWAYS_EAGER = _env_flag("CELERY_TASK_ALWAYS_EAGER", False)

# --------------------------------------------------------------------------- fusion-eval
# An evaluator who has not answered for this long may lose their slot to a newcomer.
FUSION_SLOT_TIMEOUT_SECONDS = int(os.environ.get("FUSION_SLOT_TIMEOUT_SECONDS", 2 * 60 * 60))
# A task page with no input (pointer, key, touch, scroll) for this long reports its
# participant away (webapp/studies/away.py): the time from then to the next input is not time
# on task. Two minutes is eight times the simulator's median ranking time (15 s): someone
# studying the images without moving is still at work, and an absence costs at most this.
FUSION_IDLE_AFTER_SECONDS = _env_int("FUSION_IDLE_AFTER_SECONDS", 120)
# Bootstrap resamples for the results pages; unset means the protocol's analysis plan.
FUSION_RESULTS_N_BOOT = int(os.environ["FUSION_RESULTS_N_BOOT"]) if os.environ.get("FUSION_RESULTS_N_BOOT") else None
# Every file a protocol names (its captions file) must lie inside this folder; relative
# paths in a protocol uploaded from the web are read from its protocols/ subfolder, as for
# the shipped fixtures/protocols/*.json (whose captions are ../captions/...).
FUSION_PROTOCOL_FILES_DIR = Path(os.environ.get("FUSION_PROTOCOL_FILES_DIR", BASE_DIR / "fixtures"))
# Prolific's API, to confirm the session in a Prolific study's invite link (off without a
# token). The token is a secret: it is sent to FUSION_PROLIFIC_API_URL only, never logged.
FUSION_PROLIFIC_API_TOKEN = os.environ.get("FUSION_PROLIFIC_API_TOKEN", "").strip()
FUSION_PROLIFIC_API_URL = os.environ.get("FUSION_PROLIFIC_API_URL", "https://api.prolific.com").rstrip("/")
FUSION_PROLIFIC_API_TIMEOUT_S = float(os.environ.get("FUSION_PROLIFIC_API_TIMEOUT_S", 4))
# Salt for hashing external worker ids in exports.
FUSION_EXPORT_SALT = os.environ.get("FUSION_EXPORT_SALT", SECRET_KEY)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
# Gold images (known counts) are drawn at the size of the study's generated images; this
# size is used only when a study has no generated image to measure.
FUSION_GOLD_SIZE = int(os.environ.get("FUSION_GOLD_SIZE", 32))

# Generation workers (webapp/generation/part_runner.py).
# A running part whose heartbeat is older than this is re-sent (its worker vanished).
FUSION_PART_STALE_SECONDS = int(os.environ.get("FUSION_PART_STALE_SECONDS", 600))
# Images sampled per forward batch: empty means by device (part_runner.chunk_size).
FUSION_GENERATION_CHUNK = os.environ.get("FUSION_GENERATION_CHUNK", "")
# "cpu", "cuda", "cuda:1"...; empty means the first GPU when there is one.
FUSION_DEVICE = os.environ.get("FUSION_DEVICE", "")
# torch threads per CPU worker process; empty leaves torch's default.
FUSION_TORCH_THREADS = os.environ.get("FUSION_TORCH_THREADS", "")
# Loaded samplers kept per worker process (least recently used goes first).
FUSION_SAMPLER_CACHE_SIZE = int(os.environ.get("FUSION_SAMPLER_CACHE_SIZE", 4))
# Image sets uploaded on the generation page wait here for their worker; empty means
# MEDIA_ROOT/uploads, read when used (import_runner.upload_dir).
FUSION_IMPORT_UPLOAD_DIR = os.environ.get("FUSION_IMPORT_UPLOAD_DIR", "")
# No view takes a file but the two that say so (webapp/uploads.py: upload_cap), which put
# their own cap in place of the first handler: elsewhere a file's bytes are dropped unread,
# never spooled to disk before the request is refused.
FILE_UPLOAD_HANDLERS = [
    "webapp.uploads.NoFilesUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Seconds an image set's import may run on its worker before it is stopped and marked failed
# (Celery's soft time limit; enforced by the prefork pool, not --pool solo).
FUSION_IMPORT_TIME_LIMIT_S = int(os.environ.get("FUSION_IMPORT_TIME_LIMIT_S", 3600))
CELERY_TASK_ANNOTATIONS = {
    "webapp.generation.tasks.import_image_set": {"soft_time_limit": FUSION_IMPORT_TIME_LIMIT_S},
}
