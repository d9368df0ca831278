"""gunicorn's settings for this site: gunicorn reads ./gunicorn.conf.py from the directory it
starts in. Workers, threads and the address stay on the command line, sized to the node
(docs/operations.md); what is here suits every node.
"""
import gc
from importlib import import_module


def post_worker_init(worker) -> None:
    """Take what the worker has loaded (Django, every app's models, the URL conf and the view
    modules it imports) out of the garbage collector's reach (``gc.freeze``).

    These objects live as long as the process, yet every full collection walked all of
    them: about 130,000, some 100 ms a collection on the 2-core development machine, during
    which the worker's threads all wait. Frozen, the collector walks only what requests
    leave behind (bench/results/load_evaluators-2026-12-07.txt: the gc column).
    """
    from django.conf import settings

    import_module(settings.ROOT_URLCONF)  # the URL conf, and with it every view module
    gc.freeze()
