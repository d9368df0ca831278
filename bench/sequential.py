"""The stopping rule in bench/coverage.py's crowds: false positives over all looks, power, and
evaluators used against the fixed design.

Each simulated study recruits evaluators one after another; each answers a session (the
count images of SESSION_UNITS prompt-and-seed pairs, every variant's image of each, and the
rankings of SESSION_CAPTIONS captions), drawn from bench/coverage.py's crowd model (its
raters, image difficulty and rank utilities, with the scenario's troubles). The primary
comparisons are concat-intermediate - concat-early on the match ratio and on the preference
score, at the looks LOOKS, by `evalstudy.analysis.primary.primary_section` (the analysis'
own code, alpha shared by the two comparisons).

* no effect: the two variants are given the same accuracy and rank quality; a study is a
  false positive if any comparison stops with "difference shown" at any look. The rate must
  stay at or below alpha = 0.05, within Monte Carlo error.
* planned effect: bench/coverage.py's own accuracies and qualities; power is the share of
  studies that stop with a difference shown, against the fixed design (one look at the last
  LOOKS, |Z| >= z_(1 - alpha/4)), and the mean number of evaluators paid for (a study stops
  at its stopping look; one that continues to the end pays for all).

    nice -n 10 .venv/bin/python bench/sequential.py [--studies 500] [--planned-studies 200] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import coverage as cv  # noqa: E402
from bench._common import cpu_and_usable_cores, load_average, save_result  # noqa: E402
from evalstudy.analysis.data import canonical_evaluator_order  # noqa: E402
from evalstudy.analysis.primary import primary_section  # noqa: E402
from evalstudy.protocol import PrimaryComparison, PrimaryPlan  # noqa: E402
from evalstudy.responses import table_from_columns  # noqa: E402

LOOKS = (10, 20, 30, 40)
SESSION_UNITS = 6      # prompt-and-seed pairs per evaluator (4 variants each: 24 images)
SESSION_CAPTIONS = 4
ALPHA = 0.05
A, B = "concat-intermediate", "concat-early"
PLAN = PrimaryPlan(comparisons=(PrimaryComparison(A, B, "match_ratio", 0.1),
                                PrimaryComparison(A, B, "score", 0.3)),
                   looks=LOOKS, alpha=ALPHA)
CROWDS = [cv.Crowd("biased + noisy raters", LOOKS[-1], 0, biased=0.2, noisy=0.2),
          cv.Crowd("heavy-tailed items, item x rater interaction", LOOKS[-1], 0, heavy_items=True,
                   interaction=True),
          cv.Crowd("all of these", LOOKS[-1], 0, heavy_items=True, biased=0.2, noisy=0.2,
                   uneven_loads=True, interaction=True)]


def draw_study(crowd: cv.Crowd, rng, accuracy: np.ndarray, quality: np.ndarray):
    """A study of LOOKS[-1] evaluators in arrival order e00, e01, ...; uneven loads make a
    rater's session longer (load / median load, at least one unit)."""
    n = LOOKS[-1]
    raters = cv._raters(crowd, rng, n)
    sessions = np.maximum(1, np.round(SESSION_UNITS * raters["load"] / np.median(raters["load"])))
    units = [(o, c, s) for o in range(len(cv.OBJECTS)) for c in cv.COUNTS for s in range(200)]
    difficulty = {}
    effects = cv._caption_effects(crowd, rng, 200)
    rows: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant", "prompt",
                                             "object", "true_count", "answer_count", "rank", "skipped",
                                             "skip_reason", "position", "seconds", "is_gold", "seed")}

    def add(**cols):
        for c in rows:
            rows[c].append(cols.get(c, "" if c == "skip_reason" else np.nan))

    saved = cv.ACCURACY, cv.QUALITY
    cv.ACCURACY, cv.QUALITY = accuracy, quality  # the crowd model reads them per call
    try:
        for e in range(n):
            r = np.array([e])
            for k in rng.choice(len(units), int(min(sessions[e], 60)), replace=False):
                o, c, s = units[k]
                difficulty.setdefault(k, cv._difficulty(crowd, rng, 1)[0])
                for v, name in enumerate(cv.VARIANTS):
                    ans = cv._answers(np.array([c]), v, o, np.array([difficulty[k] * np.exp(rng.normal(0, 0.3))]),
                                      raters, r, rng)[0]
                    add(task="count", item_id=f"{name}/{k}", evaluator_id=f"e{e:02d}", variant=name,
                        prompt=f"{c} {cv.OBJECTS[o]}s", object=cv.OBJECTS[o], true_count=c,
                        answer_count=ans, skipped=False, seconds=5.0, is_gold=False, seed=s)
            for j in rng.choice(200, SESSION_CAPTIONS, replace=False):
                u = cv._utilities(effects[j][None, :], raters, r, crowd.interaction, rng)[0]
                ranks = np.empty(len(cv.VARIANTS))
                ranks[np.argsort(-u)] = np.arange(1, len(cv.VARIANTS) + 1)
                for v, name in enumerate(cv.VARIANTS):
                    add(task="rank", item_id=f"caption-{j}", evaluator_id=f"e{e:02d}", variant=name,
                        prompt=f"caption {j}", object="", rank=ranks[v], skipped=False,
                        position=(v + e + j) % len(cv.VARIANTS), seconds=12.0, is_gold=False, seed=0)
    finally:
        cv.ACCURACY, cv.QUALITY = saved
    for c in ("skipped", "is_gold"):
        rows[c] = [bool(x) for x in rows[c]]
    return table_from_columns({k: np.array(v) for k, v in rows.items()})


def run_study(table) -> dict:
    section = primary_section(table, PLAN, variants=list(cv.VARIANTS), objects=list(cv.OBJECTS),
                              arrival=[f"e{e:02d}" for e in range(LOOKS[-1])],
                              ev_order=canonical_evaluator_order(table), level=0.95, robust=False)
    fixed_c = sps.norm.isf(ALPHA / len(PLAN.comparisons) / 2)
    shown, stop_at, fixed = False, LOOKS[-1], False
    stops = []
    for comp in section["comparisons"]:
        last = comp["looks"][-1]
        stops.append(last["n_evaluators"] if comp["decision"] != "continue" else LOOKS[-1])
        shown |= comp["decision"] == "stop: difference shown"
        full = next((lk for lk in comp["looks"] if lk["n_evaluators"] == LOOKS[-1]), None)
        z_final = full["z"] if full is not None else None
        if z_final is None:  # the sequential rule stopped early: the fixed design's last look
            est, se = comp["estimate"], comp["se"]
            z_final = est / se if se else 0.0
        fixed |= abs(z_final) >= fixed_c
    stop_at = max(stops)  # the study pays until its last comparison stops
    return {"shown": shown, "evaluators": stop_at, "fixed": fixed}


def main(args) -> str:
    started = time.time()
    lines = [
        "The group-sequential stopping rule in bench/coverage.py's crowds (bench/sequential.py)",
        f"date: {time.strftime('%Y-%m-%d %H:%M')}   machine: {cpu_and_usable_cores()}   "
        f"load average before: {load_average():.2f}",
        f"command: {' '.join(sys.argv)}",
        f"looks at {list(LOOKS)} evaluators; sessions of {SESSION_UNITS} prompt-and-seed pairs x "
        f"{len(cv.VARIANTS)} variants and {SESSION_CAPTIONS} rankings; primary: {A} - {B} on "
        f"match_ratio (planned 0.1) and score (planned 0.3), alpha {ALPHA} shared",
        "",
        f"{'crowd':<48}{'effect':<9}{'studies':>8}{'stop: shown':>12}{'s.e.':>7}"
        f"{'fixed':>8}{'mean evaluators':>17}",
    ]
    null_acc = cv.ACCURACY.copy()
    null_acc[cv.VARIANTS.index(A)] = null_acc[cv.VARIANTS.index(B)]
    null_q = cv.QUALITY.copy()
    null_q[cv.VARIANTS.index(A)] = null_q[cv.VARIANTS.index(B)]
    footer = ["", "stop: shown: share of studies in which a primary comparison stopped with a "
              "difference shown at some look (with no effect: the false-positive rate over all "
              "looks; s.e. its binomial standard error, one study per row entry); fixed: the same "
              f"for one look at {LOOKS[-1]} evaluators; mean evaluators: paid for under the "
              f"sequential rule (the fixed design pays for {LOOKS[-1]})."]
    # Every row with no effect first (the false-positive rates), then the power rows; the
    # file is rewritten after each row, so a run cut short keeps what it measured.
    runs = [(ci, crowd, label, acc, q)
            for label, acc, q in (("none", null_acc, null_q), ("planned", cv.ACCURACY, cv.QUALITY))
            for ci, crowd in enumerate(CROWDS)]
    for done, (ci, crowd, label, acc, q) in enumerate(runs, start=1):
        if args.null_only and label != "none":
            continue
        rng = np.random.default_rng([args.seed, ci, label == "none"])
        n = args.studies if label == "none" else args.planned_studies
        out = [run_study(draw_study(crowd, rng, acc, q)) for _ in range(n)]
        shown = np.mean([o["shown"] for o in out])
        lines.append(f"{crowd.name:<48}{label:<9}{len(out):>8}{shown:>12.3f}"
                     f"{np.sqrt(shown * (1 - shown) / len(out)):>7.3f}"
                     f"{np.mean([o['fixed'] for o in out]):>8.3f}"
                     f"{np.mean([o['evaluators'] for o in out]):>17.1f}")
        print(lines[-1], flush=True)
        if args.write and done < len(runs):
            save_result("sequential", "\n".join(lines + footer + [
                f"partial: {done} of {len(runs)} rows after {time.time() - started:.0f} s"]))
    lines += footer + [f"run time: {time.time() - started:.0f} s; load average after: {load_average():.2f}"]
    text = "\n".join(lines)
    if args.write:
        print(f"wrote {save_result('sequential', text)}", file=sys.stderr)
    else:
        print(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--planned-studies", type=int, default=200)
    parser.add_argument("--null-only", action="store_true")
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
