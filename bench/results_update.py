"""What "Update results" costs by study size: the web request, and the time to fresh results.

    nice -n 10 python bench/results_update.py [--responses 10000 100000] [--save]

For each size it makes a fresh PostgreSQL database (``fusion_results``, dropped afterwards),
opens the demo protocol's study with enough places for that many responses and every
evaluator given every item (as in the paper's study; images drawn by the synthetic
renderer), lets simulated evaluators answer all their tasks through the same services as
people, then POSTs "Update results" through Django's test client as a logged-in researcher.
The request only queues the Celery task (the broker here is kombu's in-memory transport);
the task is then run in this process, as a worker would run it: the CSV the analysis reads,
evalstudy's analysis with the protocol's 2,000 resamples, the figures, and storing them.
"fresh s" is from the press of the button to the stored results. Then every GET of the
research pages is timed with the results stored (none of them computes: they read them).

Each size runs in its own child process (a database per process, settings read at start).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench._common import (  # noqa: E402
    command_line,
    cpu_model,
    load_average,
    run_json_child,
    save_result,
    scratch_database,
)

if TYPE_CHECKING:  # Django is imported in the child, once it is set up
    from django.db.backends.utils import CursorWrapper
    from django.test import Client

    from webapp.studies.models import Study

RESPONSES_PER_EVALUATOR = 134  # the demo protocol's tasks when every evaluator sees every item
TARGET_REQUEST_MS, TARGET_FRESH_S = 100, 60
STREAMED = ("export_csv", "export_jsonl")  # the response exports, asked for with the simulated evaluators
SQL_TEMPLATES = 12  # --fill sql: evaluators simulated through the services, copied onto the other places


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--responses", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, without a database")
    p.add_argument("--database", default="fusion_results")
    p.add_argument("--save", action="store_true", help="write bench/results/results_update-<date>.txt")
    p.add_argument("--append", action="store_true", help="with --save: add to that file instead of replacing it")
    p.add_argument("--keep", action="store_true", help="keep the (last size's) database afterwards")
    p.add_argument("--fill", choices=("services", "sql"), default="services",
                   help="services: every evaluator answers through the services (slow at 100,000 responses); "
                        f"sql: {SQL_TEMPLATES} evaluators do, then SQL copies them, answers included, onto the "
                        "other places (minutes; for timing the pages, not for the statistics)")
    p.add_argument("--gets-only", action="store_true",
                   help="only time the research GETs again, on the database a --keep run left")
    p.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # the child's job: one size
    return p.parse_args(argv)


def _columns(cursor: CursorWrapper, table: str, leave_out: set[str]) -> list[str]:
    """The table's columns (as the migrations made them), less ``leave_out``, quoted for SQL."""
    cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                   [table])
    return [f'"{name}"' for (name,) in cursor.fetchall() if name not in leave_out]


def copy_evaluators(study_pk: int) -> int:
    """Give every free place of the study an evaluator: a copy, made in SQL, of one of the
    evaluators already there (template ``n % templates``), with its tasks and answers (new
    rows, the same items, positions, answers and seconds). Returns the evaluators added."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cur:
        ev_cols = _columns(cur, "studies_evaluator", {"id", "pseudonym", "slot_id", "external_id"})
        entry_cols = _columns(cur, "studies_entry", {"id", "evaluator_id"})
        cur.execute("""
            CREATE TEMP TABLE tmpl ON COMMIT DROP AS
              SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM studies_evaluator WHERE study_id = %(s)s;
            CREATE TEMP TABLE free ON COMMIT DROP AS
              SELECT s.id AS slot_id, 'sqlcopy-' || lpad(s.number::text, 8, '0') AS pseudonym,
                     (row_number() OVER (ORDER BY s.number) - 1) %% (SELECT count(*) FROM tmpl) AS k
              FROM studies_slot s
              WHERE s.study_id = %(s)s AND NOT EXISTS (SELECT 1 FROM studies_evaluator e WHERE e.slot_id = s.id);
        """, {"s": study_pk})
        cur.execute(f"""
            INSERT INTO studies_evaluator (pseudonym, slot_id, external_id, {", ".join(ev_cols)})
              SELECT f.pseudonym, f.slot_id, '', {", ".join("e." + c for c in ev_cols)}
              FROM free f JOIN tmpl t ON t.k = f.k JOIN studies_evaluator e ON e.id = t.id;
            CREATE TEMP TABLE copies ON COMMIT DROP AS
              SELECT e.id AS new_id, t.id AS tmpl_id FROM free f JOIN tmpl t ON t.k = f.k
              JOIN studies_evaluator e ON e.pseudonym = f.pseudonym;
            INSERT INTO studies_entry (evaluator_id, {", ".join(entry_cols)})
              SELECT c.new_id, {", ".join("e." + col for col in entry_cols)}
              FROM copies c JOIN studies_entry e ON e.evaluator_id = c.tmpl_id;
        """)
        for table in ("studies_countresponse", "studies_rankresponse"):
            cols = _columns(cur, table, {"id", "evaluator_id", "entry_id"})
            cur.execute(f"""
                INSERT INTO {table} (evaluator_id, entry_id, {", ".join(cols)})
                  SELECT c.new_id, ne.id, {", ".join("r." + col for col in cols)}
                  FROM copies c JOIN {table} r ON r.evaluator_id = c.tmpl_id
                  JOIN studies_entry oe ON oe.id = r.entry_id
                  JOIN studies_entry ne ON ne.evaluator_id = c.new_id AND ne."index" = oe."index";
            """)
        cur.execute("SELECT count(*) FROM copies")
        (added,) = cur.fetchone()
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return added


def measure(n_responses: int, fill: str = "services") -> dict:
    """In the child: build, fill and time one study of about ``n_responses``."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from bench._loadstudy import build_load_study
    from webapp.research import tasks
    from webapp.research.models import ResultsUpdate, StudyResult
    from webapp.research.services import study_simulate_responses
    from webapp.studies.models import Study

    call_command("migrate", verbosity=0)
    n_evaluators = max(1, round(n_responses / RESPONSES_PER_EVALUATOR))
    info = build_load_study(n_slots=n_evaluators, slug="results-bench", overlap=n_evaluators)
    study = Study.objects.get(slug=info["slug"])
    started = time.perf_counter()
    if fill == "sql":
        study_simulate_responses(study=study, n_evaluators=min(n_evaluators, SQL_TEMPLATES), seed=1)
        copy_evaluators(study.pk)
    else:
        study_simulate_responses(study=study, n_evaluators=n_evaluators, seed=1)
    simulate_s = time.perf_counter() - started

    researcher = User.objects.create_user("bench-researcher", password="x")
    study.researchers.add(researcher)
    client = Client()
    client.force_login(researcher)
    url = reverse("research:results_update", args=[study.slug])
    client.get(reverse("research:dashboard", args=[study.slug]))  # warm the views and templates
    pressed = time.perf_counter()
    response = client.post(url, {"include_simulated": "1"})  # every answer here is simulated: a dry run
    request_s = time.perf_counter() - pressed
    if response.status_code != 302 or not response["Location"].endswith("#results"):
        raise RuntimeError(f"Update results answered {response.status_code} {response.get('Location')}")
    update = ResultsUpdate.objects.get(study=study, state=ResultsUpdate.State.QUEUED)
    if tasks.results_update(update.pk) != "done":  # what the worker does with the message
        raise RuntimeError(f"the update failed: {ResultsUpdate.objects.get(pk=update.pk).message}")
    fresh_s = time.perf_counter() - pressed
    result = StudyResult.objects.get(study=study)
    pressed = time.perf_counter()
    client.post(url, {"include_simulated": "1"})
    warm_request_s = time.perf_counter() - pressed
    again = ResultsUpdate.objects.get(study=study, state=ResultsUpdate.State.QUEUED)
    tasks.results_update(again.pk)  # nothing changed: the stored result is reused
    again_s = time.perf_counter() - pressed
    gets = research_gets(client, study)
    return {
        "gets": gets,
        "evaluators": study.evaluators.count(), "fill": fill,
        "responses": result.n_responses, "n_boot": result.n_boot, "simulate_s": simulate_s,
        "request_ms": 1000 * request_s, "warm_request_ms": 1000 * warm_request_s, "fresh_s": fresh_s,
        "analysis_s": result.seconds, "again_s": again_s,
    }


def research_gets(client: Client, study: Study) -> dict[str, float]:
    """Milliseconds of each GET of the research pages (every study URL pattern but the POSTs),
    the best of three after a warm-up, with the results stored; for a streamed export, the
    time to its first chunk (the rest streams at the speed of the download)."""
    from django.urls import reverse

    from webapp.research import selectors, urls

    latest = selectors.study_result_latest(study=study)
    if latest is None:
        raise RuntimeError("the study has no stored result to read its figures from")
    figure = selectors.result_figure_names(result=latest)[0]
    out: dict[str, float] = {}
    for pattern in urls.urlpatterns:
        params = set(pattern.pattern.converters)
        if pattern.name is None or "slug" not in params or pattern.name in ("results_update", "report_details"):
            continue
        kwargs = {"slug": study.slug, **({"name": figure, "fmt": "png"} if "name" in params else {})}
        url = reverse(f"research:{pattern.name}", kwargs=kwargs)
        if pattern.name in STREAMED:
            url += "?simulated=1"  # every evaluator here is simulated: people's export alone would be empty
        times = []
        for _ in range(4):
            t0 = time.perf_counter()
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url} answered {response.status_code}")
            if response.streaming:
                # An empty export streams no chunk at all. The test client's stub types every response
                # as an HttpResponse; a streamed view's is a StreamingHttpResponse.
                next(iter(response.streaming_content), b"")  # type: ignore[attr-defined]  # streamed: see above
            times.append(time.perf_counter() - t0)
            response.close()
        out[pattern.name] = 1000 * min(times[1:])
    return out


def measure_gets() -> dict:
    """In the child: the research GETs of the study a --keep run left."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client

    from webapp.research.models import StudyResult
    from webapp.studies.models import Study

    study = Study.objects.get(slug="results-bench")
    client = Client()
    client.force_login(User.objects.get(username="bench-researcher"))
    result = StudyResult.objects.filter(study=study).latest()
    return {"gets": research_gets(client, study), "responses": result.n_responses}


def _child_env(db_url: str) -> dict:
    return {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "webapp.settings", "DEBUG": "0",
            "SECRET_KEY": "bench-results-" + "x" * 40, "CELERY_BROKER_URL": "memory://",
            "FUSION_MEDIA_ROOT": str(ROOT / "var" / "results-bench-media"), "PYTHONPATH": str(ROOT)}


def run_child(args: argparse.Namespace, n: int) -> dict:
    with scratch_database(args.pg, args.database, keep=args.keep) as db_url:
        return run_json_child([__file__, "--measure", str(n), "--fill", args.fill], _child_env(db_url))


def gets_line(r: dict) -> str:
    slow = [name for name, ms in r["gets"].items() if ms >= TARGET_REQUEST_MS]
    return (f"# research GETs at {r['responses']} responses, ms (best of 3; streamed exports: first chunk): "
            + ", ".join(f"{name} {ms:.1f}" for name, ms in r["gets"].items())
            + f"; target under {TARGET_REQUEST_MS} ms: " + ("met" if not slow else f"MISSED ({', '.join(slow)})"))


def table(rows: list[dict], load_before: float, load_after: float) -> str:
    lines = [
        f"# results_update: {dt.datetime.now():%Y-%m-%d %H:%M} on {cpu_model()}, {os.cpu_count()} CPUs, "
        f"PostgreSQL; load average {load_before:.2f} -> {load_after:.2f}",
        f"# command: {command_line()}",
        f"# POST 'Update results' (queues the task), then the task as a worker runs it; targets: request under "
        f"{TARGET_REQUEST_MS} ms, fresh results under {TARGET_FRESH_S} s at 100,000 responses",
        f"{'evaluators':>10s} {'responses':>10s} {'resamples':>9s} {'request ms':>10s} {'again ms':>8s} "
        f"{'fresh s':>8s} {'analysis s':>10s} {'again s':>8s} {'simulate s':>10s}",
    ]
    for r in rows:
        lines.append(f"{r['evaluators']:>10d} {r['responses']:>10d} {r['n_boot']:>9d} {r['request_ms']:>10.1f} "
                     f"{r['warm_request_ms']:>8.1f} {r['fresh_s']:>8.2f} {r['analysis_s']:>10.2f} "
                     f"{r['again_s']:>8.3f} {r['simulate_s']:>10.1f}")
    lines += [gets_line(r) for r in rows]
    if any(r.get("fill") == "sql" for r in rows):
        lines.append(f"# --fill sql: {SQL_TEMPLATES} evaluators answered through the services, SQL copied them "
                     "(tasks and answers) onto every other place; 'simulate s' is that fill")
    lines.append("# 'request ms': the first POST, which only queues (it also opens the broker connection); "
                 "'again ms': the second POST; 'fresh s': from the POST to the stored results; "
                 "'analysis s': CSV + evalstudy + figures; 'again s': press and task once nothing has changed")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    if args.measure is not None:
        print(json.dumps(measure_gets() if args.gets_only else measure(args.measure, args.fill)))
        return 0
    load_before = load_average()
    if args.gets_only:
        db_url = f"{args.pg.rstrip('/')}/{args.database}"
        row = run_json_child([__file__, "--measure", "0", "--gets-only"], _child_env(db_url))
        text = (f"# results_update --gets-only: {dt.datetime.now():%Y-%m-%d %H:%M} on {cpu_model()}, "
                f"{os.cpu_count()} CPUs, PostgreSQL; load average {load_before:.2f} -> {load_average():.2f}\n"
                f"# command: {command_line()}\n" + gets_line(row))
    else:
        rows = [run_child(args, n) for n in args.responses]
        text = table(rows, load_before, load_average())
    print(text)
    if args.save:
        out = save_result("results_update", text, append=args.append)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
