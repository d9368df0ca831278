"""Load test: N simulated evaluators answer a study through gunicorn + PostgreSQL.

Each simulated evaluator has its own HTTP session: it joins by the invite link, consents,
reads its current task (the JSON state), then answers task after task, each answer's JSON
response carrying the next task, with a think time between tasks. With ``--client browser``
it walks as a participant's browser does instead: the HTML pages and their forms, every
redirect followed, and each page's images (the tasks' and the practice pictures) loaded
once; an answer is sent as the task script sends it, in place (one JSON request, then the
next task's images when it lays out as the last: a count after a count, a ranking as wide
after a ranking; the next task's page when it does not).
``--client browser-nojs`` is that browser without the script: every answer a form. The script prints
throughput and p50/p95/p99 latency per endpoint and, beside them, the server's own time and
query count per request (the Server-Timing header, webapp/servertiming.py), then checks
that every answer the server accepted is in the database, and nothing else.

The floor: after every ``--floor-every``-th answer an evaluator also POSTs to a view that
only the bench's server has (bench/_floor_urls.py: validate one small form, insert one row),
so that what an answer costs the server is compared with the least a Django view that stores
something can cost, measured in the same run under the same load.

The rate limits are on, as in production behind a proxy: each evaluator comes from an
address of its own (sent as X-Forwarded-For, FUSION_CLIENT_IP_HEADER), and with
``--cache-url`` the counters live in Redis as the README's production set-up has them.
The server (gunicorn) and this load generator are pinned to different cores with taskset
(``--server-cpus``, ``--client-cpus``). PostgreSQL and Redis are not pinned unless
``--services-cpus`` says where (e.g. the generator's core: gunicorn then has its core to
itself, as a web node whose database and Redis are other hosts; their processes' affinities
are put back afterwards, and setting them needs the right to, e.g. root). The table, the
command, the cores and the load average before and after go to
bench/results/load_evaluators-<date>.txt.

    nice -n 10 python bench/load_evaluators.py --evaluators 50 --tasks 20 --cache-url redis://127.0.0.1:6379/2
    python bench/load_evaluators.py --shape 200:5:200 --shape 200:60:30 --shape 1000:60:200 \
        --cache-url redis://127.0.0.1:6379/2      # the launch-day shapes (evaluators:ramp s:p95 target ms)
    python bench/load_evaluators.py --client browser --shape 200:60:30 --cache-url redis://127.0.0.1:6379/2

It creates (and afterwards drops) its own PostgreSQL database, ``fusion_load``; the
study's images are rendered by the synthetic renderer, since this measures the web path,
not the models.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    command_line,
    cpu_model,
    load_average,
    run_json_child,
    save_result,
    scratch_database,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluators", type=int, default=50, help="concurrent simulated evaluators")
    p.add_argument("--tasks", type=int, default=20, help="answers per evaluator (at most their whole slot)")
    p.add_argument("--think", type=float, default=2.0,
                   help="mean seconds an evaluator looks at a task before answering (uniform in 0.5x..1.5x); "
                        "people take several seconds per count and longer per ranking; 0 = saturation test")
    p.add_argument("--client", choices=("json", "browser", "browser-nojs"), default="json",
                   help="json: after consenting, read the JSON state and answer with JSON requests (one request "
                        "an answer, images not loaded); browser: the pages and forms a participant's browser "
                        "loads, redirects followed, each page's images loaded once, answers sent in place "
                        "as the task script sends them; browser-nojs: the same without the script (every answer "
                        "a form, its redirect and the next page)")
    p.add_argument("--ramp", type=float, default=5.0, help="evaluators arrive spread over this many seconds")
    p.add_argument("--gunicorn-workers", type=int, default=2,
                   help="gunicorn processes; on the one core the server is pinned to, 2 (docs/operations.md)")
    p.add_argument("--gunicorn-threads", type=int, default=4)
    p.add_argument("--gunicorn-conf", choices=("site", "none"), default="site",
                   help="site: gunicorn reads the site's gunicorn.conf.py (garbage collector frozen after the app "
                        "loads), as in production; none: an empty one, to see what that file changes")
    p.add_argument("--keep-alive", type=int, default=30,
                   help="gunicorn's keep-alive in seconds; it must exceed the think time, or the server closes idle "
                        "connections just as a client reuses them (RemoteDisconnected), which browsers retry "
                        "silently but this client counts as errors")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, without a database")
    p.add_argument("--database", default="fusion_load")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--cache-url", default="",
                   help="FUSION_CACHE_URL for the rate limits' counters (e.g. redis://127.0.0.1:6379/2); "
                        "empty: each gunicorn worker counts in its own memory")
    p.add_argument("--rate-limits", choices=("on", "off"), default="on",
                   help="off: the same run without them, to see what they cost at the machine's load")
    p.add_argument("--shape", action="append", default=[], metavar="N:RAMP[:P95]",
                   help="run this load shape (N evaluators arriving over RAMP seconds; the p95 target in ms, "
                        "checked for every endpoint) instead of --evaluators/--ramp; repeat for several runs")
    p.add_argument("--floor-every", type=int, default=4,
                   help="each evaluator POSTs to the floor endpoint after every k-th answer (0: never)")
    cpus = sorted(os.sched_getaffinity(0))
    p.add_argument("--server-cpus", default=",".join(map(str, cpus[:-1])) if len(cpus) > 1 else "",
                   help="taskset -c list for gunicorn (default: every core but the last; empty: not pinned)")
    p.add_argument("--client-cpus", default=str(cpus[-1]) if len(cpus) > 1 else "",
                   help="cores this load generator runs on (default: the last; empty: not pinned)")
    p.add_argument("--services-cpus", default="",
                   help="cores for PostgreSQL's and Redis's processes during the run (default: not pinned)")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def prepare(env: dict, n_evaluators: int) -> dict:
    """Create the database and an open study with at least ``n_evaluators`` slots (in a child process)."""
    code = f"""
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from bench._floor_urls import CREATE_TABLE
with connection.cursor() as cursor:
    cursor.execute(CREATE_TABLE)
from bench._loadstudy import build_load_study
print(json.dumps(build_load_study(n_slots={n_evaluators})))
"""
    return run_json_child(["-c", code], env)


def db_counts(env: dict) -> dict:
    code = """
import json, django
django.setup()
from django.db.models import Count
from webapp.studies.models import CountResponse, RankResponse, Evaluator
per = {}
for ev in Evaluator.objects.annotate(c=Count("count_responses", distinct=True),
                                     r=Count("rank_responses", distinct=True)):
    per[ev.external_id] = ev.c + ev.r
print(json.dumps({"count": CountResponse.objects.count(), "rank": RankResponse.objects.count(), "per": per}))
"""
    return run_json_child(["-c", code], env)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.accepted: dict[str, int] = defaultdict(int)
        self.error_kinds: dict[str, int] = defaultdict(int)
        self.server_ms: dict[str, list[float]] = defaultdict(list)
        self.cpu_ms: dict[str, list[float]] = defaultdict(list)
        self.db_ms: dict[str, list[float]] = defaultdict(list)
        self.gc_ms: dict[str, list[float]] = defaultdict(list)
        self.queries: dict[str, list[int]] = defaultdict(list)

    # fn is called with no arguments; typed `...` because the callers' lambdas keep their loop's values
    # as defaults (lambda data=data: ...), which mypy cannot infer against Callable[[], ...].
    def timed(self, name: str, fn: Callable[..., requests.Response],
              ok: Callable[[requests.Response], bool] = lambda r: r.status_code < 400) -> requests.Response | None:
        t0 = time.perf_counter()
        try:
            r = fn()
            good, why = ok(r), f"HTTP {r.status_code}: {r.text[:120]!r}"
        except requests.RequestException as exc:
            r, good, why = None, False, f"{type(exc).__name__}: {str(exc)[-100:]}"
        dt = time.perf_counter() - t0
        timing = server_timing(r) if r is not None else None
        with self.lock:
            self.latency[name].append(dt)
            if timing is not None:
                self.server_ms[name].append(timing[0])
                self.cpu_ms[name].append(timing[1])
                self.db_ms[name].append(timing[2])
                self.queries[name].append(timing[3])
                self.gc_ms[name].append(timing[4])
            if not good:
                self.errors[name] += 1
                self.error_kinds[f"{name} {why}"] += 1
        return r if good else None


TIMING = re.compile(r'app;dur=([0-9.]+), cpu;dur=([0-9.]+), db;dur=([0-9.]+);desc="(\d+) queries", gc;dur=([0-9.]+)')


def server_timing(r: requests.Response) -> tuple[float, float, float, int, float] | None:
    """(server ms, server CPU ms, ms in queries, queries, ms of garbage collection) of a
    response and the redirects that led to it (as a browser follows them: join and consent
    end on the page they send to); None without the header."""
    total_ms, cpu_ms, db_ms, total_q, gc_ms, seen = 0.0, 0.0, 0.0, 0, 0.0, False
    for resp in (*r.history, r):
        match = TIMING.match(resp.headers.get("Server-Timing", ""))
        if match:
            total_ms, total_q, seen = total_ms + float(match[1]), total_q + int(match[4]), True
            cpu_ms += float(match[2])
            db_ms += float(match[3])
            gc_ms += float(match[5])
    return (total_ms, cpu_ms, db_ms, total_q, gc_ms) if seen else None


def client_address(i: int) -> str:
    """The i-th evaluator's own address (10.0.0.0/8), as the proxy would forward it."""
    return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"


def _arrive(i: int, start: threading.Barrier, ramp: float) -> tuple[str, requests.Session, random.Random]:
    """The i-th evaluator's panel id, HTTP session (from an address of its own) and random
    stream, once it is its turn to arrive: the start, then a wait within the ramp."""
    worker_id = f"{i:024x}"  # shaped like a Prolific id (24 hex digits), as the join page checks
    s = requests.Session()
    s.headers["X-Forwarded-For"] = client_address(i)
    rng = random.Random(worker_id)
    start.wait()
    time.sleep(ramp * rng.random())
    return worker_id, s, rng


def _floor(rec: Recorder, s: requests.Session, base: str, token: str, k: int) -> None:
    """The floor request sent beside the k-th answer (bench/_floor_urls.py)."""
    floor = {"token": token, "answer": str(k % 5 + 1)}
    rec.timed("floor", lambda: s.post(f"{base}/bench/floor/", data=floor))


def evaluator(base: str, invite: str, i: int, n_tasks: int, think: float, ramp: float, rec: Recorder,
              start: threading.Barrier, floor_every: int = 0) -> None:
    worker_id, s, rng = _arrive(i, start, ramp)
    r = rec.timed("join", lambda: s.get(f"{base}/join/{invite}/", params={"PROLIFIC_PID": worker_id}))
    if r is None:
        return
    landed = re.search(r"/e/([^/]+)/", r.url)
    if landed is None:
        raise RuntimeError(f"joining landed on {r.url}, not an evaluator page")
    slug = landed.group(1)
    csrf = s.cookies.get("csrftoken", "")
    if not csrf:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)
        csrf = match.group(1) if match else ""
    headers = {"X-CSRFToken": s.cookies.get("csrftoken") or csrf, "Referer": f"{base}/", "Accept": "application/json"}
    consent = {"agree": "yes", "csrfmiddlewaretoken": csrf}
    r = rec.timed("consent", lambda: s.post(f"{base}/e/{slug}/consent/", data=consent, headers={"Referer": f"{base}/"}))
    if r is None:
        return
    headers["X-CSRFToken"] = s.cookies.get("csrftoken") or csrf
    # A JSON client reads its state once; each answer's response carries the next task.
    r = rec.timed("state", lambda: s.get(f"{base}/e/{slug}/state/"))
    state: dict[str, Any] = r.json() if r is not None else {"done": True}
    if not state["done"] and "task" not in state:
        # The instructions (and a practice item) come before the tasks: read them, go on.
        form = {"X-CSRFToken": headers["X-CSRFToken"], "Referer": f"{base}/"}
        r = rec.timed("instructions", lambda: s.post(f"{base}{state['next']}", headers=form))
        if r is not None and r.url.endswith("/practice/"):
            r = rec.timed("instructions", lambda url=r.url: s.post(url, data={"answer": "1"}, headers=form))
        r = rec.timed("state", lambda: s.get(f"{base}/e/{slug}/state/"))
        state = r.json() if r is not None else {"done": True}
    for k in range(n_tasks):
        if state["done"]:
            return
        task = state["task"]
        if think > 0:
            time.sleep(think * rng.uniform(0.5, 1.5))
        if task["kind"] == "count":
            data = {"kind": "count", "token": task["token"], "answer": str(k % 5 + 1)}
        else:
            ranks = [(k + i) % 4 + 1 for i in range(4)]
            data = {"kind": "rank", "token": task["token"], **{f"rank_{i}": str(r_) for i, r_ in enumerate(ranks)}}
        name = f"submit-{task['kind']}"
        # data=data keeps this task's answer in the lambda (timed() calls it at once; this only says so).
        r = rec.timed(name, lambda data=data: s.post(f"{base}/e/{slug}/task/", data=data, headers=headers))
        if r is None:
            return
        with rec.lock:
            rec.accepted[worker_id] += 1
        state = r.json()
        if floor_every and (k + 1) % floor_every == 0:
            _floor(rec, s, base, task["token"], k)


IMAGE_SRC = re.compile(r'<img[^>]*\ssrc="(/[^"]+)"')
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TOKEN_FIELD = re.compile(r'name="token" value="([^"]+)"')
RANK_FIELD = re.compile(r'<select name="(rank_\d+)"')
# the task forms tasks.js answers in place
IN_PLACE_FORM = re.compile(r'<form[^>]*id="(?:answer|rank|pair)-form"[^>]*data-inplace="1"')
TIES = re.compile(r'data-ties="1"|id="choose-same"')


def _layout(page: str) -> tuple[str, int, bool]:
    """What a task page (HTML) lays out: the kind, the number of images, ties allowed. The task
    script shows a next task in place when its layout (``_task_layout``) is the same."""
    if 'value="count"' in page:
        return "count", 1, False
    return "rank", len(RANK_FIELD.findall(page)) or 2, TIES.search(page) is not None


def _task_layout(task: dict) -> tuple[str, int, bool]:
    """The layout of a task as the JSON API describes it (``task``: its "task" object)."""
    return task["kind"], len(task["images"]), bool(task["allow_ties"])


def _images(s: requests.Session, base: str, html: str, seen: set[str], rec: Recorder) -> bool:
    """GET the images a page shows that this browser has not loaded yet (a browser keeps
    them: they are sent with ``Cache-Control: private, max-age=3600``); False on an error."""
    return _load(s, base, IMAGE_SRC.findall(html), seen, rec)


def _load(s: requests.Session, base: str, sources: list[str], seen: set[str], rec: Recorder) -> bool:
    """GET the images of ``sources`` this browser has not loaded yet; False on an error."""
    for src in sources:
        if src in seen:
            continue
        seen.add(src)
        if rec.timed("image", lambda src=src: s.get(f"{base}{src}")) is None:
            return False
    return True


def _form(page: str, data: dict | None = None) -> dict:
    """A page's form as the browser sends it: its CSRF token and ``data`` (``page``: the HTML)."""
    match = CSRF_FIELD.search(page)
    return {"csrfmiddlewaretoken": match.group(1) if match else "", **(data or {})}


def _browser_arrival(s: requests.Session, base: str, invite: str, worker_id: str, rec: Recorder,
                     seen: set[str]) -> requests.Response | None:
    """Join, agree, "Start" (and the practice item): the first task's page, None on an error."""
    referer = {"Referer": f"{base}/"}
    consent = rec.timed("join", lambda: s.get(f"{base}/join/{invite}/", params={"PROLIFIC_PID": worker_id}))
    if consent is None:
        return None
    r = rec.timed("consent", lambda: s.post(consent.url, data=_form(consent.text, {"agree": "yes"}), headers=referer))
    if r is None or not _images(s, base, r.text, seen, rec):
        return None
    instructions = r  # "Start" leads to the practice item, or to the first task
    r = rec.timed("instructions", lambda: s.post(instructions.url, data=_form(instructions.text), headers=referer))
    if r is None or not _images(s, base, r.text, seen, rec) or not r.url.endswith("/practice/"):
        return r
    practice = r
    r = rec.timed("instructions",
                  lambda: s.post(practice.url, data=_form(practice.text, {"answer": "1"}), headers=referer))
    if r is None:
        return None
    task_url = re.sub(r"practice/$", "task/", practice.url)  # the feedback's "Start the tasks" link
    r = rec.timed("instructions", lambda: s.get(task_url))
    return r if r is not None and _images(s, base, r.text, seen, rec) else None


def _answer(k: int, page: str) -> tuple[str, dict]:
    """The k-th answer to the task on ``page`` (HTML): the endpoint's name, the form's fields."""
    ranks = RANK_FIELD.findall(page)
    if 'value="count"' in page:
        return "submit-count", {"kind": "count", "answer": str(k % 5 + 1)}
    if ranks:
        return "submit-rank", {"kind": "rank", **{f: str((k + j) % len(ranks) + 1) for j, f in enumerate(ranks)}}
    return "submit-rank", {"kind": "rank", "choice": "left"}  # two images side by side


def browser_evaluator(base: str, invite: str, i: int, n_tasks: int, think: float, ramp: float, rec: Recorder,
                      start: threading.Barrier, floor_every: int = 0, in_place: bool = True) -> None:
    """The walk a participant's browser makes: HTML pages and their forms, every redirect
    followed, each page's images loaded once (static files come from the proxy, not Django).
    An answer, as the task script sends it (``in_place``): one JSON request, then the next
    task's images when it lays out as the last (a count after a count, a ranking as wide after
    a ranking: it replaces the last on the page), the next task's page when it does not, the
    completion page when none is left. Without the script (``in_place`` False, ``--client
    browser-nojs``): a form POST, its redirect and the next task's page, then its images."""
    worker_id, s, rng = _arrive(i, start, ramp)
    seen: set[str] = set()
    referer = {"Referer": f"{base}/"}
    r = _browser_arrival(s, base, invite, worker_id, rec, seen)
    if r is None:
        return
    html, url = r.text, r.url
    found = TOKEN_FIELD.search(html)
    token = found.group(1) if found else None
    for k in range(n_tasks):
        if token is None:  # the completion page: no task left
            return
        if think > 0:
            time.sleep(think * rng.uniform(0.5, 1.5))
        name, data = _answer(k, html)
        payload = _form(html, {"token": token, **data})  # the page's CSRF field: the page stays after in-place answers
        answered = token
        json_answer = in_place and IN_PLACE_FORM.search(html) is not None
        if json_answer:
            r = rec.timed(name, lambda url=url, payload=payload: s.post(
                url, data=payload, headers={**referer, "Accept": "application/json"}),
                          ok=lambda r: r.status_code == 200 and r.json().get("ok") is True)
        else:
            r = rec.timed(name, lambda url=url, payload=payload: s.post(url, data=payload, headers=referer))
        if r is None:
            return
        with rec.lock:
            rec.accepted[worker_id] += 1
        body = r.json() if json_answer else {}
        stay = json_answer and not body["done"] and _task_layout(body["task"]) == _layout(html)  # on this page
        if stay:
            token = body["task"]["token"]
            if not _load(s, base, body["task"]["images"], seen, rec):
                return
        else:
            if json_answer:  # the script loads what comes next: another kind's page, or the completion page
                following = f"{base}{body['next']}" if body["done"] else url
                r = rec.timed("next page", lambda following=following: s.get(following))
                if r is None:
                    return
            html, url = r.text, r.url
            found = TOKEN_FIELD.search(html)
            token = found.group(1) if found else None
            if not _images(s, base, html, seen, rec):
                return
        if floor_every and (k + 1) % floor_every == 0:
            _floor(rec, s, base, answered, k)


class CoreSampler(threading.Thread):
    """Each core's busy share, sampled from /proc/stat once a ``period`` while the evaluators
    run: which side ran out of CPU (the server's core, or the generator's with the services)."""

    def __init__(self, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._stop_event = threading.Event()

    @staticmethod
    def _read() -> dict[str, tuple[int, int]]:
        """Per core: (all jiffies, idle + iowait jiffies) since boot."""
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    ticks = [int(v) for v in fields[:8]]
                    out[name[3:]] = (sum(ticks), ticks[3] + ticks[4])
        return out

    def run(self) -> None:
        before = self._read()
        while not self._stop_event.wait(self.period):
            now = self._read()
            for core, (total, idle) in now.items():
                spent = total - before[core][0]
                if spent > 0:
                    self.samples[core].append(100.0 * (1 - (idle - before[core][1]) / spent))
            before = now

    def stop(self) -> dict[str, dict[str, float]]:
        """Stop sampling; per core the mean and the highest share, in percent."""
        self._stop_event.set()
        self.join()
        return {core: {"mean": sum(v) / len(v), "peak": max(v)} for core, v in sorted(self.samples.items()) if v}


def warm_up(base: str, n: int) -> None:
    """Send ``n`` concurrent requests before measuring, so that every gunicorn worker has
    imported the app (Django loads the URLconf and views on a worker's first request): the
    table then shows a running server, not its start-up."""
    threads = [threading.Thread(target=requests.get, args=(f"{base}/join/unknown/",),
                                kwargs={"timeout": 30, "headers": {"X-Forwarded-For": client_address(100_000 + k)}})
               for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def shapes(args: argparse.Namespace) -> list[tuple[int, float, float | None]]:
    """(evaluators, ramp seconds, p95 target ms or None) of each run asked for."""
    if not args.shape:
        return [(args.evaluators, args.ramp, None)]
    out = []
    for spec in args.shape:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise SystemExit(f"--shape {spec!r}: expected N:RAMP or N:RAMP:P95")
        out.append((int(parts[0]), float(parts[1]), float(parts[2]) if len(parts) == 3 else None))
    return out


def main(args: argparse.Namespace) -> int:
    ok = True
    for n, ramp, target in shapes(args):
        shape = argparse.Namespace(**{**vars(args), "evaluators": n, "ramp": ramp, "target_p95_ms": target})
        load_before = load_average()
        with scratch_database(args.pg, args.database, keep=args.keep) as db_url:
            result = run(shape, db_url)
        result["load_average"] = {"before": load_before, "after": load_average()}
        result["command"] = command_line()
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(table(result))
        if not args.no_save:
            path = save_result("load_evaluators", table(result) + "\n", append=True)
            print(f"appended to {path.relative_to(ROOT)}", file=sys.stderr)
        ok = ok and result["errors"] == 0 and result["lost"] == 0 and result["mismatched_evaluators"] == 0
    return 0 if ok else 1


def run(args: argparse.Namespace, db_url: str) -> dict:
    """Serve the study in ``db_url`` with gunicorn, let the evaluators answer, count what was stored."""
    media = ROOT / "var" / "load-media"
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "bench._floor_settings", "DEBUG": "0",
           "SECRET_KEY": secrets.token_urlsafe(48), "SESSION_COOKIE_SECURE": "0",
           "FUSION_MEDIA_ROOT": str(media), "PYTHONPATH": str(ROOT),
           "FUSION_RATELIMITS": "1" if args.rate_limits == "on" else "0",
           "FUSION_CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR", "FUSION_CACHE_URL": args.cache_url}
    if args.cache_url:
        import redis

        redis.Redis.from_url(args.cache_url).flushdb()  # counters of an earlier run would still be in their window
    info = prepare(env, args.evaluators)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pin = ["taskset", "-c", args.server_cpus] if args.server_cpus else []
    # gunicorn reads ./gunicorn.conf.py (the site's) unless -c names another file: here an empty one
    conf = ["-c", os.devnull] if args.gunicorn_conf == "none" else []
    server = subprocess.Popen(
        [*pin, sys.executable, "-m", "gunicorn", "webapp.wsgi", *conf, "-b", f"127.0.0.1:{port}",
         "-w", str(args.gunicorn_workers), "-k", "gthread", "--threads", str(args.gunicorn_threads),
         "--keep-alive", str(args.keep_alive), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    services_before = pin_services({int(c) for c in args.services_cpus.split(",")}) if args.services_cpus else {}
    client_before = os.sched_getaffinity(0)
    if args.client_cpus:  # after the server started, so that it does not inherit this
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/research/login/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        warm_up(base, args.gunicorn_workers * args.gunicorn_threads * 3)
        rec = Recorder()
        barrier = threading.Barrier(args.evaluators)
        walks: dict[str, Callable[..., None]] = {
            "json": evaluator, "browser": browser_evaluator,
            "browser-nojs": functools.partial(browser_evaluator, in_place=False)}
        walk = walks[args.client]
        threads = [threading.Thread(target=walk, args=(base, info["invite"], i, args.tasks, args.think,
                                                              args.ramp, rec, barrier, args.floor_every))
                   for i in range(args.evaluators)]
        sampler = CoreSampler()
        sampler.start()
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        busy = sampler.stop()
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.sched_setaffinity(0, client_before)
        unpin_services(services_before)
    counts = db_counts(env)
    accepted_total = sum(rec.accepted.values())
    stored_total = counts["count"] + counts["rank"]
    mismatched = {w: (n, counts["per"].get(w, 0)) for w, n in rec.accepted.items() if counts["per"].get(w, 0) != n}
    rows = []
    for name in ("join", "consent", "instructions", "state", "submit-count", "submit-rank", "next page", "image",
                 "floor"):
        lat = rec.latency.get(name, [])
        if not lat:
            continue
        server_ms, queries = rec.server_ms.get(name, []), rec.queries.get(name, [])
        rows.append({
            "endpoint": name, "requests": len(lat), "errors": rec.errors.get(name, 0),
            "per_s": len(lat) / wall, "p50_ms": 1000 * percentile(lat, 0.5),
            "p95_ms": 1000 * percentile(lat, 0.95), "p99_ms": 1000 * percentile(lat, 0.99),
            "max_ms": 1000 * max(lat),
            "server_p50_ms": percentile(server_ms, 0.5), "server_p95_ms": percentile(server_ms, 0.95),
            "cpu_p50_ms": percentile(rec.cpu_ms.get(name, []), 0.5),
            "db_p50_ms": percentile(rec.db_ms.get(name, []), 0.5),
            "server_ms_sum": sum(server_ms), "gc_ms_sum": sum(rec.gc_ms.get(name, [])),
            "gc_ms_max": max(rec.gc_ms.get(name, []), default=0.0),
            "queries": max(queries) if queries else None,
        })
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "evaluators": args.evaluators,
        "think_s": args.think, "ramp_s": args.ramp, "client": args.client,
        "gunicorn": f"{args.gunicorn_workers} workers x {args.gunicorn_threads} threads "
                    f"(gthread, keep-alive {args.keep_alive} s, "
                    f"{'the site' if args.gunicorn_conf == 'site' else 'an empty'} gunicorn.conf.py)",
        "rate_limits": "off" if args.rate_limits == "off" else
                       f"on, counted in {'Redis' if args.cache_url else 'each worker process'}",
        "wall_s": wall, "requests": sum(len(v) for v in rec.latency.values()),
        "errors": sum(rec.errors.values()), "accepted_answers": accepted_total, "stored_answers": stored_total,
        "lost": accepted_total - stored_total, "mismatched_evaluators": len(mismatched), "endpoints": rows,
        "error_kinds": dict(rec.error_kinds), "target_p95_ms": args.target_p95_ms,
        "core_busy": busy,
        "cores": {"server": args.server_cpus or "not pinned", "client": args.client_cpus or "not pinned",
                  "services": args.services_cpus or "not pinned", "machine": os.cpu_count()},
    }


SERVICE_PROCESSES = ("postgres", "redis-server")  # names as ps shows them; a PostgreSQL backend is forked
# from the postmaster and inherits its affinity, so the connections gunicorn opens later land there too


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:  # it ended meanwhile
        return []


def pin_services(cpus: set[int]) -> dict[int, set[int]]:
    """Put every thread of PostgreSQL's and Redis's processes on ``cpus``; their affinities before."""
    import psutil

    before: dict[int, set[int]] = {}
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] not in SERVICE_PROCESSES:
            continue
        for tid in _threads(proc.pid):
            try:
                before[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                continue
            except PermissionError as exc:
                unpin_services(before)
                raise SystemExit(f"--services-cpus: no right to move {proc.info['name']}'s threads "
                                 "(run as their owner or root, or leave the option out)") from exc
    if not before:
        raise SystemExit("--services-cpus: no PostgreSQL or Redis process found on this machine")
    return before


def unpin_services(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, PermissionError):
            continue


def _services_where(cores: dict) -> str:
    where = cores.get("services", "not pinned")
    return "not pinned" if where == "not pinned" else f"on {where}"


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


CLIENTS = {"json": "a JSON client: the state once, then one request an answer, no images",
           "browser": "a browser's walk: HTML pages and forms, redirects followed, images loaded once, "
                      "answers in place (tasks.js: one JSON request, the next task's images)",
           "browser-nojs": "a browser's walk without the task script: every answer a form, its redirect "
                           "and the next page, images loaded once"}
FLOOR_FACTOR = 2.0  # target: an answer's median server time at most this many floors


def table(r: dict) -> str:
    cores = r["cores"]
    lines = [
        f"# {r['command']}",
        f"# load_evaluators: {r['date']} on {r['machine']}; load average {r['load_average']['before']:.2f} before, "
        f"{r['load_average']['after']:.2f} after",
        f"# {r['evaluators']} concurrent evaluators "
        f"(arriving over {r['ramp_s']:.0f} s, think time {r['think_s']:.1f} s mean; "
        f"{CLIENTS[r.get('client', 'json')]}), "
        f"gunicorn {r['gunicorn']}, PostgreSQL, rate limits {r['rate_limits']}; wall {r['wall_s']:.1f} s",
        f"# cores (taskset): gunicorn on {cores['server']}, this load generator on {cores['client']}, "
        f"PostgreSQL and Redis {_services_where(cores)} ({cores['machine']} cores in all)",
        "# cores busy while the evaluators ran (1-s samples of /proc/stat), mean / highest: "
        + ", ".join(f"core {core} {b['mean']:.0f}% / {b['peak']:.0f}%" for core, b in r["core_busy"].items()),
        f"{'endpoint':<14}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'srv p50':>9}{'srv p95':>9}{'cpu p50':>9}{'db p50':>9}{'queries':>8}",
    ]
    for row in r["endpoints"]:
        queries = "-" if row["queries"] is None else str(row["queries"])
        lines.append(f"{row['endpoint']:<14}{row['requests']:>9}{row['errors']:>8}{row['per_s']:>9.1f}"
                     f"{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}"
                     f"{row['server_p50_ms']:>9.1f}{row['server_p95_ms']:>9.1f}{row['cpu_p50_ms']:>9.1f}"
                     f"{row['db_p50_ms']:>9.1f}{queries:>8}")
    lines.append(f"total: {r['requests']} requests, {r['requests'] / r['wall_s']:.1f} req/s, {r['errors']} errors")
    server_ms = sum(row["server_ms_sum"] for row in r["endpoints"])
    if server_ms > 0:
        gc_ms = sum(row["gc_ms_sum"] for row in r["endpoints"])
        lines.append(f"garbage collection while requests were served: {100 * gc_ms / server_ms:.1f}% of their server "
                     f"time; the most in one request {max(row['gc_ms_max'] for row in r['endpoints']):.1f} ms "
                     "(a collection stalls every request its process is serving, and counts in each)")
    lines += [f"error x{n}: {kind}" for kind, n in r["error_kinds"].items()]
    lines.append(f"answers accepted {r['accepted_answers']}, stored {r['stored_answers']}, lost {r['lost']}, "
                 f"evaluators whose stored answers differ from their accepted ones: {r['mismatched_evaluators']}")
    lines.append("# srv: the server's own time per request (Server-Timing: from the first middleware to the "
                 "response; a request and the page its redirect leads to count as one: join, consent, and a browser's "
                 "form answers; images carry no Server-Timing); next page: the task page (or completion page) "
                 "the task script loads after an answer in place when the next task is of another kind or layout; "
                 "cpu: the serving thread's "
                 "CPU time (what a request costs, whatever competes for the core); db: the wall time in its queries; "
                 "queries: the most one request "
                 "made; floor: validate one form, insert one row (bench/_floor_urls.py)")
    lines += targets(r)
    return "\n".join(lines)


def targets(r: dict) -> list[str]:
    """The issue's targets, checked against this run."""
    rows = {row["endpoint"]: row for row in r["endpoints"]}
    out = []
    floor = rows.get("floor")
    if floor is not None:
        for name in ("submit-count", "submit-rank"):
            if name in rows:
                ratio = rows[name]["server_p50_ms"] / floor["server_p50_ms"]
                cpu_ratio = rows[name]["cpu_p50_ms"] / floor["cpu_p50_ms"]
                out.append(f"target: {name} server time (median) {rows[name]['server_p50_ms']:.1f} ms = "
                           f"{ratio:.2f}x the floor's {floor['server_p50_ms']:.1f} ms (at most {FLOOR_FACTOR:.0f}x): "
                           f"{'met' if ratio <= FLOOR_FACTOR else 'MISSED'}; CPU {rows[name]['cpu_p50_ms']:.1f} ms = "
                           f"{cpu_ratio:.2f}x the floor's {floor['cpu_p50_ms']:.1f} ms")
    if r["target_p95_ms"] is not None:
        worst = max((row for row in r["endpoints"] if row["endpoint"] != "floor"), key=lambda row: row["p95_ms"])
        met = worst["p95_ms"] < r["target_p95_ms"] and r["errors"] == 0 and r["lost"] == 0
        out.append(f"target: p95 under {r['target_p95_ms']:.0f} ms on every endpoint, 0 errors, 0 lost: "
                   f"{'met' if met else 'MISSED'} (worst p95 {worst['p95_ms']:.1f} ms, {worst['endpoint']}; "
                   f"{r['errors']} errors, {r['lost']} lost)")
    return out


if __name__ == "__main__":
    sys.exit(main(parse_args()))
