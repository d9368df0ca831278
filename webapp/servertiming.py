"""Each response says how long the server worked on it and how many SQL queries it made.

A ``Server-Timing`` header (the W3C metric syntax browsers' developer tools show):

    Server-Timing: app;dur=4.21, cpu;dur=3.10, db;dur=1.37;desc="5 queries", gc;dur=0.00

``app`` is the wall time from this middleware (first in MIDDLEWARE) to the response, in
milliseconds; ``cpu`` the CPU time of the thread that served it (what the request costs the
machine, whatever else competes for the cores: capacity is planned from it); ``db`` the part
of the wall time spent in queries on the default database, and their number; ``gc`` the time
the process spent collecting garbage meanwhile (a collection holds the GIL, so it stalls every
thread of the process, whichever of them set it off).
bench/load_evaluators.py reads it to tell server time from time in the network and the client.

It costs a ``perf_counter`` pair per query (Django's ``execute_wrapper``) and per garbage
collection (a ``gc.callbacks`` entry, added once per process); no SQL is kept.
It reveals nothing an evaluator should not know: images get no header (a time could vary
with the size of the file, and so with the model that drew it), and the other pages do the
same queries whatever model made the images they show. ``FUSION_SERVER_TIMING=0`` turns it off.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

HEADER = "Server-Timing"


class _QueryClock:
    """Counts the queries run through it and sums their time (seconds)."""

    __slots__ = ("n", "seconds")

    def __init__(self) -> None:
        self.n = 0
        self.seconds = 0.0

    def __call__(self, execute: Callable[[str, object, bool, dict[str, object]], object], sql: str, params: object,
                 many: bool, context: dict[str, object]) -> object:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - t0
            self.n += 1


class _GcClock:
    """Sums the seconds this process spends in garbage collections (a ``gc.callbacks``
    entry). Collections never overlap: the collector runs one at a time, under the GIL."""

    __slots__ = ("seconds", "_started")

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


GC_CLOCK = _GcClock()  # one per process; the middleware puts it in gc.callbacks


def format_header(*, app_seconds: float, cpu_seconds: float, db_seconds: float, queries: int,
                  gc_seconds: float) -> str:
    return (f"app;dur={1000 * app_seconds:.2f}, cpu;dur={1000 * cpu_seconds:.2f}, "
            f'db;dur={1000 * db_seconds:.2f};desc="{queries} queries", gc;dur={1000 * gc_seconds:.2f}')


class ServerTimingMiddleware:
    """Adds ``Server-Timing`` (server time and query count) to every response but images."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.enabled = getattr(settings, "FUSION_SERVER_TIMING", True)
        if self.enabled and GC_CLOCK not in gc.callbacks:
            gc.callbacks.append(GC_CLOCK)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.enabled:
            return self.get_response(request)
        clock = _QueryClock()
        t0, cpu0, gc0 = time.perf_counter(), time.thread_time(), GC_CLOCK.seconds
        with connection.execute_wrapper(clock):
            response = self.get_response(request)
        elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
        if not response.get("Content-Type", "").startswith("image/"):
            response[HEADER] = format_header(app_seconds=elapsed, cpu_seconds=cpu, db_seconds=clock.seconds,
                                             queries=clock.n, gc_seconds=GC_CLOCK.seconds - gc0)
        return response
