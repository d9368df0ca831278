"""Load test: N simulated evaluators answer a study through gunicorn + PostgreSQL.

Each simulated evaluator has its own HTTP session: it joins by the invite link, consents,
reads its current task (the JSON state), then answers task after task, each answer's JSON
response carrying the next task, with a think time between tasks. The script prints
throughput and p50/p95/p99 latency per endpoint, then checks that every answer the server
accepted is in the database, and nothing else.

The rate limits are on, as in production behind a proxy: each evaluator comes from an
address of its own (sent as X-Forwarded-For, FUSION_CLIENT_IP_HEADER), and with
``--cache-url`` the counters live in Redis as the README's production set-up has them.
The table, the command and the load average before and after go to
bench/results/load_evaluators-<date>.txt.

    nice -n 10 python bench/load_evaluators.py --evaluators 50 --tasks 20 --cache-url redis://127.0.0.1:6379/2

It creates (and afterwards drops) its own PostgreSQL database, ``fusion_load``; the
study's images are rendered by the synthetic renderer, since this measures the web path,
not the models.
"""
from __future__ import annotations

import argparse
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
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import cpu_model, load_average, run_json_child, save_result, scratch_database  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluators", type=int, default=50, help="concurrent simulated evaluators")
    p.add_argument("--tasks", type=int, default=20, help="answers per evaluator (at most their whole slot)")
    p.add_argument("--think", type=float, default=2.0,
                   help="mean seconds an evaluator looks at a task before answering (uniform in 0.5x..1.5x); "
                        "people take several seconds per count and longer per ranking; 0 = saturation test")
    p.add_argument("--ramp", type=float, default=5.0, help="evaluators arrive spread over this many seconds")
    p.add_argument("--gunicorn-workers", type=int, default=3)
    p.add_argument("--gunicorn-threads", type=int, default=4)
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

    def timed(self, name: str, fn, ok=lambda r: r.status_code < 400):
        t0 = time.perf_counter()
        try:
            r = fn()
            good, why = ok(r), f"HTTP {r.status_code}: {r.text[:120]!r}"
        except requests.RequestException as exc:
            r, good, why = None, False, f"{type(exc).__name__}: {str(exc)[-100:]}"
        dt = time.perf_counter() - t0
        with self.lock:
            self.latency[name].append(dt)
            if not good:
                self.errors[name] += 1
                self.error_kinds[f"{name} {why}"] += 1
        return r if good else None


def client_address(i: int) -> str:
    """The i-th evaluator's own address (10.0.0.0/8), as the proxy would forward it."""
    return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"


def evaluator(base: str, invite: str, i: int, n_tasks: int, think: float, ramp: float, rec: Recorder,
              start: threading.Barrier) -> None:
    worker_id = f"load-{i}"
    s = requests.Session()
    s.headers["X-Forwarded-For"] = client_address(i)
    rng = random.Random(worker_id)
    start.wait()
    time.sleep(ramp * rng.random())
    r = rec.timed("join", lambda: s.get(f"{base}/join/{invite}/", params={"PROLIFIC_PID": worker_id}))
    if r is None:
        return
    slug = re.search(r"/e/([^/]+)/", r.url).group(1)
    csrf = s.cookies.get("csrftoken", "")
    if not csrf:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)
        csrf = match.group(1) if match else ""
    headers = {"X-CSRFToken": s.cookies.get("csrftoken", csrf), "Referer": f"{base}/", "Accept": "application/json"}
    consent = {"agree": "yes", "csrfmiddlewaretoken": csrf}
    r = rec.timed("consent", lambda: s.post(f"{base}/e/{slug}/consent/", data=consent, headers={"Referer": f"{base}/"}))
    if r is None:
        return
    headers["X-CSRFToken"] = s.cookies.get("csrftoken", csrf)
    # A JSON client reads its state once; each answer's response carries the next task.
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


def main(args: argparse.Namespace) -> int:
    load_before = load_average()
    with scratch_database(args.pg, args.database, keep=args.keep) as db_url:
        result = run(args, db_url)
    result["load_average"] = {"before": load_before, "after": load_average()}
    result["command"] = " ".join(["python", *sys.argv])
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(result))
    if not args.no_save:
        path = save_result("load_evaluators", table(result) + "\n", append=True)
        print(f"appended to {path.relative_to(ROOT)}", file=sys.stderr)
    ok = result["errors"] == 0 and result["lost"] == 0 and result["mismatched_evaluators"] == 0
    return 0 if ok else 1


def run(args: argparse.Namespace, db_url: str) -> dict:
    """Serve the study in ``db_url`` with gunicorn, let the evaluators answer, count what was stored."""
    media = ROOT / "var" / "load-media"
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "webapp.settings", "DEBUG": "0",
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
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.gunicorn_workers),
         "-k", "gthread", "--threads", str(args.gunicorn_threads), "--keep-alive", str(args.keep_alive),
         "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
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
        threads = [threading.Thread(target=evaluator, args=(base, info["invite"], i, args.tasks, args.think,
                                                              args.ramp, rec, barrier))
                   for i in range(args.evaluators)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    counts = db_counts(env)
    accepted_total = sum(rec.accepted.values())
    stored_total = counts["count"] + counts["rank"]
    mismatched = {w: (n, counts["per"].get(w, 0)) for w, n in rec.accepted.items() if counts["per"].get(w, 0) != n}
    rows = []
    for name in ("join", "consent", "state", "submit-count", "submit-rank"):
        lat = rec.latency.get(name, [])
        if not lat:
            continue
        rows.append({
            "endpoint": name, "requests": len(lat), "errors": rec.errors.get(name, 0),
            "per_s": len(lat) / wall, "p50_ms": 1000 * percentile(lat, 0.5),
            "p95_ms": 1000 * percentile(lat, 0.95), "p99_ms": 1000 * percentile(lat, 0.99),
            "max_ms": 1000 * max(lat),
        })
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "evaluators": args.evaluators,
        "think_s": args.think, "ramp_s": args.ramp,
        "gunicorn": f"{args.gunicorn_workers} workers x {args.gunicorn_threads} threads "
                    f"(gthread, keep-alive {args.keep_alive} s)",
        "rate_limits": "off" if args.rate_limits == "off" else
                       f"on, counted in {'Redis' if args.cache_url else 'each worker process'}",
        "wall_s": wall, "requests": sum(len(v) for v in rec.latency.values()),
        "errors": sum(rec.errors.values()), "accepted_answers": accepted_total, "stored_answers": stored_total,
        "lost": accepted_total - stored_total, "mismatched_evaluators": len(mismatched), "endpoints": rows,
        "error_kinds": dict(rec.error_kinds),
    }


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(r: dict) -> str:
    lines = [
        f"# {r['command']}",
        f"# load_evaluators: {r['date']} on {r['machine']}; load average {r['load_average']['before']:.2f} before, "
        f"{r['load_average']['after']:.2f} after",
        f"# {r['evaluators']} concurrent evaluators "
        f"(arriving over {r['ramp_s']:.0f} s, think time {r['think_s']:.1f} s mean), "
        f"gunicorn {r['gunicorn']}, PostgreSQL, rate limits {r['rate_limits']}; wall {r['wall_s']:.1f} s",
        f"{'endpoint':<14}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    for row in r["endpoints"]:
        lines.append(f"{row['endpoint']:<14}{row['requests']:>9}{row['errors']:>8}{row['per_s']:>9.1f}"
                     f"{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}")
    lines.append(f"total: {r['requests']} requests, {r['requests'] / r['wall_s']:.1f} req/s, {r['errors']} errors")
    lines += [f"error x{n}: {kind}" for kind, n in r["error_kinds"].items()]
    lines.append(f"answers accepted {r['accepted_answers']}, stored {r['stored_answers']}, lost {r['lost']}, "
                 f"evaluators whose stored answers differ from their accepted ones: {r['mismatched_evaluators']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
