"""The site's gunicorn.conf.py, which gunicorn reads from the directory it starts in."""
import gc
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def test_a_worker_freezes_what_it_loaded_after_it_loads_the_app():
    """What the worker loaded (Django, the URL conf, the view modules) is frozen: full
    collections no longer walk it."""
    hooks = runpy.run_path(str(CONF))
    before = gc.get_freeze_count()
    try:
        hooks["post_worker_init"](None)
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
    assert frozen > before + 10_000, (before, frozen)  # the test process's whole heap, Django with it


def test_a_worker_loads_what_its_first_requests_would_before_it_serves_them():
    """The URL conf (with the view modules) and redis-py are imported by the hook, not by the
    first requests after a deploy: in a fresh interpreter, as a gunicorn worker is."""
    code = f"""
import json, runpy, sys, django
django.setup()
wanted = ("webapp.urls", "webapp.studies.task_views", "redis")
before = [name in sys.modules for name in wanted]
runpy.run_path({str(CONF)!r})["post_worker_init"](None)
print(json.dumps({{"before": before, "after": [name in sys.modules for name in wanted]}}))
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=CONF.parent, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"before": [False, False, False], "after": [True, True, True]}, seen
