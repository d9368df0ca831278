"""Per-variant mean-abs-error intervals when rater biases are heavy-tailed (audit of 2026-12,
F1), and one cheap remedy tried on that statistic: a two-way studentized bootstrap (bootstrap-t).

The crowd is this file's, not evalstudy.simulate's: count answer = round(true count + rater
bias + unit effect + image effect + noise), at least 0; rater bias 0.4 N(0, 1) or 0.4 t(df);
40 prompt-and-seed units x 2 variants, every rater answering every image; the truth a
2-million-draw Monte Carlo of the same model. Each study is analysed by `analyze` (the
interval the results show, eq. 9) and, on the same answers, by the bootstrap-t: raters and
units resampled independently (a pigeonhole bootstrap), each resample's mean studentized by
its own two-way standard error sqrt(var(rater means) / n_raters + var(unit means) / n_units),
the interval mean - t*_{0.975} se ... mean - t*_{0.025} se.

Rows: the coverage of each interval (share of studies whose interval holds the truth) with
its binomial s.e., the misses below and above, the median width, and the share of studies
whose rater-influence diagnostic (`analysis.count.rater_influence_note`, `count.rater_note`) is shown.

    nice -n 10 .venv/bin/python bench/heavy_tails.py [--studies 200] [--n-boot 200] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header  # noqa: E402
from evalstudy.analysis import analyze  # noqa: E402
from evalstudy.responses import ResponseTable, table_from_columns  # noqa: E402

COUNTS = np.array([2, 3, 4, 5, 6])
VARIANTS = ("x-early", "x-intermediate")
SHIFT = (0.0, 0.25)
N_UNITS = 40
CROWDS = [("normal", 20), ("t5", 20), ("t3", 20), ("t2", 20), ("t3", 60)]


def biases(dist: str, n: int, rng: np.random.Generator) -> np.ndarray:
    return 0.4 * (rng.normal(size=n) if dist == "normal" else rng.standard_t(float(dist[1:]), size=n))


def answers(true: np.ndarray, bias: np.ndarray, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(np.rint(true + bias + image + rng.normal(0, 0.4, np.shape(image))), 0)


def truth(dist: str, rng: np.random.Generator, n: int = 2_000_000) -> np.ndarray:
    """Population mean abs error per variant."""
    c = rng.choice(COUNTS, n)
    b, unit = biases(dist, n, rng), rng.normal(0, 0.3, n)
    return np.array([np.abs(answers(c, b, unit + s + rng.normal(0, 0.3, n), rng) - c).mean() for s in SHIFT])


def draw_study(dist: str, n_raters: int, rng: np.random.Generator) -> tuple[ResponseTable, np.ndarray]:
    """The response table and the abs errors (variant, rater, unit)."""
    true = rng.choice(COUNTS, N_UNITS)
    image = (rng.normal(0, 0.3, N_UNITS)[:, None] + np.asarray(SHIFT)[None, :]
             + rng.normal(0, 0.3, (N_UNITS, len(VARIANTS))))          # (unit, variant)
    ans = answers(true[None, :, None], biases(dist, n_raters, rng)[:, None, None], image[None], rng)
    r, u, v = np.meshgrid(np.arange(n_raters), np.arange(N_UNITS), np.arange(len(VARIANTS)), indexing="ij")
    n = ans.size
    cols = {"task": np.full(n, "count"), "item_id": np.char.add("img-", (u * 2 + v).ravel().astype(str)),
            "evaluator_id": np.char.add("r", r.ravel().astype(str)), "variant": np.array(VARIANTS)[v.ravel()],
            "prompt": np.char.add("p", u.ravel().astype(str)), "object": np.full(n, "cat"),
            "true_count": true[u.ravel()].astype(float), "answer_count": ans.ravel(),
            "rank": np.full(n, np.nan), "skipped": np.zeros(n, dtype=bool), "skip_reason": np.full(n, ""),
            "position": np.full(n, np.nan), "seconds": np.full(n, 5.0), "is_gold": np.zeros(n, dtype=bool),
            "seed": u.ravel()}
    return table_from_columns(cols), np.abs(ans - true[None, :, None]).transpose(2, 0, 1)


def bootstrap_t(err: np.ndarray, n_boot: int, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Two-way studentized bootstrap interval of the mean of err (raters, units)."""
    n_r, n_u = err.shape

    def mean_se(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        se2 = e.mean(axis=-1).var(axis=-1, ddof=1) / n_r + e.mean(axis=-2).var(axis=-1, ddof=1) / n_u
        return e.mean(axis=(-2, -1)), np.sqrt(se2)

    m, se = mean_se(err)
    rows, units = rng.integers(0, n_r, (n_boot, n_r)), rng.integers(0, n_u, (n_boot, n_u))
    boot = err[rows[:, :, None], units[:, None, :]]                   # (B, raters, units)
    mb, seb = mean_se(boot)
    t = (mb - m) / np.where(seb > 0, seb, np.inf)
    lo_q, hi_q = np.quantile(t, [(1 - level) / 2, (1 + level) / 2])
    return m - hi_q * se, m - lo_q * se


def main(args: argparse.Namespace) -> str:
    started = time.time()
    lines = [*result_header("Mean-abs-error intervals with heavy-tailed rater biases (bench/heavy_tails.py)"),
             f"40 units x 2 variants, every rater answers every image; {args.studies} studies per crowd; "
             f"n_boot {args.n_boot} for both intervals",
             "",
             f"{'rater bias':<12}{'raters':>7}  {'interval':<13}{'cover':>7}{'s.e.':>7}{'miss lo/hi':>12}"
             f"{'width':>8}{'note':>7}{'n':>6}"]
    warnings.simplefilter("ignore")
    for index, (dist, n_raters) in enumerate(CROWDS):
        rng = np.random.default_rng([args.seed, index])
        tv = truth(dist, np.random.default_rng([args.seed, index, 1]))
        tally: dict[str, dict] = {k: {"hit": 0, "lo": 0, "hi": 0, "w": []}
                                  for k in ("eq. 9", "bootstrap-t", "eq. 9 noted", "eq. 9 quiet")}
        noted = 0
        for s in range(args.studies):
            table, err = draw_study(dist, n_raters, rng)
            result = analyze(table, n_boot=args.n_boot, seed=s)
            noted += bool(result.count.rater_note)
            split = "eq. 9 noted" if result.count.rater_note else "eq. 9 quiet"
            for row in result.count.by_variant:
                v = VARIANTS.index(row.variant)
                low, high = row.mean_abs_error_ci
                assert low is not None and high is not None  # 20 or more raters: never null
                eq9 = (low, high)
                for name, (lo, hi) in (("eq. 9", eq9), ("bootstrap-t", bootstrap_t(err[v], args.n_boot, rng)),
                                       (split, eq9)):
                    k = tally[name]
                    k["hit" if lo <= tv[v] <= hi else ("lo" if tv[v] < lo else "hi")] += 1
                    k["w"].append(hi - lo)
        for name, k in tally.items():
            n = max(len(k["w"]), 1)
            p = k["hit"] / n
            lines.append(f"{dist:<12}{n_raters:>7}  {name:<13}{p:>7.3f}{np.sqrt(p * (1 - p) / n):>7.3f}"
                         f"{k['lo']:>6}/{k['hi']:<5}{float(np.median(k['w'])):>8.3f}"
                         f"{noted / args.studies:>7.2f}{len(k['w']):>6}")
            print(lines[-1], flush=True)
    lines += ["", "cover: share of the 2 variants x studies whose interval holds the population mean abs "
              "error; s.e. binomial (the two variants of a study counted as independent, a little "
              "optimistic); miss lo/hi: truth below / above the interval; width: median; note: share of "
              "studies whose count table carries the rater-influence note; eq. 9 noted / quiet: the "
              "same intervals in the studies with and without the note; n: intervals in the row.",
              result_footer(started)]
    return emit_result("heavy_tails", "\n".join(lines), write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=200, help="studies per crowd")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
