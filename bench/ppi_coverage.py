"""Prediction-powered intervals in bench/coverage.py's crowds: coverage and width against the
human-only interval, with a judge that agrees well, one that is biased and one that is noise.

Studies are bench/coverage.py's (its crowd model and scenarios), and the same crowds looking at
generated images of which 20-35% per variant show one object more or fewer than asked (what a
diffusion model does; people and the judge both see it: the case where a judge can help);
every image also gets the judge's reading, and JUDGE_IMAGES_PER_CELL extra images per object x count x variant are read
by the judge only. Judges:

* good: reads an image as a careful rater of the same crowd would (skill 0.5, unbiased, the
  image's own difficulty), so it misses the hard images people miss;
* biased: the good judge, +1 on every image of count 4 or 5;
* noise: any count 1..6, whatever the image.

Truths are bench/coverage.py's population values (eq. 9 and eq. 10 per variant, and the
paired differences). Intervals: `evalstudy.analysis.ppi.ppi_section` (the analysis' own
code); the human-only row is the same interval with the judge's weight at 0.

    nice -n 10 .venv/bin/python bench/ppi_coverage.py [--studies 150] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import coverage as cv  # noqa: E402
from bench._common import emit_result, result_footer, result_header  # noqa: E402
from evalstudy.analysis.data import _CountData, _evaluator_codes  # noqa: E402
from evalstudy.analysis.ppi import _JudgeOnly, ppi_section  # noqa: E402
from evalstudy.analysis.result import PPIDifference, PPIStat  # noqa: E402
from evalstudy.responses import ResponseTable, table_from_columns  # noqa: E402

JUDGE_IMAGES_PER_CELL = 25
JUDGES = ("good", "biased", "noise")
# (coverage.py's crowd, whether the images themselves may show a wrong count)
SCENARIOS = (("heavy-tailed items, 24 raters", False), ("biased + noisy raters, 24 raters", False),
             ("all of these, 60 raters", False), ("biased + noisy raters, 24 raters", True),
             ("all of these, 60 raters", True))
# With generated images: the share of each variant's images that show one more or one fewer
# object than asked (the model's own miscount, which people and the judge both see).
OFF_BY_ONE = np.array([0.35, 0.25, 0.3, 0.2])
TRUTH_DRAWS = 1_000_000


def _judge_rater() -> dict[str, np.ndarray]:
    return {"skill": np.array([0.5]), "biased": np.array([False]),
            "object_affinity": np.ones((1, len(cv.OBJECTS)))}


def judge_reads(judge: str, shown: np.ndarray, asked: np.ndarray, variant: int, obj: int, difficulty: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """The judge's counts of images showing `shown` objects when `asked` were requested."""
    if judge == "noise":
        return rng.integers(1, 7, len(shown)).astype(float)
    read = cv._answers(shown, variant, obj, difficulty, _judge_rater(), np.zeros(len(shown), dtype=int), rng)
    read = np.where(np.isfinite(read), read, shown)  # the judge always gives a count
    return read + (judge == "biased") * (asked >= 4)


def shown_counts(asked: ArrayLike, variant: int, generated: bool, rng: np.random.Generator) -> np.ndarray:
    """What the images show: the count asked, or (generated images) one off at OFF_BY_ONE."""
    asked = np.asarray(asked)
    if not generated:
        return asked.copy()
    off = rng.random(asked.shape) < OFF_BY_ONE[variant]
    step = np.where(rng.random(asked.shape) < 0.5, 1, -1)
    return np.maximum(asked + off * step, 0)


def generated_truths(crowd: cv.Crowd, rng: np.random.Generator) -> dict[tuple, float]:
    """Population eq. 9 and eq. 10 per variant (and paired differences) when the images may
    show a wrong count, by Monte Carlo as bench/coverage.py's `truths`."""
    n = TRUTH_DRAWS
    raters = cv._raters(crowd, rng, n)
    r = np.arange(n)
    o = rng.integers(0, len(cv.OBJECTS), n)
    c = np.array(cv.COUNTS)[rng.integers(0, len(cv.COUNTS), n)]
    d = cv._difficulty(crowd, rng, n) * np.exp(rng.normal(0, 0.3, n))
    out: dict[tuple, float] = {}
    for v, name in enumerate(cv.VARIANTS):
        ans = cv._answers(shown_counts(c, v, True, rng), v, o, d, raters, r, rng)
        ok = np.isfinite(ans)
        out[("mean_abs_error", name)] = float(np.abs(ans - c)[ok].mean())
        out[("match_ratio", name)] = float((ans == c)[ok].mean())
    for a, b in cv.PAIRS:
        for key in ("mean_abs_error", "match_ratio"):
            out[(f"difference: {key}", (a, b))] = out[(key, a)] - out[(key, b)]
    return out


def draw_study(crowd: cv.Crowd, judge: str, rng: np.random.Generator, generated: bool = False
               ) -> tuple[ResponseTable, _JudgeOnly]:
    """The count task of a bench/coverage.py study (its design and crowd model), each image
    also read by the judge, and the judge-only images; `generated`: images may show a wrong
    count (`shown_counts`)."""
    raters = cv._raters(crowd, rng, crowd.n_raters)
    cols: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                                              "true_count", "answer_count", "rank", "skipped", "skip_reason",
                                              "position", "seconds", "is_gold", "seed", "auto_count")}
    judge_rows: list[tuple[int, int, float, float]] = []  # variant, unit, truth, reading
    units = [(o, c, s) for o in range(len(cv.OBJECTS)) for c in cv.COUNTS
             for s in range(cv.SEEDS_PER_PROMPT + JUDGE_IMAGES_PER_CELL)]
    for k, (o, c, s) in enumerate(units):
        difficulty = cv._difficulty(crowd, rng, 1)[0]  # shared by the variants' images: paired
        for v in range(len(cv.VARIANTS)):
            d = difficulty * np.exp(rng.normal(0, 0.3))  # this image's own difficulty
            shown = shown_counts(np.array([c]), v, generated, rng)
            auto = judge_reads(judge, shown, np.array([c]), v, o, np.array([d]), rng)[0]
            if s >= cv.SEEDS_PER_PROMPT:  # read by the judge only
                judge_rows.append((v, k, float(c), float(auto)))
                continue
            r = cv._pick_raters(crowd, raters["load"], 1, rng)[0]
            ans = cv._answers(np.full(len(r), shown[0]), v, o, np.full(len(r), d), raters, r, rng)
            for e, a in zip(r.tolist(), ans.tolist(), strict=True):
                for col, val in (("task", "count"), ("item_id", f"{cv.VARIANTS[v]}/{k}"), ("evaluator_id", f"r{e}"),
                                 ("variant", cv.VARIANTS[v]), ("prompt", f"{c} {cv.OBJECTS[o]}s"),
                                 ("object", cv.OBJECTS[o]), ("true_count", c), ("answer_count", a),
                                 ("rank", np.nan), ("skipped", False), ("skip_reason", ""), ("position", np.nan),
                                 ("seconds", 5.0), ("is_gold", False), ("seed", s), ("auto_count", auto)):
                    cols[col].append(val)
    table = table_from_columns({k: np.array(v) for k, v in cols.items()})
    variant, unit, truth, reading = (np.array(x) for x in zip(*judge_rows, strict=True))
    return table, _JudgeOnly(variant.astype(np.int64), np.unique(unit, return_inverse=True)[1], truth, reading)


def main(args: argparse.Namespace) -> str:
    started = time.time()
    lines = [
        *result_header("Prediction-powered intervals in bench/coverage.py's crowds (bench/ppi_coverage.py)"),
        f"studies per scenario and judge: {args.studies}; judge-only images: {JUDGE_IMAGES_PER_CELL} per object x "
        "count x variant; 95% intervals",
        "",
        f"{'scenario':<56}{'judge':<8}{'family':<26}{'n':>6}{'ppi cov':>9}{'human cov':>10}"
        f"{'ppi width':>10}{'human width':>12}{'width ratio':>12}",
    ]
    pairs = list(cv.PAIRS)
    for si, (crowd_name, generated) in enumerate(SCENARIOS):
        crowd = next(c for c in cv.SCENARIOS if c.name == crowd_name)
        name = crowd_name + (", images off by one" if generated else "")
        truth_rng = np.random.default_rng([args.seed, si, 99])
        truth = generated_truths(crowd, truth_rng) if generated else cv.truths(crowd, truth_rng)
        for ji, judge in enumerate(JUDGES):
            rng = np.random.default_rng([args.seed, si, ji])
            rec: dict[str, dict[str, list]] = {}
            for _ in range(args.studies):
                table, judge_only = draw_study(crowd, judge, rng, generated)
                ev_code, _ = _evaluator_codes(table)
                data = _CountData.build(table, ev_code, list(cv.VARIANTS), list(cv.OBJECTS))
                out = ppi_section(data, judge_only, pairs, 0.95)
                for r in out.by_variant:
                    _tally(rec, r.measure, truth[(r.measure, r.variant)], r)
                for d in out.differences:
                    fam = f"difference: {d.measure}"
                    _tally(rec, fam, truth[(fam, (d.a, d.b))], d)
            for fam, x in rec.items():
                cov, hcov = np.mean(x["hit"]), np.mean(x["human_hit"])
                w, hw = np.mean(x["width"]), np.mean(x["human_width"])
                lines.append(f"{name:<56}{judge:<8}{fam:<26}{len(x['hit']):>6}{cov:>9.3f}{hcov:>10.3f}"
                             f"{w:>10.3f}{hw:>12.3f}{w / hw:>12.2f}")
                print(lines[-1], flush=True)
    lines += ["", "ppi cov / human cov: coverage of the prediction-powered and of the human-only interval "
              "(the same construction with the judge's weight at 0); widths are means; width ratio = ppi / human.",
              result_footer(started)]
    text = "\n".join(lines)
    return emit_result("ppi_coverage", text, write=args.write)


def _tally(rec: dict[str, dict[str, list]], family: str, target: float, r: PPIStat | PPIDifference) -> None:
    x = rec.setdefault(family, {"hit": [], "human_hit": [], "width": [], "human_width": []})
    for key, (lo, hi) in (("", r.ci), ("human_", r.human_ci)):
        # An interval has both ends or neither (result.Interval); a NaN end counts as none.
        ok = lo is not None and hi is not None and np.isfinite(lo) and lo <= target <= hi
        x[f"{key}hit"].append(ok)
        if lo is not None and hi is not None and np.isfinite(lo):
            x[f"{key}width"].append(hi - lo)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
