"""Do the 95% intervals of `analyze` cover the truth 95% of the time?

Studies are simulated with `evalstudy.simulate.RaterSimulator`, whose population
values are known in closed form (count error and match ratio by enumeration,
preference scores from normal probabilities; Plackett-Luce strengths by fitting
two million simulated rankings). Each study is analysed twice: as shipped, and
with the crossed bootstrap's shrink factor forced to 1 (the plain product-weight
bootstrap), to show what the correction buys.

    .venv/bin/python bench/coverage.py [--studies 300] [--n-boot 500] [--write]

--write saves the printed table under bench/results/coverage-<date>.txt.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import cpu_and_usable_cores, save_result  # noqa: E402

from evalstudy import bootstrap, stats  # noqa: E402
from evalstudy.analysis import analyze  # noqa: E402
from evalstudy.simulate import RaterSimulator, simulate_study, synthetic_protocol  # noqa: E402

VARIANTS = ["concat-early", "concat-intermediate", "cross-early", "cross-intermediate"]
QUALITY = dict(zip(VARIANTS, (0.5, 0.65, 0.55, 0.75)))
# The paper's grid (4 objects x 5 counts x 10 images, 100 captions) with 30 evaluators,
# each item seen by 3 of them.
DESIGN = dict(objects=("circle", "square", "triangle", "star"), counts=(1, 2, 3, 4, 5),
              images_per_prompt=10, n_captions=100, n_evaluators=30, overlap=3)
PL_TRUTH_RANKINGS = 2_000_000


def truths(sim: RaterSimulator, proto) -> dict[tuple, float]:
    """(statistic, key) -> population value."""
    out = {}
    counts = proto.count_task.counts
    objects = [o.name for o in proto.count_task.objects]
    for v in VARIANTS:
        cells = {c: sim.expected_count(c, v) for c in counts}
        for key in ("mean_abs_error", "match_ratio"):
            out[(key, v)] = float(np.mean([cells[c][key] for c in counts]))
            for o in objects:
                for c in counts:
                    out[(key + " (cells)", (v, o, c))] = cells[c][key]
    scores = sim.expected_scores(VARIANTS)
    for v in VARIANTS:
        out[("score", v)] = scores[v]
    for a, b in (("concat-intermediate", "concat-early"), ("cross-intermediate", "cross-early")):
        out[("difference: score", (a, b))] = scores[a] - scores[b]
        out[("difference: mean_abs_error", (a, b))] = (out[("mean_abs_error", a)]
                                                      - out[("mean_abs_error", b)])
    # Plackett-Luce: the PL fit to the population's distribution of orderings.
    rng = np.random.default_rng(12345)
    q = np.array([QUALITY[v] for v in VARIANTS])
    sd = np.sqrt(sim.item_sd ** 2 + sim.rater_sd ** 2 + sim.rank_noise ** 2)
    orderings = stats.all_orderings(len(VARIANTS))
    lookup = {tuple(o): k for k, o in enumerate(orderings.tolist())}
    counts_k = np.zeros(len(orderings))
    for _ in range(PL_TRUTH_RANKINGS // 200_000):
        u = q + rng.normal(0, sd, (200_000, len(VARIANTS)))
        for o in np.argsort(-u, axis=1).tolist():
            counts_k[lookup[tuple(o)]] += 1
    gamma = stats.plackett_luce_mm(counts_k[None, :], orderings)[0]
    for v, g in zip(VARIANTS, gamma):
        out[("pl_strength", v)] = float(g)
    return out


def intervals(res: dict) -> dict[tuple, list]:
    out = {}
    for r in res["count"]["by_variant"]:
        for key in ("mean_abs_error", "match_ratio"):
            out[(key, r["variant"])] = r[key + "_ci"]
    for r in res["count"]["by_variant_object_count"]:
        for key in ("mean_abs_error", "match_ratio"):
            out[(key + " (cells)", (r["variant"], r["object"], r["count"]))] = r[key + "_ci"]
    for r in res["preference"]["by_variant"]:
        out[("score", r["variant"])] = r["score_ci"]
        out[("pl_strength", r["variant"])] = r["pl_strength_ci"]
    for t in res["tests"]["paired"]:
        if t["measure"] in ("score", "mean_abs_error"):
            out[(f"difference: {t['measure']}", (t["a"], t["b"]))] = t["difference_ci"]
    return out


def main(args) -> str:
    started = time.time()
    proto = synthetic_protocol(VARIANTS, **DESIGN)
    base = RaterSimulator(QUALITY, count_noise=0.1, rank_noise=0.3, skip_rate=0.1, seed=0)
    truth = truths(base, proto)
    hits = {mode: {} for mode in ("shipped", "plain")}
    widths = {mode: {} for mode in ("shipped", "plain")}
    rng = np.random.default_rng(args.seed)
    for s in range(args.studies):
        table = simulate_study(base, proto, seed=int(rng.integers(2 ** 31)))
        for mode in ("shipped", "plain"):
            if mode == "plain":  # the product-weight bootstrap without the correction
                with mock.patch.object(bootstrap, "shrink_factors",
                                       lambda vu, ve, vc, nu, ne, level: np.ones(np.shape(vu))):
                    res = analyze(table, proto, n_boot=args.n_boot, seed=s)
            else:
                res = analyze(table, proto, n_boot=args.n_boot, seed=s)
            for key, ci in intervals(res).items():
                stat = key[0]
                ok = ci[0] is not None and ci[0] <= truth[key] <= ci[1]
                hits[mode].setdefault(stat, []).append(ok)
                if ci[0] is not None:
                    widths[mode].setdefault(stat, []).append(ci[1] - ci[0])
    lines = [
        "Coverage of evalstudy's 95% intervals (bench/coverage.py)",
        f"date: {datetime.date.today().isoformat()}   machine: {cpu_and_usable_cores()}",
        f"studies: {args.studies}   bootstrap resamples per interval: {args.n_boot} "
        "(fewer than analyze's default 2000, to keep the run short)",
        f"design: {len(VARIANTS)} variants, {DESIGN['n_evaluators']} evaluators, overlap "
        f"{DESIGN['overlap']}, {len(DESIGN['objects'])} objects x {len(DESIGN['counts'])} counts "
        f"x {DESIGN['images_per_prompt']} images, {DESIGN['n_captions']} captions",
        f"simulator: quality {QUALITY}, count_noise {base.count_noise}, rank_noise "
        f"{base.rank_noise}, item_sd {base.item_sd}, rater_sd {base.rater_sd}, skip_rate "
        f"{base.skip_rate}",
        "",
        f"{'statistic':<30}{'intervals':>10}{'coverage':>10}{'plain':>8}"
        f"{'width':>8}{'plain':>8}",
    ]
    for stat in hits["shipped"]:
        h, p = np.array(hits["shipped"][stat]), np.array(hits["plain"][stat])
        lines.append(f"{stat:<30}{len(h):>10}{h.mean():>10.3f}{p.mean():>8.3f}"
                     f"{np.mean(widths['shipped'][stat]):>8.3f}"
                     f"{np.mean(widths['plain'][stat]):>8.3f}")
    lines += ["", "coverage: intervals as shipped (product-weight bootstrap, shrunk by the "
              "moment correction); plain: the same resamples, uncorrected.",
              "width: mean interval width. Monte Carlo s.e. of a coverage near 0.95 over "
              f"{args.studies} studies: about {np.sqrt(0.95 * 0.05 / args.studies):.3f} "
              "(more for a row pooling correlated intervals).",
              f"run time: {time.time() - started:.0f} s"]
    text = "\n".join(lines)
    print(text)
    if args.write:
        path = save_result("coverage", text)
        print(f"wrote {path}", file=sys.stderr)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
