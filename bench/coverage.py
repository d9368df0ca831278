"""Do the 95% intervals of `analyze` cover the truth 95% of the time, in crowds unlike ours?

Studies are drawn from this file's own crowd model, not from evalstudy.simulate (the
model the statistics were built with), under scenarios a real crowd may bring:

* heavy-tailed item difficulty: a Pareto-distributed difficulty per image (rare images
  that almost everyone miscounts), and heavy-tailed (t, 3 df) caption effects;
* biased raters: a share who always count one too many;
* noisy raters: a share who miscount three times as often and rank with three times
  the noise;
* uneven loads: a rater's share of the items drawn log-uniformly, so loads run from 2
  to hundreds;
* item x rater interaction: a rater's accuracy varies by object, and their taste by
  caption;
with 5 raters (who answer every item), 8 and 24 raters; and all of them at once with 60
raters, the size of a study run on a crowd platform. Rankings of 2 (pairwise A/B), 3 and
6 images with ties allowed: raters see utilities only to within a margin (a grid at a
random offset per judgment; images in one cell are tied, competition ranks), rank task
only, every kind of trouble at once.

Truths are population values of the same model, by Monte Carlo over fresh items and
raters (a million draws each): eq. 9's mean error and eq. 10's match ratio as ratios of
expectations over the images given a count, the preference score (mid-ranks with ties),
the Plackett-Luce fit to the population's orderings (or, with ties, Davidson's fit to the
population's pairs), every pair's win rate (ties left out) and tie rate, and the paired
differences.

    nice -n 10 .venv/bin/python bench/coverage.py [--studies 300] [--n-boot 500] [--write]

Prints, per scenario and interval family, the coverage with its binomial standard error
(rows within one family are correlated, so the true error is somewhat larger) and the
mean width; --write saves the table under bench/results/coverage-<date>.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import cpu_and_usable_cores, emit_result, load_average, result_footer  # noqa: E402
from evalstudy import rank_models  # noqa: E402
from evalstudy.analysis import AnalysisResult, analyze  # noqa: E402
from evalstudy.design import williams_square  # noqa: E402
from evalstudy.responses import ResponseTable, table_from_columns  # noqa: E402

VARIANTS = ("concat-early", "concat-intermediate", "cross-early", "cross-intermediate")
ACCURACY = np.array([1.0, 0.8, 0.9, 0.7])   # difficulty multiplier per variant (lower: better)
QUALITY = np.array([0.0, 0.35, 0.15, 0.5])  # rank utility per variant
OBJECTS = ("circle", "square", "triangle", "star")
COUNTS = (1, 2, 3, 4, 5)
SEEDS_PER_PROMPT = 5
CAPTIONS = 40
PAIRS = (("concat-intermediate", "concat-early"), ("cross-intermediate", "cross-early"))
TRUTH_DRAWS = 1_000_000


@dataclass(frozen=True)
class Crowd:
    name: str
    n_raters: int
    overlap: int                 # raters per item (every rater when equal to n_raters)
    heavy_items: bool = False
    biased: float = 0.0          # share of raters who always count one too many
    noisy: float = 0.0           # share of raters three times as noisy
    uneven_loads: bool = False
    interaction: bool = False
    n_variants: int = len(VARIANTS)  # images per ranking: 2 is pairwise A/B
    tie_margin: float = 0.0          # raters tie images whose utilities share a grid cell
    count_task: bool = True


SCENARIOS = [
    replace(c, name=f"{c.name}, {n} raters", n_raters=n, overlap=min(n, 3) if n > 5 else n)
    for n in (5, 8, 24)
    for c in (Crowd("heavy-tailed items", 0, 0, heavy_items=True),
              Crowd("biased + noisy raters", 0, 0, biased=0.2, noisy=0.2),
              Crowd("uneven loads", 0, 0, uneven_loads=True),
              Crowd("item x rater interaction", 0, 0, interaction=True),
              Crowd("all of these", 0, 0, heavy_items=True, biased=0.2, noisy=0.2,
                    uneven_loads=True, interaction=True))
] + [
    # A study of the size a crowd platform brings (Prolific: dozens of raters, 3 per item),
    # every kind of trouble at once. Appended, so the scenarios above keep their seeds.
    Crowd("all of these, 60 raters", 60, 3, heavy_items=True, biased=0.2, noisy=0.2,
          uneven_loads=True, interaction=True),
] + [
    # Rankings of other widths, ties allowed (rank task only). Appended, as above.
    Crowd(f"{m} variants with ties, {n} raters", n, 3, heavy_items=True, biased=0.2, noisy=0.2,
          uneven_loads=True, interaction=True, n_variants=m, tie_margin=0.5, count_task=False)
    for m in (2, 3, 6) for n in (8, 24)
]


def _design(crowd: Crowd) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Variant names, count difficulty multipliers and rank utilities for the crowd's width."""
    m = crowd.n_variants
    if m == len(VARIANTS):
        return VARIANTS, ACCURACY, QUALITY
    return tuple(f"model-{k + 1}" for k in range(m)), np.linspace(1.0, 0.7, m), np.linspace(0.0, 0.5, m)


def _ranks(u: np.ndarray, tie_margin: float, rng: np.random.Generator) -> np.ndarray:
    """(n, m) ranks, 1 = best, of utilities u; with a margin, competition ranks of the
    cells of a grid at a random offset per row (images in one cell tied)."""
    if tie_margin > 0:
        cell = np.floor((u + rng.random((u.shape[0], 1)) * tie_margin) / tie_margin)
        return (1 + (cell[:, None, :] > cell[:, :, None]).sum(axis=2)).astype(float)
    ranks = np.empty_like(u)
    np.put_along_axis(ranks, np.argsort(-u, axis=1), np.arange(1, u.shape[1] + 1)[None, :], 1)
    return ranks


# ---------------------------------------------------------------------------
# The crowd model
# ---------------------------------------------------------------------------

def _difficulty(crowd: Crowd, rng: np.random.Generator, n: int) -> np.ndarray:
    if crowd.heavy_items:
        return 0.25 * (rng.pareto(1.5, n) + 1.0)  # mean 0.75, rare images near 10+
    return rng.gamma(4.0, 0.1, n)


def _raters(crowd: Crowd, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    kind = rng.random(n)
    noisy = kind < crowd.noisy
    biased = (kind >= crowd.noisy) & (kind < crowd.noisy + crowd.biased)
    return {"skill": np.exp(rng.normal(0.0, 0.4, n)) * np.where(noisy, 3.0, 1.0),
            "biased": biased,
            "rank_noise": np.where(noisy, 1.5, 0.5),
            "taste": rng.normal(0.0, 0.3, (n, crowd.n_variants)),
            "object_affinity": (np.exp(rng.normal(0.0, 0.6, (n, len(OBJECTS))))
                                if crowd.interaction else np.ones((n, len(OBJECTS)))),
            "load": (np.exp(rng.uniform(0.0, np.log(150.0), n)) if crowd.uneven_loads
                     else np.ones(n))}


def _answers(true: int | np.ndarray, variant: int | np.ndarray, obj: int | np.ndarray, difficulty: np.ndarray,
             raters: dict[str, np.ndarray], r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Answers (NaN: can't tell) of raters r to images (arrays of equal length)."""
    rate = difficulty * ACCURACY[variant] * raters["skill"][r] * raters["object_affinity"][r, obj]
    wrong = rng.random(len(r)) < 1.0 - np.exp(-rate)
    size = 1 + (rng.random(len(r)) < np.minimum(0.5, 0.2 * difficulty))  # hard images: off by 2
    sign = np.where(rng.random(len(r)) < 0.6, 1, -1)
    ans = np.maximum(true + np.where(wrong, sign * size, 0) + raters["biased"][r], 0).astype(float)
    cant = rng.random(len(r)) < 0.03 + 0.1 * np.minimum(difficulty, 2.0)
    return np.where(cant, np.nan, ans)


def _utilities(caption_effect: np.ndarray, raters: dict[str, np.ndarray], r: np.ndarray, interaction: bool,
               rng: np.random.Generator, quality: np.ndarray = QUALITY) -> np.ndarray:
    """(n, m) rank utilities of raters r for captions with effects caption_effect (n, m)."""
    u = quality + caption_effect + raters["taste"][r]
    if interaction:
        u = u + rng.normal(0.0, 0.3, u.shape)  # this rater's taste for this caption
    return u + rng.normal(0.0, 1.0, u.shape) * raters["rank_noise"][r][:, None]


def _caption_effects(crowd: Crowd, rng: np.random.Generator, n: int) -> np.ndarray:
    shape = (n, crowd.n_variants)
    return 0.3 * (rng.standard_t(3, shape) if crowd.heavy_items else rng.normal(size=shape))


def _pick_raters(crowd: Crowd, load: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """(n_items, overlap) distinct raters per item, drawn in proportion to their loads."""
    if crowd.overlap >= crowd.n_raters:
        return np.tile(np.arange(crowd.n_raters), (n_items, 1))
    keys = rng.random((n_items, crowd.n_raters)) ** (1.0 / load)  # weighted sampling
    return np.argsort(-keys, axis=1)[:, :crowd.overlap]


def draw_study(crowd: Crowd, rng: np.random.Generator) -> ResponseTable:
    raters = _raters(crowd, rng, crowd.n_raters)
    rows: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant",
                                             "prompt", "object", "true_count", "answer_count",
                                             "rank", "skipped", "skip_reason", "position",
                                             "seconds", "is_gold", "seed")}

    def add(**cols: Any) -> None:  # Any: a column's value, one of several kinds (str, number, list, array)
        n = len(cols["evaluator_id"])
        for c in rows:
            v = cols.get(c, "" if c in ("skip_reason",) else np.nan)
            rows[c].extend(np.broadcast_to(np.asarray(v, dtype=object), (n,)).tolist())

    variants, _accuracy, quality = _design(crowd)
    m = len(variants)
    units = [(o, c, s) for o in range(len(OBJECTS)) for c in COUNTS for s in range(SEEDS_PER_PROMPT)]
    for o, c, s in units if crowd.count_task else []:
        difficulty = _difficulty(crowd, rng, 1)[0]  # shared by the variants' images: paired
        for v in range(len(VARIANTS)):
            r = _pick_raters(crowd, raters["load"], 1, rng)[0]
            ans = _answers(c, v, o, np.full(len(r), difficulty * np.exp(rng.normal(0, 0.3))),
                           raters, r, rng)
            add(task="count", item_id=f"{VARIANTS[v]}/{OBJECTS[o]}/{c}/{s}",
                evaluator_id=[f"r{k}" for k in r], variant=VARIANTS[v],
                prompt=f"{c} {OBJECTS[o]}s", object=OBJECTS[o], true_count=c, answer_count=ans,
                skipped=False, seconds=5.0, is_gold=False, seed=s)
    rows_w = williams_square(m)
    effects = _caption_effects(crowd, rng, CAPTIONS)
    picks = _pick_raters(crowd, raters["load"], CAPTIONS, rng)
    for j in range(CAPTIONS):
        r = picks[j]
        u = _utilities(np.tile(effects[j], (len(r), 1)), raters, r, crowd.interaction, rng, quality)
        ranks = _ranks(u, crowd.tie_margin, rng)
        skipped = rng.random(len(r)) < 0.05
        for k, e in enumerate(r):
            layout = rows_w[(j + k) % len(rows_w)]
            pos = np.empty(m, dtype=int)
            pos[np.array(layout)] = np.arange(m)
            add(task="rank", item_id=f"caption-{j}", evaluator_id=[f"r{e}"] * m,
                variant=list(variants), prompt=f"caption {j}", object="",
                rank=np.where(skipped[k], np.nan, ranks[k]), skipped=bool(skipped[k]),
                skip_reason="cannot decide" if skipped[k] else "", position=pos, seconds=12.0,
                is_gold=False, seed=0)
    for col in ("skipped", "is_gold"):
        rows[col] = [bool(x) for x in rows[col]]
    return table_from_columns({k: np.array(v) for k, v in rows.items()},
                              allow_ties=crowd.tie_margin > 0)


def truths(crowd: Crowd, rng: np.random.Generator) -> dict[tuple, float]:
    """(family, key) -> population value, by Monte Carlo over fresh images and raters."""
    n = TRUTH_DRAWS
    out: dict[tuple, float] = {}
    raters = _raters(crowd, rng, n)
    # Uneven loads weight raters by load; the population value weights them alike only if
    # load and traits are independent, which they are here.
    r = np.arange(n)
    o = rng.integers(0, len(OBJECTS), n)
    c = np.array(COUNTS)[rng.integers(0, len(COUNTS), n)]
    d = _difficulty(crowd, rng, n) * np.exp(rng.normal(0, 0.3, n))
    per_variant = {}
    if not crowd.count_task:
        return _rank_truths(crowd, rng, raters, r, n)
    for v, name in enumerate(VARIANTS):
        ans = _answers(c, v, o, d, raters, r, rng)
        ok = np.isfinite(ans)
        err, match = np.abs(ans - c), ans == c
        per_variant[name] = (err, match, ok)
        out[("mean_abs_error", name)] = float(err[ok].mean())
        out[("match_ratio", name)] = float(match[ok].mean())
        for oi, obj in enumerate(OBJECTS):
            sel = ok & (o == oi)
            out[("mean_abs_error per object", (name, obj))] = float(err[sel].mean())
            for cc in COUNTS:
                cell = sel & (c == cc)
                out[("mean_abs_error per cell", (name, obj, cc))] = float(err[cell].mean())
                out[("match_ratio per cell", (name, obj, cc))] = float(match[cell].mean())
    for a, b in PAIRS:
        for key in ("mean_abs_error", "match_ratio"):
            out[(f"difference: {key}", (a, b))] = out[(key, a)] - out[(key, b)]
    u = _utilities(_caption_effects(crowd, rng, n), raters, r, crowd.interaction, rng)
    order = np.argsort(-u, axis=1)
    score = len(VARIANTS) - np.argsort(order, axis=1)  # rank 1 scores m
    for v, name in enumerate(VARIANTS):
        out[("score", name)] = float(score[:, v].mean())
    for a, b in PAIRS:
        out[("difference: score", (a, b))] = out[("score", a)] - out[("score", b)]
    orderings = rank_models.all_orderings(len(VARIANTS))
    code = {tuple(x): k for k, x in enumerate(orderings.tolist())}
    counts = np.bincount([code[tuple(x)] for x in order.tolist()], minlength=len(orderings))
    gamma = rank_models.plackett_luce_mm(counts[None, :].astype(float), orderings)[0]
    for name, g in zip(VARIANTS, gamma, strict=True):
        out[("pl_strength", name)] = float(g)
    return out


def _rank_truths(crowd: Crowd, rng: np.random.Generator, raters: dict[str, np.ndarray], r: np.ndarray,
                 n: int) -> dict[tuple, float]:
    """The rank task's population values for a crowd of any width, with ties."""
    variants, _accuracy, quality = _design(crowd)
    m = len(variants)
    u = _utilities(_caption_effects(crowd, rng, n), raters, r, crowd.interaction, rng, quality)
    ranks = _ranks(u, crowd.tie_margin, rng)
    mids = np.empty_like(ranks)
    for k in range(m):  # mid-rank: 1 + #{better} + (#{tied others}) / 2
        mids[:, k] = 1 + (ranks < ranks[:, [k]]).sum(axis=1) + ((ranks == ranks[:, [k]]).sum(axis=1) - 1) / 2
    out: dict[tuple, float] = {}
    for k, name in enumerate(variants):
        out[("score", name)] = float((m + 1 - mids[:, k]).mean())
    win = np.zeros((m, m))
    tie = np.zeros((m, m))
    for a in range(m):
        for b in range(m):
            if a != b:
                win[a, b] = float((ranks[:, a] < ranks[:, b]).sum())
                tie[a, b] = float((ranks[:, a] == ranks[:, b]).sum())
    for a in range(m):
        for b in range(a + 1, m):
            key = (variants[a], variants[b])
            out[("win_rate", key)] = win[a, b] / (win[a, b] + win[b, a])
            out[("tie_rate", key)] = tie[a, b] / n
    strengths, _nu = rank_models.davidson_fit(win, tie)
    for name, g in zip(variants, strengths[0], strict=True):
        out[("bt_strength", name)] = float(g)
    return out


TARGET_MANY, TARGET_FEW = (0.93, 0.97), (0.90, 0.99)  # issue 10: with 8 or more raters; with 5


def target(crowd: Crowd) -> tuple[float, float]:
    """The coverage a 95% interval family must reach."""
    return TARGET_MANY if crowd.n_raters >= 8 else TARGET_FEW


def intervals(res: AnalysisResult) -> dict[tuple, list]:
    out: dict[tuple, list] = {}
    for r in res.count.by_variant:
        for key in ("mean_abs_error", "match_ratio"):
            out[(key, r.variant)] = getattr(r, key + "_ci")
    for r in res.count.by_variant_object:
        out[("mean_abs_error per object", (r.variant, r.object))] = r.mean_abs_error_ci
    for r in res.count.by_variant_object_count:
        for key in ("mean_abs_error", "match_ratio"):
            out[(f"{key} per cell", (r.variant, r.object, r.count))] = getattr(r, key + "_ci")
    for s in res.preference.by_variant:
        out[("score", s.variant)] = s.score_ci
        out[("pl_strength", s.variant)] = s.pl_strength_ci
        out[("bt_strength", s.variant)] = s.bt_strength_ci
    for p in res.preference.pairs:
        for key in ("win_rate", "tie_rate"):
            out[(key, (p.a, p.b))] = getattr(p, key + "_ci")
    for t in res.tests.paired:
        if (t.a, t.b) in PAIRS:
            out[(f"difference: {t.measure}", (t.a, t.b))] = t.difference_ci
    return out


def clustered_se(hits: np.ndarray, study: np.ndarray) -> float:
    """Standard error of the coverage sum(hits) / n with the intervals of one study as a
    cluster: the intervals of a family within a study share its raters and items, so the
    binomial standard error (independent intervals) understates the error, by 2-3x here."""
    hits = np.asarray(hits, dtype=float)
    _, code = np.unique(study, return_inverse=True)
    n_s = np.bincount(code).astype(float)
    h_s = np.bincount(code, weights=hits)
    k = len(n_s)
    if k < 2:
        return float("nan")
    cov = h_s.sum() / n_s.sum()
    return float(np.sqrt(((h_s - cov * n_s) ** 2).sum() * k / (k - 1)) / n_s.sum())


def main(args: argparse.Namespace) -> str:
    started = time.time()
    load_before = load_average()
    lines = [
        "Coverage of evalstudy's 95% intervals in crowds unlike its simulator (bench/coverage.py)",
        f"date: {time.strftime('%Y-%m-%d %H:%M')}   machine: {cpu_and_usable_cores()}   "
        f"load average before: {load_before:.2f}",
        f"studies per scenario: {args.studies}   bootstrap resamples: {args.n_boot}   "
        f"design: {len(OBJECTS)} objects x {len(COUNTS)} counts x {SEEDS_PER_PROMPT} seeds x "
        f"{len(VARIANTS)} variants (count), {CAPTIONS} captions (rank); 3 raters per item "
        "(every rater with 5)",
        "command: python bench/coverage.py " + " ".join(sys.argv[1:]),
        "",
        f"{'scenario':<38}{'family':<30}{'n':>6}{'coverage':>10}{'s.e.':>7}{'width':>8}",
    ]
    scenarios = [s for s in SCENARIOS if not args.only or args.only in s.name]
    outside = []
    n_rows = 0
    for crowd in scenarios:
        rng = np.random.default_rng([args.seed, SCENARIOS.index(crowd)])
        truth = truths(crowd, rng)
        hits: dict[str, list] = {}
        study_of: dict[str, list] = {}
        widths: dict[str, list] = {}
        for s in range(args.studies):
            res = analyze(draw_study(crowd, rng), n_boot=args.n_boot, seed=s)
            for key, ci in intervals(res).items():
                if key not in truth or not np.isfinite(truth[key]):
                    continue
                ok = ci[0] is not None and ci[0] <= truth[key] <= ci[1]
                hits.setdefault(key[0], []).append(ok)
                study_of.setdefault(key[0], []).append(s)
                if ci[0] is not None:
                    widths.setdefault(key[0], []).append(ci[1] - ci[0])
        for fam, h in hits.items():
            h_arr = np.array(h, dtype=float)
            cov = h_arr.mean()
            se = clustered_se(h_arr, np.array(study_of[fam]))
            low, high = target(crowd)
            n_rows += 1
            if cov + 1.96 * se < low or cov - 1.96 * se > high:
                outside.append(f"  {crowd.name}, {fam}: {cov:.3f} +- {1.96 * se:.3f} "
                               f"(target {low:.2f}-{high:.2f})")
            lines.append(f"{crowd.name:<38}{fam:<30}{len(h):>6}{cov:>10.3f}"
                         f"{se:>7.3f}"
                         f"{np.mean(widths.get(fam, [np.nan])):>8.3f}")
        print("\n".join(lines[-len(hits):]), flush=True)
    lines += ["", f"rows consistent with the targets ({TARGET_MANY[0]:.2f}-{TARGET_MANY[1]:.2f} with 8 or more "
              f"raters, {TARGET_FEW[0]:.2f}-{TARGET_FEW[1]:.2f} with 5): {n_rows - len(outside)} of {n_rows}"
              + ("; outside (coverage +- 1.96 s.e. clear of the target):" if outside else "")] + outside
    lines += ["", "s.e.: standard error of the coverage with each study's intervals as one cluster (they "
              "share its raters and items); a row counts as outside only when its coverage +- 1.96 s.e. "
              "lies wholly outside the target band.",
              result_footer(started)]
    text = "\n".join(lines)
    return emit_result("coverage", text, write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
