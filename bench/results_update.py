"""What a researcher waits for when pressing "Update results": seconds per study size.

    python bench/results_update.py [--evaluators 25 100 300] [--save]

For each size it makes a fresh PostgreSQL database (``fusion_results``, dropped afterwards),
opens the demo protocol's study with that many places and every evaluator given every item
(as in the paper's study; images drawn by the synthetic renderer), lets that many simulated
evaluators answer all their tasks through the same services as people, then POSTs
"Update results" through Django's test client as a logged-in researcher and times it: the
CSV the analysis reads, evalstudy's analysis with the protocol's 2,000 resamples, the
figures, and storing them. The request runs synchronously
in a web worker, so it must stay well inside gunicorn's timeout (30 s by default).

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench._common import cpu_model, load_average, run_json_child, save_result, scratch_database  # noqa: E402

GUNICORN_TIMEOUT_S = 30  # gunicorn's default worker timeout


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluators", type=int, nargs="+", default=[25, 100, 300])
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, without a database")
    p.add_argument("--database", default="fusion_results")
    p.add_argument("--save", action="store_true", help="write bench/results/results_update-<date>.txt")
    p.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # the child's job: one size
    return p.parse_args(argv)


def measure(n_evaluators: int) -> dict:
    """In the child: build, fill and time one study of ``n_evaluators``."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from bench._loadstudy import build_load_study
    from webapp.research.models import StudyResult
    from webapp.research.services import study_simulate_responses
    from webapp.studies.models import Study

    call_command("migrate", verbosity=0)
    info = build_load_study(n_slots=n_evaluators, slug="results-bench", overlap=n_evaluators)
    study = Study.objects.get(slug=info["slug"])
    started = time.perf_counter()
    sim = study_simulate_responses(study=study, n_evaluators=n_evaluators, seed=1)
    simulate_s = time.perf_counter() - started

    researcher = User.objects.create_user("bench-researcher", password="x")
    study.researchers.add(researcher)
    client = Client()
    client.force_login(researcher)
    url = reverse("research:results_update", args=[study.slug])
    started = time.perf_counter()
    response = client.post(url)
    update_s = time.perf_counter() - started
    if response.status_code != 302 or not response.url.endswith("#results"):
        raise RuntimeError(f"Update results answered {response.status_code} {response.get('Location')}")
    result = StudyResult.objects.get(study=study)
    started = time.perf_counter()
    client.post(url)  # nothing changed: the stored result is reused
    cached_s = time.perf_counter() - started
    return {
        "evaluators": n_evaluators, "count_answers": sim.count_answers, "rank_answers": sim.rank_answers,
        "responses": result.n_responses, "n_boot": result.n_boot, "simulate_s": simulate_s,
        "update_s": update_s, "analysis_s": result.seconds, "cached_s": cached_s,
    }


def run_child(args, n: int) -> dict:
    with scratch_database(args.pg, args.database) as db_url:
        env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "webapp.settings", "DEBUG": "0",
               "SECRET_KEY": "bench-results-" + "x" * 40,
               "FUSION_MEDIA_ROOT": str(ROOT / "var" / "results-bench-media"), "PYTHONPATH": str(ROOT)}
        return run_json_child([__file__, "--measure", str(n)], env)


def table(rows: list[dict], load_before: float, load_after: float) -> str:
    lines = [
        f"# results_update: {dt.datetime.now():%Y-%m-%d %H:%M} on {cpu_model()}, {os.cpu_count()} CPUs, "
        f"PostgreSQL; load average {load_before:.2f} -> {load_after:.2f}",
        f"# POST 'Update results' through Django's test client; gunicorn's default timeout is {GUNICORN_TIMEOUT_S} s",
        f"{'evaluators':>10s} {'responses':>10s} {'resamples':>9s} {'update s':>9s} {'analysis s':>10s} "
        f"{'again s':>8s} {'simulate s':>10s}",
    ]
    for r in rows:
        lines.append(f"{r['evaluators']:>10d} {r['responses']:>10d} {r['n_boot']:>9d} {r['update_s']:>9.2f} "
                     f"{r['analysis_s']:>10.2f} {r['cached_s']:>8.3f} {r['simulate_s']:>10.1f}")
    lines.append("# 'update s': the whole request; 'analysis s': CSV + evalstudy + figures, as stored with the "
                 "result; 'again s': the same request once nothing has changed (the stored result is reused)")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return 0
    load_before = load_average()
    rows = [run_child(args, n) for n in args.evaluators]
    text = table(rows, load_before, load_average())
    print(text)
    if args.save:
        out = save_result("results_update", text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
