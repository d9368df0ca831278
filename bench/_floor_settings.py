"""The load test's server settings: the site's own, plus the floor endpoint (bench/_floor_urls.py).

Only bench/load_evaluators.py's gunicorn uses this module; the site never serves the floor.
"""
from webapp.settings import *  # noqa: F403 (Django's way of extending a settings module)

ROOT_URLCONF = "bench._floor_urls"
