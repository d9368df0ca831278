"""Where an evaluator request spends its CPU: join, consent, instructions, practice, state and the answers.

Django's test Client drives N evaluators (one at a time: this measures cost, not
concurrency) through the load test's study, with the load test's server settings
(bench/_floor_settings.py, DEBUG off, PostgreSQL, the rate limits on and, with
``--cache-url``, counted in Redis with the sessions there too). Each request runs under
cProfile with the thread's CPU clock as its timer, so the numbers are CPU time (what a
request costs a core), robust to what else runs on the machine; wall time is not measured.

For every endpoint it prints the median CPU per request and how it splits: the middleware
(sessions, CSRF, auth, messages, CSP, security headers), template rendering, ORM query
compilation, the database driver (building the statement, reading rows: the client side
of a query), the rate-limit counters, JSON, signing, protocol parsing, and the view's
own Python, and the bench's one-INSERT floor view beside them for comparison. Forms are
sent URL-encoded, as a browser sends them and the task script its answers (the test
Client's default, multipart, costs the server a parse a browser never asks of it).

    python bench/profile_evaluator.py --evaluators 30 --cache-url redis://127.0.0.1:6379/1
    python bench/profile_evaluator.py --top 25 --endpoint submit-count   # the hottest functions

It creates (and afterwards drops) its own PostgreSQL database, ``fusion_profile``.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import load_average, save_result, scratch_database  # noqa: E402

if TYPE_CHECKING:  # Django is imported in the child, once it is set up
    from django.core.handlers.base import BaseHandler
    from django.http import HttpRequest, HttpResponseBase
    from django.test import Client
    from django.test.client import _MonkeyPatchedWSGIResponse

# What a function's CPU counts as: the first rule whose (file part, function name or "") matches
# a frame on the way down claims the time spent under it (cumulative, counted once per request).
# Ordered from the most specific inward: a template rendered inside a view is "templates",
# a query compiled inside the session middleware is "orm compile".
CATEGORIES: list[tuple[str, str, str]] = [
    ("rate limits", "django_ratelimit/", ""),
    ("templates", "django/template/", "render"),
    ("orm compile", "django/db/models/sql/compiler.py", "as_sql"),
    ("orm compile", "django/db/models/sql/compiler.py", "pre_sql_setup"),
    ("db driver", "psycopg/", ""),
    ("db driver", "django/db/backends/", "execute"),
    ("db driver", "django/db/backends/", "executemany"),
    ("orm rows", "django/db/models/query.py", "__iter__"),
    ("json", "json/", ""),
    ("signing", "django/core/signing.py", ""),
    ("protocol parse", "evalstudy/protocol", ""),
    ("redis", "redis/", ""),
    ("sessions", "django/contrib/sessions/", ""),
    ("csrf", "django/middleware/csrf.py", ""),
    ("auth", "django/contrib/auth/", ""),
    ("messages", "django/contrib/messages/", ""),
    ("csp", "csp/", ""),
    ("url resolve", "django/urls/", ""),
    ("forms", "django/forms/", ""),
    ("server timing", "webapp/servertiming.py", ""),
]
ENDPOINTS = ("join", "join->consent page", "consent", "consent->instructions page", "instructions",
             "instructions->practice page", "practice", "state", "submit-count", "submit-rank", "task page", "image",
             "floor")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluators", type=int, default=30)
    p.add_argument("--tasks", type=int, default=12, help="answers per evaluator")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, without a database")
    p.add_argument("--database", default="fusion_profile")
    p.add_argument("--cache-url", default="", help="FUSION_CACHE_URL (Redis) for the limits and the sessions")
    p.add_argument("--top", type=int, default=0, help="also print this many hottest functions per endpoint")
    p.add_argument("--endpoint", action="append", default=[], help="with --top: only these endpoints")
    p.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"), help="with --top: the order")
    p.add_argument("--save", action="store_true", help="append the table to bench/results/profile_evaluator-<date>.txt")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    if args.child:
        return child(args)
    with scratch_database(args.pg, args.database) as db_url:
        env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "bench._floor_settings", "DEBUG": "0",
               "SECRET_KEY": secrets.token_urlsafe(48), "SESSION_COOKIE_SECURE": "0", "FUSION_RATELIMITS": "1",
               "FUSION_MEDIA_ROOT": str(ROOT / "var" / "load-media"), "PYTHONPATH": str(ROOT),
               "FUSION_CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR", "FUSION_CACHE_URL": args.cache_url,
               # every request of the walk is measured; none may be refused for coming too fast
               "FUSION_RATE_ANSWER": "1000/s", "FUSION_RATE_JOIN": "100000/m", "FUSION_RATE_CONSENT": "100000/m"}
        if args.cache_url:
            import redis

            redis.Redis.from_url(args.cache_url).flushdb()
        load_before = load_average()
        out = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, cwd=ROOT,
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout[-4000:], out.stderr[-4000:], file=sys.stderr)
            return out.returncode
        text = (f"# python {' '.join(sys.argv)}\n# profile_evaluator: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
                f"load average {load_before:.2f} before, {load_average():.2f} after\n{out.stdout}")
        print(text)
        if args.save:
            path = save_result("profile_evaluator", text + "\n", append=True)
            print(f"appended to {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- the child (Django set up)


def _category(stats: pstats.Stats) -> dict[str, float]:
    """CPU seconds under each category's frames (the outermost frame of a category counts,
    so nested calls of one category are not counted twice), and the total."""
    raw = stats.stats  # type: ignore[attr-defined]  # {func: (cc, nc, tt, ct, callers)}
    out: dict[str, float] = defaultdict(float)
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())

    def category_of(func: tuple[str, int, str]) -> str | None:  # pstats' (file, line, function name)
        filename, _line, name = func
        for label, part, fname in CATEGORIES:
            if part in filename and (not fname or name == fname):
                return label
        return None

    # Self time of every function, attributed to the innermost category on its callers'
    # chain is what we want; pstats keeps callers, not stacks, so approximate: a function's
    # own time goes to its own category, or else to its callers' category (one level up,
    # then two), or else to "other" (the view and the rest of Django).
    cat_cache: dict = {}

    def resolve(func: tuple[str, int, str], depth: int = 0) -> str | None:
        if func in cat_cache:
            return cat_cache[func]
        label = category_of(func)
        if label is None and depth < 6:
            callers = raw[func][4]
            # the caller that contributed the most time decides
            if callers:
                top = max(callers.items(), key=lambda kv: kv[1][3] if len(kv[1]) > 3 else 0)[0]
                if top in raw:
                    label = resolve(top, depth + 1)
        cat_cache[func] = label
        return label

    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        out[resolve(func) or "view and other"] += tt
    out["total"] = total
    return dict(out)


class _Recorder:
    """Profiles the server's part of each request: the handler's ``get_response`` (the whole
    middleware chain and the view), not the test Client building the request and reading
    the response. Requests are recorded once ``record`` is set; under cProfile when
    ``profile`` is set, otherwise their CPU time and query count are kept."""

    def __init__(self) -> None:
        from django.core.handlers.base import BaseHandler
        from django.db import connection

        self.record = self.profile = False
        self.profiles: dict[str, list[cProfile.Profile]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.queries: dict[str, list[int]] = defaultdict(list)
        self._last: tuple[float, cProfile.Profile | None, int] = (0.0, None, 0)
        plain = BaseHandler.get_response
        recorder = self

        def get_response(handler: BaseHandler, request: HttpRequest) -> HttpResponseBase:
            prof = cProfile.Profile(timer=time.thread_time) if recorder.profile else None
            n = [0]

            def count(execute: Callable[[str, object, bool, dict[str, object]], object], sql: str, params: object,
                      many: bool, context: dict[str, object]) -> object:
                n[0] += 1
                return execute(sql, params, many, context)

            t0 = time.thread_time()
            if prof is not None:
                prof.enable()
            try:
                with connection.execute_wrapper(count):
                    return plain(handler, request)
            finally:
                if prof is not None:
                    prof.disable()
                recorder._last = (time.thread_time() - t0, prof, n[0])

        # Patched on the class, for the child's whole run; the function's `handler` is the method's self.
        BaseHandler.get_response = get_response  # type: ignore[method-assign, assignment]  # a patch, see above

    def request(self, name: str, client: Client, method: str, path: str, data: dict[str, str] | None = None,
                **extra: Any) -> _MonkeyPatchedWSGIResponse:  # Any: the test client's options, passed on
        if method == "post":  # URL-encoded, as a browser sends a form and tasks.js an answer (not multipart)
            response = client.post(path, urlencode(data or {}), content_type="application/x-www-form-urlencoded",
                                   **extra)
        else:
            response = getattr(client, method)(path, data, **extra)
        if self.record:
            seconds, prof, queries = self._last
            if prof is not None:
                self.profiles[name].append(prof)
            else:  # CPU and queries from the requests run without the profiler's overhead
                self.cpu[name].append(seconds)
                self.queries[name].append(queries)
        return response


def _walk(rec: _Recorder, client: Client, info: dict, worker_id: str, n_tasks: int) -> None:
    """One evaluator's way, as bench/load_evaluators.py takes it (each redirect measured on its own)."""
    slug = info["slug"]
    r = rec.request("join", client, "get", f"/join/{info['invite']}/", {"PROLIFIC_PID": worker_id})
    assert r.status_code == 302, (r.status_code, r.content[:300])
    rec.request("join->consent page", client, "get", r["Location"])
    r = rec.request("consent", client, "post", f"/e/{slug}/consent/", {"agree": "yes"})
    assert r.status_code == 302, (r.status_code, r.content[:300])
    rec.request("consent->instructions page", client, "get", r["Location"])
    state = client.get(f"/e/{slug}/state/").json()
    if not state["done"] and "task" not in state:
        r = rec.request("instructions", client, "post", state["next"])
        if r.status_code == 302 and r["Location"].endswith("/practice/"):
            rec.request("instructions->practice page", client, "get", r["Location"])
            r = rec.request("practice", client, "post", r["Location"], {"answer": "1"})
            assert r.status_code == 200, (r.status_code, r.content[:300])
    state = rec.request("state", client, "get", f"/e/{slug}/state/").json()
    for k in range(n_tasks):
        if state["done"]:
            break
        task = state["task"]
        if task["kind"] == "count":
            data = {"kind": "count", "token": task["token"], "answer": str(k % 5 + 1)}
        else:
            data = {"kind": "rank", "token": task["token"], **{f"rank_{j}": str(j + 1) for j in range(4)}}
        state = rec.request(f"submit-{task['kind']}", client, "post", f"/e/{slug}/task/", data,
                            HTTP_ACCEPT="application/json").json()
        assert state["ok"], state
        if not state["done"]:
            # What a browser's form answer costs beyond the answer: the task page it is sent
            # back to (the task the JSON named, so nothing changes) and that page's first image.
            rec.request("task page", client, "get", f"/e/{slug}/task/")
            rec.request("image", client, "get", state["task"]["images"][0])
        if k % 4 == 3:
            rec.request("floor", client, "post", "/bench/floor/", {"token": task["token"], "answer": "1"})


def child(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    from bench._floor_urls import CREATE_TABLE
    from bench._loadstudy import build_load_study

    with connection.cursor() as cursor:
        cursor.execute(CREATE_TABLE)
    info = build_load_study(n_slots=args.evaluators)
    rec = _Recorder()
    for i in range(args.evaluators):
        # The first two warm the process (imports, the URLconf, connections) and are not
        # recorded; then every other evaluator runs under the profiler.
        rec.record, rec.profile = i >= 2, i >= 2 and i % 2 == 0
        _walk(rec, Client(HTTP_X_FORWARDED_FOR=f"10.1.{i // 256}.{i % 256}"), info, f"{i:024x}", args.tasks)
    report(args, rec)
    return 0


def report(args: argparse.Namespace, rec: _Recorder) -> None:
    print(f"# {args.evaluators} evaluators, {args.tasks} answers each, through Django's test Client one request at "
          f"a time; half of them (after two to warm up) under cProfile for the split, the other half without it "
          f"for the CPU per request (median) and the queries; the split scales the profiled shares to that median")
    print(f"{'endpoint':<28}{'n':>5}{'cpu ms':>8}{'queries':>8}  where the CPU goes (ms per request)")
    results = {}
    for name in ENDPOINTS:
        if not rec.cpu.get(name) or not rec.profiles.get(name):
            continue
        split = _category(pstats.Stats(*rec.profiles[name]))
        total = split.pop("total")
        p50 = 1000 * statistics.median(rec.cpu[name])
        shares = {k: p50 * v / total for k, v in sorted(split.items(), key=lambda kv: -kv[1])}
        results[name] = {"n": len(rec.cpu[name]), "cpu_p50_ms": p50, "queries": max(rec.queries[name]),
                         "split_ms": shares}
        parts = ", ".join(f"{k} {v:.1f}" for k, v in shares.items() if v >= 0.1)
        print(f"{name:<28}{len(rec.cpu[name]):>5}{p50:>8.2f}{max(rec.queries[name]):>8}  {parts}")
    print("# the split is approximate: a function's own time goes to its own part, or to the part of the caller "
          "that spent the most in it (six levels up at most), or to 'view and other'")
    for name in (args.endpoint or list(results)) if args.top else ():
        print(f"\n## {name}: the {args.top} functions first by {args.sort} CPU ({len(rec.profiles[name])} requests)")
        pstats.Stats(*rec.profiles[name]).sort_stats(args.sort).print_stats(args.top)
    print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
