"""Retrain the four demo checkpoints shipped under fixtures/checkpoints/, and replicate
them over training seeds.

    python -m generator.train_demo                      # ~1 hour on two CPU cores
    python -m generator.train_demo --parallel 4 --threads 2
    nice -n 19 python -m generator.train_demo --seeds 1234 1 2 --out runs/seeds --parallel 12 --no-export

Trains demo-{concat,cross}-{early,intermediate} on the synthetic counting data with the
demo recipe (generator.recipes.DEMO), `--parallel` runs at a time, each a separate
`python -m generator.train` process. With one seed, runs go to OUT/<variant>; with
--seeds, to OUT/seed-<s>/<variant> (the layout `python -m generator.count_eval --runs`
reads). Then, unless --no-export, exports the first seed's EMA weights in float16
(sampling only, no optimizer state) to FIXTURES/<variant>/model.safetensors with its
loss log, and writes FIXTURES/training.json (command, steps, wall time per variant).
Runs resume if interrupted: rerun the same command (the learning rate is constant after
warm-up, so a run stopped at step s and resumed is the run that was asked for).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from generator.checkpoint import WEIGHTS_FILE, load_ema, save_ema
from generator.recipes import DEMO, DEMO_VARIANTS


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_folder(out: Path, seed: int, variant: str, several_seeds: bool) -> Path:
    """Where one (seed, variant) trains: OUT/seed-<s>/<variant>, or OUT/<variant> for one seed."""
    return out / f"seed-{seed}" / variant if several_seeds else out / variant


def train_command(variant: str, run: Path, seed: int, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "generator.train", "--preset", f"demo-{variant}", "--out", str(run),
        "--steps", str(args.steps), "--seed", str(seed), "--threads", str(args.threads),
        "--ckpt-every", "250", "--keep-every", "500", "--sample-every", "500", "--no-progress",
    ] + ([] if args.cooldown is None else ["--cooldown", str(args.cooldown)])


def run_all(commands: dict[str, list[str]], parallel: int, logs: Path) -> dict[str, float]:
    """Run the commands, `parallel` at a time; {name: wall seconds}. Fails on any failure.
    Each command's output goes to logs/<name>.out ('/' in a name becomes '-')."""
    pending = list(commands.items())
    running: dict[str, tuple] = {}
    wall: dict[str, float] = {}
    while pending or running:
        while pending and len(running) < parallel:
            variant, cmd = pending.pop(0)
            log = open(logs / f"{variant.replace('/', '-')}.out", "w")
            running[variant] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, time.time())
        time.sleep(2)
        for variant, (proc, log, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[variant]
            if proc.returncode != 0:
                for other, _, _ in running.values():
                    other.terminate()
                raise SystemExit(f"training {variant} failed ({proc.returncode}); see {logs}")
            wall[variant] = round(time.time() - t0, 1)
    return wall


def training_seconds(log: Path) -> float:
    """Wall seconds of training in a run's log.jsonl, summed over resumed segments
    (each segment's elapsed_s restarts from zero)."""
    total, last = 0.0, 0.0
    for line in log.read_text().splitlines():
        elapsed = json.loads(line)["elapsed_s"]
        if elapsed < last:
            total += last
        last = elapsed
    return round(total + last, 1)


def export(run: Path, dest: Path) -> Path:
    """Copy a run's EMA weights (float16) and loss log into a fixture folder."""
    state, meta = load_ema(run)
    dest.mkdir(parents=True, exist_ok=True)
    file = save_ema(
        dest / WEIGHTS_FILE, state, meta.config, meta.codec, meta.text_encoder,
        meta.step, meta.name, dtype=torch.float16, prediction_type=meta.prediction_type,
    )
    shutil.copyfile(run / "log.jsonl", dest / "log.jsonl")
    return file


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="training run folders")
    p.add_argument("--fixtures", type=Path, default=Path("fixtures/checkpoints"))
    p.add_argument("--steps", type=int, default=DEMO.steps)
    p.add_argument("--cooldown", type=int, help="learning-rate decay steps (default: the recipe's share of --steps; "
                   "0 for the constant rate of the 10,000-step replication)")
    p.add_argument("--seed", type=int, default=1234, help="the training seed (ignored with --seeds)")
    p.add_argument("--seeds", type=int, nargs="+", help="several training seeds: OUT/seed-<s>/<variant>")
    p.add_argument("--no-export", action="store_true", help="train only; leave FIXTURES alone")
    p.add_argument("--parallel", type=int, default=2, help="trainings at a time")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training")
    p.add_argument("--variants", nargs="+", default=list(DEMO_VARIANTS), choices=DEMO_VARIANTS)
    args = p.parse_args(argv)

    seeds = args.seeds or [args.seed]
    several = args.seeds is not None
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {(s, v): run_folder(args.out, s, v, several) for s in seeds for v in args.variants}
    commands = {f"seed-{s}/{v}" if several else v: train_command(v, run, s, args) for (s, v), run in runs.items()}
    wall = run_all(commands, args.parallel, args.out)
    if args.no_export:
        return
    seed = seeds[0]
    record = {
        "command": " ".join(["python -m generator.train_demo", *(argv if argv is not None else sys.argv[1:])]),
        "recipe": {**DEMO.__dict__, "steps": args.steps,
                   "cooldown": DEMO.cooldown_for(args.steps) if args.cooldown is None else args.cooldown},
        "seed": seed,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores (shared), torch {torch.__version__}",
        "parallel": args.parallel,
        "threads": args.threads,
        "variants": {},
    }
    for v in args.variants:
        run, name = runs[(seed, v)], f"seed-{seed}/{v}" if several else v
        file = export(run, args.fixtures / v)
        train_s = training_seconds(run / "log.jsonl")
        record["variants"][v] = {
            "train_command": " ".join(commands[name][1:]),
            "train_s": train_s,  # all segments, if the run was resumed
            "wall_s_this_call": wall[name],
            "bytes": file.stat().st_size,
        }
        print(f"{v}: {file} ({file.stat().st_size / 1e6:.1f} MB, {train_s / 60:.1f} min of training)")
    (args.fixtures / "training.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
