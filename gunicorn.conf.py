"""gunicorn's settings for this site: gunicorn reads ./gunicorn.conf.py from the directory it
starts in. Workers, threads and the address stay on the command line, sized to the node
(docs/operations.md); what is here suits every node.
"""
import gc
from importlib import import_module


def post_worker_init(worker) -> None:
    """Load what the first requests would otherwise load inside a request (the URL conf with
    every view module, and redis-py, which Django's Redis cache imports on its first call),
    then take all the worker has loaded out of the garbage collector's reach (``gc.freeze``).

    These objects (about 130,000) live as long as the process, yet every full collection
    walked all of them, while the worker's threads all waited. Frozen, the collector walks
    only what requests leave behind: in the load test's 5-s burst the most collection inside
    one request fell from 200-250 ms to 50-54 ms (bench/results/load_evaluators-2026-12-07.txt,
    its "garbage collection" lines, with and without this file).
    """
    from django.conf import settings

    import_module(settings.ROOT_URLCONF)
    import_module("redis")  # a requirement, whether or not FUSION_CACHE_URL puts the cache there
    gc.freeze()
