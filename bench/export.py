"""Export benchmark: a million responses from PostgreSQL to CSV, rows per second and peak memory.

    python bench/export.py [--responses 1000000] [--save] [--keep]

It creates its own database (``fusion_bench``, dropped afterwards unless ``--keep``), migrates
it, and fills it in SQL (INSERT ... SELECT over generate_series: seconds, not hours): one
study with four variants, 600 count items and 50 rankings; evaluators with 150 count answers
and 50 rankings each, so a quarter of the responses are rankings (four CSV rows each).

Each export then runs in a fresh child process, so that its resident memory is its own:
``csv-command`` is ``manage.py export --format csv`` (the service it calls), ``csv-http`` the
streaming download view read through Django's test client, ``jsonl-command`` the JSON Lines
export. A thread samples the child's RSS every 5 ms; "peak RSS" is the largest sample (the
whole process: Python, Django, numpy and scipy included), "growth" the peak less the RSS just
before the export started. Targets: >= 50,000 CSV rows/s and < 200 MB peak RSS.

``--save`` writes the table, with the date and the machine, to bench/results/export-<date>.txt.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench._common import cpu_model, run_json_child, save_result, scratch_database  # noqa: E402

COUNT_ITEMS, COUNT_PER_EVALUATOR, RANK_ITEMS = 600, 150, 50
TARGET_ROWS_PER_S, TARGET_RSS_MB = 50_000, 200
MODES = ("csv-command", "csv-http", "jsonl-command")
STUDY_SLUG = "bench-export"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--responses", type=int, default=1_000_000, help="count answers + rankings to store")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, without a database")
    p.add_argument("--database", default="fusion_bench")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--save", action="store_true", help="write bench/results/export-<date>.txt")
    p.add_argument("--measure", choices=MODES, help=argparse.SUPPRESS)  # the child's job
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child_env(args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=f"{args.pg}/{args.database}", DJANGO_SETTINGS_MODULE="webapp.settings",
               DEBUG="0", SECRET_KEY="bench-export-not-a-secret", PYTHONPATH=str(ROOT))
    return env


# --------------------------------------------------------------------------- database


FILL_SQL = """
CREATE TEMP TABLE ci AS
  SELECT row_number() OVER (ORDER BY id) - 1 AS k, id AS item_id, true_count
  FROM studies_item WHERE study_id = %(study)s AND task = 'count';
CREATE TEMP TABLE ri AS
  SELECT row_number() OVER (ORDER BY i.id) - 1 AS k, i.id AS item_id,
         (array_agg(im.id ORDER BY v.index))[1] AS img0, (array_agg(im.id ORDER BY v.index))[2] AS img1,
         (array_agg(im.id ORDER BY v.index))[3] AS img2, (array_agg(im.id ORDER BY v.index))[4] AS img3
  FROM studies_item i
  JOIN studies_image im ON im.prompt_id = i.prompt_id AND im.seed = i.seed
  JOIN studies_variant v ON v.id = im.variant_id
  WHERE i.study_id = %(study)s AND i.task = 'rank' GROUP BY i.id;
INSERT INTO studies_evaluator (study_id, pseudonym, external_id, external_study_id, external_session_id,
                               is_simulated, joined_at, consented_at, last_seen_at, finished_at)
  SELECT %(study)s, 'ev-b' || lpad(g::text, 8, '0'), 'worker-' || g, '', '', true, now(), now(), now(), now()
  FROM generate_series(1, %(evaluators)s) g;
CREATE TEMP TABLE ev AS
  SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM studies_evaluator WHERE study_id = %(study)s;
INSERT INTO studies_entry (evaluator_id, "index", item_id, positions)
  SELECT ev.id, j, ci.item_id, '[]'::jsonb
  FROM ev CROSS JOIN generate_series(0, %(per_evaluator)s - 1) j
  JOIN ci ON ci.k = (ev.n * %(per_evaluator)s + j) %% %(count_items)s;
INSERT INTO studies_entry (evaluator_id, "index", item_id, positions)
  SELECT ev.id, %(per_evaluator)s + ri.k, ri.item_id, '[0, 1, 2, 3]'::jsonb FROM ev CROSS JOIN ri;
INSERT INTO studies_countresponse (entry_id, evaluator_id, item_id, answer, cant_tell, seconds, created_at)
  SELECT en.id, en.evaluator_id, en.item_id,
         CASE WHEN en.id %% 20 = 0 THEN NULL ELSE greatest(0, ci.true_count + (en.id %% 3) - 1) END,
         en.id %% 20 = 0, 1 + (en.id %% 97) / 10.0, now()
  FROM studies_entry en JOIN ci ON ci.item_id = en.item_id;
INSERT INTO studies_rankresponse (entry_id, evaluator_id, item_id, width, image_0_id, image_1_id, image_2_id,
                                  image_3_id, rank_0, rank_1, rank_2, rank_3, skipped, skip_reason, seconds, created_at)
  SELECT en.id, en.evaluator_id, en.item_id, 4, ri.img0, ri.img1, ri.img2, ri.img3,
         CASE WHEN s THEN NULL ELSE (en.id %% 4) + 1 END, CASE WHEN s THEN NULL ELSE ((en.id + 1) %% 4) + 1 END,
         CASE WHEN s THEN NULL ELSE ((en.id + 2) %% 4) + 1 END, CASE WHEN s THEN NULL ELSE ((en.id + 3) %% 4) + 1 END,
         s, CASE WHEN s THEN 'too_hard' ELSE '' END, 5 + (en.id %% 50) / 5.0, now()
  FROM studies_entry en JOIN ri ON ri.item_id = en.item_id CROSS JOIN LATERAL (SELECT en.id %% 10 = 0 AS s) skip;
"""


def build_design() -> int:
    """The study, its variants, prompts, images and items (ORM: a few hundred rows)."""
    from webapp.studies.models import Image, Item, Prompt, Study, Variant

    study = Study.objects.create(slug=STUDY_SLUG, title="Export benchmark", status=Study.Status.OPEN,
                                 protocol={}, protocol_hash="0" * 64)
    variants = [Variant.objects.create(study=study, name=n, index=i) for i, n in
                enumerate(("concat-early", "concat-intermediate", "cross-early", "cross-intermediate"))]
    objects = ("circle", "square", "triangle", "star", "heart")
    seeds_per_prompt = COUNT_ITEMS // (len(objects) * 5 * len(variants))
    images, items = [], []
    for obj in objects:
        for n in range(1, 6):
            prompt = Prompt.objects.create(study=study, kind="count", text=f"{n} red {obj}s", object=obj,
                                           object_plural=obj + "s", count=n)
            for v in variants:
                for s in range(seeds_per_prompt):
                    img = Image(study=study, prompt=prompt, variant=v, seed=s, file=f"bench/{obj}{n}{v.index}{s}.png",
                                auto_count=n + (s % 3) - 1, provenance={"checkpoint_sha256": "ab" * 32, "step": 1000})
                    images.append(img)
                    items.append(Item(study=study, key=f"count:{v.name}:{obj}:{n}:{s}", task="count", prompt=prompt,
                                      seed=s, variant=v, image=img, true_count=n))
    for k in range(RANK_ITEMS):
        prompt = Prompt.objects.create(study=study, kind="rank", text=f"caption number {k}, a scene with things")
        for v in variants:
            images.append(Image(study=study, prompt=prompt, variant=v, seed=k, file=f"bench/r{k}{v.index}.png"))
        items.append(Item(study=study, key=f"rank:{k}:{k}", task="rank", prompt=prompt, seed=k))
    Image.objects.bulk_create(images)
    Item.objects.bulk_create(items)
    return study.pk


def prepare(args: argparse.Namespace) -> dict:
    """Create and fill the benchmark database (in a child process); return the counts."""
    code = f"""
import json, time, django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
from bench.export import FILL_SQL, build_design, COUNT_PER_EVALUATOR, COUNT_ITEMS
t0 = time.perf_counter()
study = build_design()
with connection.cursor() as cur:
    cur.execute(FILL_SQL, {{"study": study, "evaluators": {args.responses // (COUNT_PER_EVALUATOR + RANK_ITEMS)},
                           "per_evaluator": COUNT_PER_EVALUATOR, "count_items": COUNT_ITEMS}})
    cur.execute("ANALYZE")
    cur.execute("SELECT (SELECT count(*) FROM studies_countresponse), (SELECT count(*) FROM studies_rankresponse)")
    n_count, n_rank = cur.fetchone()
print(json.dumps({{"count": n_count, "rank": n_rank, "fill_seconds": time.perf_counter() - t0}}))
"""
    return run_json_child(["-c", code], child_env(args))


# --------------------------------------------------------------------------- one measured export (child)


class RssSampler(threading.Thread):
    """Largest resident set size seen, sampled every ``period`` seconds."""

    def __init__(self, period: float = 0.005):
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process()
        self.period = period
        self.peak = self.process.memory_info().rss
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.period)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return max(self.peak, self.process.memory_info().rss)


def measure(mode: str, out: Path) -> dict:
    import django

    django.setup()
    import psutil
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.http import StreamingHttpResponse
    from django.test import Client
    from django.urls import resolve

    from webapp.research.management.commands import export as export_command  # noqa: F401  imports are not the export
    from webapp.studies.models import Study

    study = Study.objects.get(slug=STUDY_SLUG)
    resolve(f"/research/{study.slug}/export/responses.csv")
    client = Client()
    if mode == "csv-http":
        admin, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
        client.force_login(admin)
    rss_before = psutil.Process().memory_info().rss
    sampler = RssSampler()
    sampler.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    if mode == "csv-http":
        response = client.get(f"/research/{study.slug}/export/responses.csv")
        assert isinstance(response, StreamingHttpResponse), "the CSV export is a streamed download"
        # Under WSGI (the test client) the stream is a plain iterator, never the async one.
        chunks = cast("Iterator[bytes]", response.streaming_content)
        with open(out, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
    else:
        call_command("export", study.slug, "--format", "csv" if mode == "csv-command" else "jsonl", "--out", str(out),
                     stdout=open(os.devnull, "w"))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = sampler.stop()
    with open(out, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    rows = lines - 1 if mode.startswith("csv") else lines
    return {"mode": mode, "rows": rows, "seconds": seconds, "cpu_seconds": cpu, "bytes": out.stat().st_size,
            "rss_before": rss_before, "rss_peak": peak}


# --------------------------------------------------------------------------- report


def machine() -> str:
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return f"{cpu_model()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def versions(args: argparse.Namespace) -> str:
    import django
    import psycopg

    with psycopg.connect(f"{args.pg}/postgres") as conn:
        row = conn.execute("SHOW server_version").fetchone()
    if row is None:
        raise RuntimeError("SHOW server_version returned no row")
    server = row[0]
    return (f"Python {platform.python_version()}, Django {django.get_version()}, psycopg {psycopg.__version__}, "
            f"PostgreSQL {server}")


def table(results: list[dict], filled: dict) -> str:
    mb = 2**20
    n_resp = filled["count"] + filled["rank"]
    lines = [f"{'mode':<14} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'responses/s':>12} {'MB/s':>6} "
             f"{'RSS before':>11} {'peak RSS':>9} {'growth':>7}  targets"]
    for r in results:
        rate, peak = r["rows"] / r["seconds"], r["rss_peak"] / mb
        verdict = ("(not targeted)" if not r["mode"].startswith("csv") else
                   f"{'rate ok' if rate >= TARGET_ROWS_PER_S else 'rate LOW'}, "
                   f"{'memory ok' if peak < TARGET_RSS_MB else 'memory HIGH'}")
        lines.append(
            f"{r['mode']:<14} {r['rows']:>10,} {r['seconds']:>8.1f} {rate:>9,.0f} {n_resp / r['seconds']:>12,.0f} "
            f"{r['bytes'] / mb / r['seconds']:>6.1f} {r['rss_before'] / mb:>8.0f} MB {peak:>6.0f} MB "
            f"{(r['rss_peak'] - r['rss_before']) / mb:>4.0f} MB  {verdict}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    if args.measure:
        print(json.dumps(measure(args.measure, args.out)))
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"unknown mode(s) {unknown}; choose from {MODES}")
    with scratch_database(args.pg, args.database, keep=args.keep):
        filled = prepare(args)
        print(f"filled {filled['count']:,} count answers and {filled['rank']:,} rankings "
              f"in {filled['fill_seconds']:.0f} s", flush=True)
        results = []
        with tempfile.TemporaryDirectory(prefix="fusion-export-bench-") as tmp:
            for mode in modes:
                out = Path(tmp) / f"{mode}.out"
                results.append(run_json_child([str(Path(__file__).resolve()), "--measure", mode, "--out", str(out),
                                               "--pg", args.pg, "--database", args.database], child_env(args)))
                out.unlink()
                print(f"{mode}: {results[-1]['rows']:,} rows in {results[-1]['seconds']:.1f} s", flush=True)
        versions_line = versions(args)
    now = dt.datetime.now(dt.UTC)
    text = "\n".join([
        f"bench/export.py, {now:%Y-%m-%d %H:%M} UTC",
        f"machine: {machine()}",
        f"software: {versions_line}",
        f"data: {filled['count']:,} count answers + {filled['rank']:,} rankings = "
        f"{filled['count'] + filled['rank']:,} responses; CSV rows: one per count answer, four per ranking",
        f"targets: >= {TARGET_ROWS_PER_S:,} CSV rows/s, < {TARGET_RSS_MB} MB peak RSS (whole process)",
        "",
        table(results, filled),
        "",
    ])
    print(text)
    if args.save:
        path = save_result("export", text, day=now.date())
        print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main(parse_args())
