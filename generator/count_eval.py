"""Counting accuracy of trained checkpoints, read by the shape-aware judge.

    python -m generator.count_eval --checkpoints fixtures/checkpoints --per-count 40 --json
    python -m generator.count_eval --runs runs/seeds --per-count 40 --json   # several training seeds

For every checkpoint, generates `per-count` images for every object kind and count 1..5
("three red circles"; colours cycle through the palette) and reads each with
generator.judge. Per variant:

    exact_match     share of images with the prompted number of objects (any shape, any colour)
    mean_abs_error  mean |objects - prompted count|
    shape_accuracy  share of the objects found that have the prompted shape (pooled over images)
    prompt_match    share of images that match the prompt: right count, every object the
                    prompted shape and colour
    n               images per training seed

Every variant and every training seed gets the same prompts and noise seeds.

Intervals (95%) come from evalstudy.nested. With two or more training seeds (the
clusters): each metric on each seed's images alone, and estimate +- t(seeds - 1) x their
standard deviation / sqrt(seeds), the estimate pooled over all images ("interval": "t over
clusters", with its "df"). Those per-seed values already carry each seed's image noise, so
nothing is resampled; with 3 seeds t(2) = 4.30 makes the interval wide, as three seeds
warrant. The seeds share prompts and noise seeds, so the interval is over training seeds
on this fixed prompt set. With one training seed there is no interval over seeds: the
interval is a percentile bootstrap of its images ("interval": "units only ...", "seeds":
1), which says nothing about seed-to-seed variation. The paired difference intermediate -
early, per conditioning, is the same on the per-seed differences (seed k is a run with the
same training seed and data order in both variants; the images share prompts and noise).

--runs ROOT reads ROOT/seed-<s>/<variant>/model.safetensors; --checkpoints ROOT treats
ROOT/<variant>/ as one training seed. --save DIR keeps each (seed, variant)'s per-image
judgements as DIR/seed-<s>/<variant>.json and --load DIR reads them back instead of
sampling, so the table can be recomputed without a model.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evalstudy.nested import ClusterIntervals, NestedDraw, cluster_intervals
from evalstudy.protocol import DEFAULT_N_BOOT, Sampling, load_protocol
from generator.checkpoint import WEIGHTS_FILE
from generator.judge import judge
from generator.synthetic import COLOURS, KINDS, MAX_SCENE_COUNT, MIN_SCENE_COUNT, Scene

if TYPE_CHECKING:
    from PIL import Image

METRICS = ("exact_match", "mean_abs_error", "shape_accuracy", "prompt_match")
# The demo study's sampling (fixtures/protocols/demo.json), so that the automatic judge
# reads the images as the study generates them: 25 DPM-Solver++ steps (the counts do not
# change beyond ~20 steps on the demo models, and the evaluation stays a few CPU-minutes
# per variant) and its guidance scale.
DEMO_PROTOCOL = Path(__file__).resolve().parents[1] / "fixtures" / "protocols" / "demo.json"


@functools.cache
def demo_sampling() -> Sampling:
    """The demo protocol's sampling settings (read, and validated, when first asked for)."""
    return load_protocol(DEMO_PROTOCOL).sampling


# The pairs compared: the paper's claim is that intermediate fusion counts better.
PAIRS = {"concat": ("concat-early", "concat-intermediate"), "cross": ("cross-early", "cross-intermediate")}


# ---------------------------------------------------------------------------
# Prompts and per-image judgements
# ---------------------------------------------------------------------------


def eval_prompts(per_count: int, seed: int = 0) -> tuple[list[Scene], list[int]]:
    """(scenes, seeds): per_count items for each kind and count; seeds shared across cells."""
    colours = tuple(COLOURS)
    scenes, seeds = [], []
    for kind in KINDS:
        for count in range(MIN_SCENE_COUNT, MAX_SCENE_COUNT + 1):
            for j in range(per_count):
                scenes.append(Scene(kind, colours[j % len(colours)], count))
                seeds.append(seed + j)
    return scenes, seeds


@dataclass(frozen=True)
class Judged:
    """Per-image judgements of one checkpoint on the evaluation prompts (arrays of n)."""

    target: np.ndarray  # prompted count
    count: np.ndarray  # objects found
    shape_ok: np.ndarray  # objects found with the prompted shape
    match: np.ndarray  # 1 if the image matches the prompt

    def to_json(self) -> dict:
        return {k: v.tolist() for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> Judged:
        return cls(**{k: np.asarray(d[k], dtype=np.int64) for k in ("target", "count", "shape_ok", "match")})


def judge_images(scenes: list[Scene], images: Iterable[Image.Image | np.ndarray]) -> Judged:
    """The judge's reading of `images`, each against the scene it was prompted with."""
    rows = []
    for scene, image in zip(scenes, images, strict=True):
        j = judge(image)
        rows.append((scene.count, j.count, j.shape_correct(scene.kind), int(j.matches(scene))))
    return Judged(*(np.asarray(col, dtype=np.int64) for col in zip(*rows, strict=True)))


def sample_and_judge(
    checkpoint: Path, per_count: int, steps: int, cfg_scale: float, batch_size: int, seed: int = 0
) -> Judged:
    """Generate the evaluation prompts with one checkpoint and judge every image."""
    from generator.sample import load_sampler  # torch: only when sampling

    sampler = load_sampler(checkpoint)
    scenes, seeds = eval_prompts(per_count, seed)
    images = sampler.generate([s.caption for s in scenes], seeds, cfg_scale, steps, batch_size)
    return judge_images(scenes, images)


# ---------------------------------------------------------------------------
# Metrics and their intervals (evalstudy.nested)
# ---------------------------------------------------------------------------


def metrics(runs: list[Judged], idx: list[np.ndarray] | None = None) -> dict[str, float]:
    """The four metrics pooled over runs (training seeds), on image indices idx[k] of run k."""
    pick = [r if idx is None else Judged(r.target[i], r.count[i], r.shape_ok[i], r.match[i]) for r, i in
            zip(runs, idx if idx is not None else [None] * len(runs), strict=True)]
    target = np.concatenate([r.target for r in pick])
    count = np.concatenate([r.count for r in pick])
    shape_ok = np.concatenate([r.shape_ok for r in pick])
    match = np.concatenate([r.match for r in pick])
    return {
        "exact_match": float(np.mean(count == target)),
        "mean_abs_error": float(np.mean(np.abs(count - target))),
        # No objects at all: no shape to judge; 0 rather than undefined, so a model that
        # draws nothing does not score well.
        "shape_accuracy": float(shape_ok.sum() / count.sum()) if count.sum() else 0.0,
        "prompt_match": float(np.mean(match)),
    }


def _values(runs: list[Judged], draw: NestedDraw) -> np.ndarray:
    """The metrics, in METRICS order, on the runs (seeds) and images a draw names."""
    values = metrics([runs[s] for s in draw.clusters], list(draw.units))
    return np.array([values[m] for m in METRICS])


def _intervals(runs: list[Judged], n_boot: int, seed: int) -> ClusterIntervals:
    return cluster_intervals(lambda d: _values(runs, d), len(runs), len(runs[0].target), n_boot=n_boot, seed=seed)


def intervals(runs: list[Judged], n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% interval of each metric over the training seeds (t, seeds - 1 df), or over the
    images of the one seed there is (bootstrap, `n_boot` draws); see evalstudy.nested."""
    found = _intervals(runs, n_boot, seed)
    return {m: (float(lo), float(hi)) for m, (lo, hi) in zip(METRICS, found.ci, strict=True)}


@dataclass(frozen=True)
class Estimate:
    """A metric's value and its 95% interval (low, high)."""

    estimate: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class VariantSummary:
    """One variant's row: each metric (METRICS order) pooled over its runs with its interval,
    rounded to 4 digits; ``n`` images per seed, ``seeds`` training seeds, and what the
    intervals are (``interval``: evalstudy.nested's method; ``df``: seeds - 1, or None)."""

    variant: str
    metrics: dict[str, Estimate]
    n: int
    seeds: int
    interval: str
    df: int | None

    def to_json(self) -> dict:
        """The --json line: {"variant", <metric>, <metric>_ci, ..., "n", "seeds", "interval", "df"}."""
        out: dict = {"variant": self.variant}
        for m, e in self.metrics.items():
            out[m] = e.estimate
            out[f"{m}_ci"] = list(e.ci)
        return {**out, "n": self.n, "seeds": self.seeds, "interval": self.interval, "df": self.df}


@dataclass(frozen=True)
class PairedDifference:
    """intermediate - early of each metric (METRICS order), over ``seeds`` paired seeds;
    ``difference`` names the pair ("<intermediate> - <early>")."""

    difference: str
    seeds: int
    metrics: dict[str, Estimate]

    def to_json(self) -> dict:
        """The --json line: {"difference", "seeds", <metric>: {"estimate", "ci"}, ...}."""
        return {"difference": self.difference, "seeds": self.seeds,
                **{m: {"estimate": e.estimate, "ci": list(e.ci)} for m, e in self.metrics.items()}}


def paired_difference(early: list[Judged], inter: list[Judged], n_boot: int = DEFAULT_N_BOOT, seed: int = 0
                      ) -> dict[str, Estimate]:
    """intermediate - early of each metric: estimate and 95% interval, the per-seed
    differences (seed k of both variants, the same images) as the clusters."""
    if len(early) != len(inter):
        raise ValueError(f"paired difference needs the same seeds: {len(early)} vs {len(inter)} runs")
    found = cluster_intervals(lambda d: _values(inter, d) - _values(early, d), len(early), len(early[0].target),
                              n_boot=n_boot, seed=seed)
    return {m: Estimate(float(est), (float(ci[0]), float(ci[1])))
            for m, est, ci in zip(METRICS, found.estimate, found.ci, strict=True)}


def summarise(runs: list[Judged], n_boot: int = DEFAULT_N_BOOT, *, variant: str = "") -> VariantSummary:
    """``variant``'s metrics pooled over the runs, with their intervals (see VariantSummary)."""
    point, found = metrics(runs), _intervals(runs, n_boot, 0)
    estimates = {m: Estimate(round(point[m], 4), (round(float(ci[0]), 4), round(float(ci[1]), 4)))
                 for m, ci in zip(METRICS, found.ci, strict=True)}
    return VariantSummary(variant=variant, metrics=estimates, n=len(runs[0].target), seeds=len(runs),
                          interval=found.method, df=found.df)


# ---------------------------------------------------------------------------
# Finding checkpoints, saving judgements
# ---------------------------------------------------------------------------


def find_checkpoints(root: Path) -> list[Path]:
    """Sub-folders of `root` holding a model.safetensors, sorted by name."""
    found = sorted(p.parent for p in root.glob(f"*/{WEIGHTS_FILE}"))
    if not found:
        raise SystemExit(f"no */{WEIGHTS_FILE} under {root}")
    return found


def checkpoint_label(path: Path) -> str:
    """A checkpoint's name in the table: its folder, or run-step for a run's snapshot file."""
    if path.is_dir():
        return path.name
    return f"{path.parent.parent.name}-{path.stem}" if path.parent.name == "snapshots" else path.stem


def find_runs(root: Path, step: int | None = None) -> dict[str, dict[str, Path]]:
    """{seed label: {variant: checkpoint}} from root/seed-<s>/<variant>/: the run's latest
    EMA weights, or with `step` its snapshots/step-<step>.safetensors (so that runs
    stopped at different steps are compared at the same one)."""
    seeds = sorted((p for p in root.iterdir() if re.fullmatch(r"seed-\d+", p.name)), key=lambda p: int(p.name[5:]))
    if not seeds:
        raise SystemExit(f"no seed-<s>/ folders under {root}")
    out: dict[str, dict[str, Path]] = {}
    for s in seeds:
        for run in find_checkpoints(s):
            ckpt = run if step is None else run / "snapshots" / f"step-{step:07d}.safetensors"
            if not ckpt.exists():
                raise SystemExit(f"{ckpt} is missing: is every run past step {step}?")
            out.setdefault(s.name, {})[run.name] = ckpt
    return out


def load_judged(root: Path) -> dict[str, dict[str, Judged]]:
    """{seed label: {variant: Judged}} saved by --save under root."""
    out: dict[str, dict[str, Judged]] = {}
    for f in sorted(root.glob("seed-*/*.json")):
        out.setdefault(f.parent.name, {})[f.stem] = Judged.from_json(json.loads(f.read_text()))
    if not out:
        raise SystemExit(f"no seed-*/<variant>.json under {root}")
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][5:])))


def judge_all(sources: dict[str, dict[str, Path]], per_count: int, steps: int, cfg_scale: float, batch_size: int,
              seed: int = 0, save: Path | None = None) -> dict[str, dict[str, Judged]]:
    """sample_and_judge every checkpoint of {seed label: {variant: checkpoint}}; with
    `save`, also write each one's judgements to save/<seed label>/<variant>.json, and
    read those already there instead of sampling again (an interrupted evaluation
    resumes; delete the folder to start over)."""
    judged: dict[str, dict[str, Judged]] = {}
    for seed_label, variants in sources.items():
        for v, ckpt in variants.items():
            out = save / seed_label / f"{v}.json" if save else None
            if out is not None and out.exists():
                j = Judged.from_json(json.loads(out.read_text()))
                if len(j.target) != len(KINDS) * (MAX_SCENE_COUNT - MIN_SCENE_COUNT + 1) * per_count:
                    raise SystemExit(f"{out} holds {len(j.target)} images, not --per-count {per_count}'s")
            else:
                j = sample_and_judge(ckpt, per_count, steps, cfg_scale, batch_size, seed)
                if out is not None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(j.to_json()) + "\n")
            judged.setdefault(seed_label, {})[v] = j
    return judged


def table(judged: dict[str, dict[str, Judged]], n_boot: int = DEFAULT_N_BOOT
          ) -> tuple[list[VariantSummary], list[PairedDifference]]:
    """(per-variant rows, paired differences) over all seeds that have every variant of a row."""
    variants = sorted({v for runs in judged.values() for v in runs})
    rows = [summarise([judged[s][v] for s in judged if v in judged[s]], n_boot, variant=v) for v in variants]
    diffs = []
    for early, inter in PAIRS.values():
        seeds = [s for s in judged if early in judged[s] and inter in judged[s]]
        if seeds:
            d = paired_difference([judged[s][early] for s in seeds], [judged[s][inter] for s in seeds], n_boot)
            diffs.append(PairedDifference(difference=f"{inter} - {early}", seeds=len(seeds), metrics=d))
    return rows, diffs


def metric_header() -> str:
    """The metrics' column titles, as `metric_cells` lays them out."""
    return "  ".join(f"{m:>22}" for m in METRICS)


def metric_cells(row: VariantSummary) -> str:
    """A row's metrics with their intervals, fixed-width, in METRICS order."""
    return "  ".join(f"{e.estimate:6.3f} [{e.ci[0]:5.3f}, {e.ci[1]:5.3f}]" for e in (row.metrics[m] for m in METRICS))


def format_table(rows: list[VariantSummary], diffs: list[PairedDifference]) -> str:
    """The rows and differences as a fixed-width text table."""
    lines = [f"{'variant':<22} {'seeds':>5} {'n':>5}  " + metric_header()]
    for r in rows:
        lines.append(f"{r.variant:<22} {r.seeds:>5} {r.n:>5}  {metric_cells(r)}")
    lines.append("")
    lines.append("paired difference, intermediate - early (95% interval: t over seeds, seeds - 1 df; "
                 "with one seed, over its images only)")
    for d in diffs:
        cells = "  ".join(f"{e.estimate:+6.3f} [{e.ci[0]:+.3f}, {e.ci[1]:+.3f}]"
                          for e in (d.metrics[m] for m in METRICS))
        lines.append(f"{d.difference:<42} seeds {d.seeds}  {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> tuple[list[VariantSummary], list[PairedDifference]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints", type=Path, help="folder of checkpoint folders (one training seed)")
    p.add_argument("--checkpoint", type=Path, action="append", default=[], help="one checkpoint (repeatable)")
    p.add_argument("--runs", type=Path, help="folder of seed-<s>/<variant>/ checkpoints")
    p.add_argument("--step", type=int, help="with --runs: evaluate each run's snapshot at this step")
    p.add_argument("--load", type=Path, help="read saved judgements (seed-<s>/<variant>.json) instead of sampling")
    p.add_argument("--save", type=Path, help="write each (seed, variant)'s judgements under this folder")
    p.add_argument("--per-count", type=int, default=40, help="images per (kind, count)")
    p.add_argument("--steps", type=int, default=demo_sampling().steps, help="default: the demo protocol's")
    p.add_argument("--cfg-scale", type=float, default=demo_sampling().cfg_scale, help="default: the demo protocol's")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT, help="bootstrap draws (one training seed: its images)")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true", help="one JSON line per variant, then one per difference")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    if args.load:
        judged = load_judged(args.load)
    else:
        if args.runs:
            sources = find_runs(args.runs, args.step)
        else:
            ckpts = list(args.checkpoint) + (find_checkpoints(args.checkpoints) if args.checkpoints else [])
            if not ckpts:
                p.error("give --checkpoints, --checkpoint, --runs or --load")
            sources = {"seed-0": {checkpoint_label(c): c for c in ckpts}}
        judged = judge_all(sources, args.per_count, args.steps, args.cfg_scale, args.batch_size, args.seed, args.save)
    rows, diffs = table(judged, args.n_boot)
    if args.json:
        for line in [r.to_json() for r in rows] + [d.to_json() for d in diffs]:
            print(json.dumps(line), flush=True)
    else:
        print(format_table(rows, diffs))
    return rows, diffs


if __name__ == "__main__":
    main()
