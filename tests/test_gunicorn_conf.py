"""The site's gunicorn.conf.py, which gunicorn reads from the directory it starts in."""
import gc
import runpy
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
