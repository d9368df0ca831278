"""Images per second through the whole Celery path vs the sampler called directly.

    python bench/batch_overhead.py [--broker filesystem://|redis://127.0.0.1:6379/14]
                                   [--preset tiny-cross-early] [--steps N] [--rounds 3] [--save]

Both sides make the same images: the demo protocol's 160 (prompt, seed) pairs (40 for
each of its 4 variants), all with one untrained checkpoint of `--preset`, at the
protocol's CFG scale and `--steps`, one torch thread each on the CPU.

- direct: in this process, `load_sampler` once, then `Sampler.generate` on the 160
  prompts and seeds (batch_size 50).
- pipeline: `batch_launch` in this process (parts of 50 on the `gpu` queue, sent on
  commit through the broker) and one `celery -A webapp worker -Q gpu,default --pool
  solo` process, already running and with the checkpoint loaded (a warm-up batch runs
  first), which samples, counts objects, writes each PNG and its row in one transaction
  and marks the parts done; timed from launch until the batch is complete in the
  database (polled every 0.1 s).

Rounds are interleaved (direct, pipeline, direct, ...) so bursts of load from other
processes hit both sides alike. The best round of each side gives the headline numbers
(as timeit advises); medians and every round are printed too, with the CPU seconds of
the process that sampled (this one for direct, the worker for the pipeline), which are
less sensitive to an oversubscribed machine than wall time.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench._common import cpu_model, load_average, save_result  # noqa: E402

if TYPE_CHECKING:  # Django's models and torch are imported once the benchmark has set them up
    import subprocess

    from generator.sample import Sampler
    from webapp.studies.models import Checkpoint, Study


def machine() -> str:
    return f"{cpu_model()}, os.cpu_count={os.cpu_count()}, load average at start {load_average():.1f}"


def setup_django(var_dir: Path, broker: str) -> None:
    os.environ["FUSION_VAR_DIR"] = str(var_dir)
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ.pop("DATABASE_URL", None)  # a private SQLite database in var_dir
    os.environ.pop("FUSION_MEDIA_ROOT", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    var_dir.mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def make_study(slug: str, checkpoint: Checkpoint, protocol: dict, base_dir: Path) -> Study:
    from webapp.generation import services
    from webapp.studies.lifecycle import study_create

    # One checkpoint serves every variant here, so the variants get names that promise no
    # model config (a paper name such as concat-early must get a checkpoint that fits it).
    neutral = {name: f"model-{i}" for i, name in enumerate(protocol["variants"])}
    protocol = {**protocol, "variants": list(neutral.values()),
                "analysis": {**protocol["analysis"],
                             "comparisons": [[neutral[a], neutral[b]] for a, b in protocol["analysis"]["comparisons"]]}}
    study = study_create(protocol=protocol, slug=slug, base_dir=str(base_dir))
    for variant in study.variants.all():
        services.variant_assign_checkpoint(variant=variant, checkpoint=checkpoint)
    return study


def run_batch(study: Study, steps: int, worker_pid: int, worker_proc: subprocess.Popen) -> tuple[float, float, int]:
    """(wall seconds, worker CPU seconds, images) from launch to the batch's completion."""
    import psutil

    from webapp.generation import follow, services
    from webapp.generation.models import Batch

    def worker_alive() -> None:
        if worker_proc.poll() is not None:
            raise SystemExit(f"the worker exited with {worker_proc.returncode}")

    proc = psutil.Process(worker_pid)
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.perf_counter()
    batch = services.batch_launch(study=study, steps=steps)
    # The commands' polling loop; its reads are this process's, not the worker's CPU time.
    end = follow.batch_follow(batch=batch, on_progress=lambda p: None, check=worker_alive, interval=0.1)
    wall = time.perf_counter() - t0
    if end["status"] != Batch.Status.COMPLETE:
        raise SystemExit(f"batch {batch.pk} ended {end['status']}")
    return wall, sum(proc.cpu_times()[:2]) - cpu0, batch.total_images


def run_direct(sampler: Sampler, prompts: list[str], seeds: list[int], cfg_scale: float, steps: int
               ) -> tuple[float, float, int]:
    t0, c0 = time.perf_counter(), time.process_time()
    images = sampler.generate(prompts, seeds, cfg_scale=cfg_scale, steps=steps, batch_size=50)
    return time.perf_counter() - t0, time.process_time() - c0, len(images)


def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="batch-overhead-"))
    setup_django(tmp / "var", args.broker)
    import torch

    from generator.checkpoint import save_ema
    from generator.encoders import encoder_specs_for
    from generator.model import PRESETS, build_model
    from generator.sample import load_sampler
    from webapp.generation import celery_workers, selectors, services
    from webapp.studies.models import Prompt

    torch.set_num_threads(args.threads)
    cfg = PRESETS[args.preset]
    torch.manual_seed(0)
    ckpt_dir = tmp / "checkpoint"
    save_ema(ckpt_dir, build_model(cfg).state_dict(), cfg, *encoder_specs_for(cfg), step=0, name=args.preset)
    checkpoint = services.checkpoint_register(name=args.preset, path=ckpt_dir)
    protocol_path = ROOT / "fixtures" / "protocols" / "demo.json"
    protocol = json.loads(protocol_path.read_text())
    if args.steps is None:
        args.steps = protocol["sampling"]["steps"]
    warm_protocol = json.loads(protocol_path.read_text())
    warm_protocol["count_task"]["counts"] = [1]
    warm_protocol["count_task"]["images_per_prompt"] = 1
    warm_protocol["preference_task"]["captions"]["n"] = 1

    log = tmp / "worker.log"
    worker = celery_workers.worker_spawn(log_path=log, env={"FUSION_TORCH_THREADS": str(args.threads),
                                                        "FUSION_GENERATION_CHUNK": str(args.chunk)},
                                     pool="solo", name="bench")
    try:
        t0 = time.perf_counter()
        run_batch(make_study("warm-up", checkpoint, warm_protocol, protocol_path.parent), 1, worker.pid, worker)
        worker_warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        sampler = load_sampler(ckpt_dir)
        load_seconds = time.perf_counter() - t0
        sampler.generate(["warm-up"], [0], steps=1)
        rows: dict[str, list[tuple[float, float, int]]] = {"direct": [], "pipeline": []}
        for r in range(args.rounds):
            study = make_study(f"bench-{r}", checkpoint, protocol, protocol_path.parent)
            pairs = [pair for work in selectors.study_needed_work(study=study).values() for pair in work]
            texts = dict(Prompt.objects.filter(study=study).values_list("pk", "text"))
            rows["direct"].append(run_direct(sampler, [texts[p] for p, _ in pairs], [s for _, s in pairs],
                                             protocol["sampling"]["cfg_scale"], args.steps))
            rows["pipeline"].append(run_batch(study, args.steps, worker.pid, worker))
            print(f"round {r + 1}: direct {rows['direct'][-1][0]:.1f} s, pipeline {rows['pipeline'][-1][0]:.1f} s",
                  file=sys.stderr, flush=True)
    finally:
        celery_workers.worker_stop(worker)

    n = rows["direct"][0][2]
    best = {k: min(v, key=lambda row: row[0]) for k, v in rows.items()}
    med = {k: statistics.median(row[0] for row in v) for k, v in rows.items()}
    cpu = {k: min(row[1] for row in v) for k, v in rows.items()}
    overhead = 100 * (best["pipeline"][0] / best["direct"][0] - 1)
    overhead_median = 100 * (med["pipeline"] / med["direct"] - 1)
    overhead_cpu = 100 * (cpu["pipeline"] / cpu["direct"] - 1)
    lines = [
        f"batch_overhead  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  {machine()}",
        f"preset {args.preset} (untrained), {n} images (demo protocol: 4 variants x 40), {args.steps} steps, "
        f"CFG {protocol['sampling']['cfg_scale']}, {args.threads} torch thread(s), "
        f"broker {args.broker.split('//')[0]}//, "
        f"worker chunk {args.chunk}, {args.rounds} interleaved rounds",
        f"one-off costs, not in the table: worker start + first batch with model load {worker_warm:.1f} s; "
        f"load_sampler in-process {load_seconds:.1f} s",
        "",
        f"{'path':<10}{'best s':>9}{'img/s':>9}{'median s':>10}{'img/s':>9}{'CPU s':>9}",
    ]
    for k in ("direct", "pipeline"):
        lines.append(f"{k:<10}{best[k][0]:>9.2f}{n / best[k][0]:>9.2f}{med[k]:>10.2f}{n / med[k]:>9.2f}{cpu[k]:>9.2f}")
    lines += [
        "",
        f"pipeline overhead: {overhead:+.1f}% (best rounds), {overhead_median:+.1f}% (medians), "
        f"{overhead_cpu:+.1f}% (CPU seconds of the sampling process)",
        "rounds (wall s, CPU s): " + "; ".join(
            f"{k} " + ", ".join(f"{w:.1f}/{c:.1f}" for w, c, _ in v) for k, v in rows.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if args.save:
        out = save_result("batch_overhead", text + "\n\n", append=True)
        print(f"appended to {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="filesystem://")
    parser.add_argument("--preset", default="tiny-cross-early")
    parser.add_argument("--steps", type=int, help="default: the demo protocol's")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=10, help="FUSION_GENERATION_CHUNK of the worker (CPU default).")
    parser.add_argument("--save", action="store_true",
                        help="Append the table to bench/results/batch_overhead-DATE.txt.")
    main(parser.parse_args())
