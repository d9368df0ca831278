"""The training-seed replication table: the four demo variants, several seeds each,
read by the shape-aware judge, with intervals over seeds and images.

    python -m bench.replication --runs runs/seeds --step 2000 --save fixtures/replication
    python -m bench.replication --load fixtures/replication       # the table again, no sampling

With --runs, samples every ROOT/seed-<s>/<variant> run at its snapshot of --step (the
same step for every run), judges the images (generator.count_eval), and with --save
keeps under SAVE: judged/seed-<s>/<variant>.json (per-image judgements), logs/seed-<s>/
<variant>.jsonl (the run's training log) and recipe.json (recipe, model configs, step,
seeds). Either way it writes the table, with the date, machine, load average and
command, to bench/results/replication-<date>.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import cpu_and_usable_cores, load_average, save_result
from evalstudy.protocol import DEFAULT_N_BOOT
from generator import count_eval
from generator.recipes import DEMO, DEMO_PRESETS


def save_provenance(runs: dict[str, dict[str, Path]], save: Path, step: int | None,
                    sampling: dict | None = None) -> None:
    """Copy each run's training log and write the recipe the runs share, and the sampling
    (guidance scale, solver steps) the judgements were made with."""
    for seed_label, variants in runs.items():
        for variant, ckpt in variants.items():
            run = ckpt.parent.parent if ckpt.is_file() else ckpt
            dest = save / "logs" / seed_label / f"{variant}.jsonl"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run / "log.jsonl", dest)
    recipe = {
        "recipe": dataclasses.asdict(DEMO),
        "models": {k: v.to_dict() for k, v in DEMO_PRESETS.items()},
        "evaluated_step": step,
        "sampling": sampling,
        "seeds": sorted(int(s[5:]) for s in runs),
        "train_command": "nice -n 19 python -m generator.train_demo --seeds "
                         + " ".join(s[5:] for s in runs) + " --out RUNS --threads 1 --no-export",
        "note": "--parallel (trainings at a time) does not change a run; each run is one process, 1 thread",
    }
    (save / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")


def per_seed_table(judged: dict[str, dict]) -> str:
    """Each metric per variant and training seed, and each seed's paired difference
    intermediate - early: the run-to-run spread that the t intervals over seeds summarise."""
    seeds = list(judged)
    variants = sorted({v for runs in judged.values() for v in runs})
    values = {s: {v: count_eval.metrics([j]) for v, j in runs.items()} for s, runs in judged.items()}
    lines = [f"{'per training seed':<44}" + "".join(f"{s:>12}" for s in seeds)]
    for metric in count_eval.METRICS:
        for v in variants:
            cells = "".join(f"{values[s][v][metric]:>12.3f}" if v in values[s] else f"{'-':>12}" for s in seeds)
            lines.append(f"{metric + '  ' + v:<44}{cells}")
        for early, inter in count_eval.PAIRS.values():
            cells = "".join(f"{values[s][inter][metric] - values[s][early][metric]:>+12.3f}"
                            if early in values[s] and inter in values[s] else f"{'-':>12}" for s in seeds)
            lines.append(f"{metric + '  ' + inter + ' - early':<44}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, help="folder of seed-<s>/<variant>/ training runs")
    p.add_argument("--step", type=int, help="the snapshot step to evaluate in every run (default: latest weights)")
    p.add_argument("--load", type=Path, help="a folder written by --save: recompute the table from it")
    p.add_argument("--save", type=Path, help="keep judgements, training logs and the recipe here")
    p.add_argument("--per-count", type=int, default=40)
    p.add_argument("--steps", type=int, default=count_eval.demo_sampling().steps,
                   help="sampler steps (default: the demo protocol's)")
    p.add_argument("--cfg-scale", type=float, default=count_eval.demo_sampling().cfg_scale,
                   help="default: the demo protocol's")
    p.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT)
    p.add_argument("--threads", type=int)
    p.add_argument("--append", action="store_true", help="add to today's results file instead of replacing it")
    args = p.parse_args(argv)
    if not (args.runs or args.load):
        p.error("give --runs or --load")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load_start = load_average()
    started = dt.datetime.now(dt.UTC)
    if args.load:
        judged = count_eval.load_judged(args.load / "judged")
        recipe_file = args.load / "recipe.json"
        step = json.loads(recipe_file.read_text())["evaluated_step"] if recipe_file.exists() else None
    else:
        runs = count_eval.find_runs(args.runs, args.step)
        judged = count_eval.judge_all(runs, args.per_count, args.steps, args.cfg_scale, 100,
                                      save=args.save / "judged" if args.save else None)
        if args.save:
            save_provenance(runs, args.save, args.step, {"cfg_scale": args.cfg_scale, "steps": args.steps})
        step = args.step
    rows, diffs = count_eval.table(judged, args.n_boot)
    seeds = list(judged)  # in the order of their seed numbers (find_runs, load_judged)
    header = [
        f"# replication  {started:%Y-%m-%dT%H:%M} UTC  {cpu_and_usable_cores()}",
        f"# command: python -m bench.replication {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"# load average {load_start:.2f} -> {load_average():.2f}",
        (f"# recipe and sampling as recorded in {args.load / 'recipe.json'}" if args.load else
         f"# demo recipe (generator/recipes.py DEMO); sampled with {args.steps} solver steps at CFG scale "
         f"{args.cfg_scale}") + f"; training seeds {', '.join(s[5:] for s in seeds)}; "
        f"evaluated at training step {step if step is not None else 'latest'}",
        "# judge: generator/judge.py; 95% intervals: t over the training seeds (seeds - 1 df; one seed: "
        f"its images bootstrapped, {args.n_boot} draws; see evalstudy/nested.py)",
    ]
    text = "\n".join(header) + "\n" + count_eval.format_table(rows, diffs) + "\n\n" + per_seed_table(judged) + "\n"
    lines = [r.to_json() for r in rows] + [d.to_json() for d in diffs]
    text += "\n" + "\n".join(json.dumps(line) for line in lines) + "\n"
    print(text)
    return save_result("replication", text, append=args.append)


if __name__ == "__main__":
    main()
