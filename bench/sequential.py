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
  LOOKS, |Z| >= z_(1 - alpha/4), Z read through t as the rule reads it), and the mean
  number of evaluators paid for (a study stops at its stopping look; one that continues to
  the end pays for all).

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
from bench._common import emit_result, result_footer, result_header, save_result  # noqa: E402
from evalstudy import sequential  # noqa: E402
from evalstudy.analysis.data import _CountData, _evaluator_codes, _RankData, canonical_evaluator_order  # noqa: E402
from evalstudy.analysis.primary import _Rows, primary_section  # noqa: E402
from evalstudy.protocol import PrimaryComparison, PrimaryPlan  # noqa: E402
from evalstudy.responses import ResponseTable, table_from_columns  # noqa: E402

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


# A crowd that changes while it arrives (population difference about 0): the first half of the
# evaluators judge A as the planned effect has it (bench/coverage.py's accuracy and rank
# quality), the second half the mirror image (B ahead by as much).
DRIFTING = cv.Crowd("drifting: first half leans to A, second to B", LOOKS[-1], 0)


def _mirror(accuracy: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B ahead of A by what A was ahead of B (accuracy on the log scale, quality additively)."""
    ia, ib = cv.VARIANTS.index(A), cv.VARIANTS.index(B)
    acc, q = accuracy.copy(), quality.copy()
    acc[ia] = accuracy[ib] ** 2 / accuracy[ia]
    q[ia] = 2 * quality[ib] - quality[ia]
    return acc, q


def draw_study(crowd: cv.Crowd, rng: np.random.Generator, accuracy: np.ndarray, quality: np.ndarray,
               late: tuple[np.ndarray, np.ndarray] | None = None) -> ResponseTable:
    """A study of LOOKS[-1] evaluators in arrival order e00, e01, ...; uneven loads make a
    rater's session longer (load / median load, at least one unit). With `late` (accuracy,
    quality), the second half of the evaluators judge by those instead."""
    n, m = LOOKS[-1], len(cv.VARIANTS)
    raters = cv._raters(crowd, rng, n)
    sessions = np.maximum(1, np.round(SESSION_UNITS * raters["load"] / np.median(raters["load"])))
    seeds = 200
    n_units = len(cv.OBJECTS) * len(cv.COUNTS) * seeds
    unit_difficulty = cv._difficulty(crowd, rng, n_units)  # shared by the variants' images: paired
    effects = cv._caption_effects(crowd, rng, seeds)
    parts: list[dict[str, np.ndarray]] = []
    saved = cv.ACCURACY, cv.QUALITY
    cv.ACCURACY, cv.QUALITY = accuracy, quality  # the crowd model reads them per call
    try:
        for e in range(n):
            if late is not None:
                cv.ACCURACY, cv.QUALITY = late if e >= n // 2 else (accuracy, quality)
            k = rng.choice(n_units, int(min(sessions[e], 60)), replace=False)
            o, rest = np.divmod(k, len(cv.COUNTS) * seeds)
            c = np.array(cv.COUNTS)[rest // seeds]
            s = rest % seeds
            v = np.tile(np.arange(m), len(k))            # every variant's image of each unit
            k4, o4, c4, s4 = (np.repeat(x, m) for x in (k, o, c, s))
            d = unit_difficulty[k4] * np.exp(rng.normal(0, 0.3, len(k4)))
            ans = cv._answers(c4, v, o4, d, raters, np.full(len(k4), e), rng)
            names = np.array(cv.VARIANTS)[v]
            objs = np.array(cv.OBJECTS)[o4]
            parts.append({"task": np.full(len(k4), "count"),
                          "item_id": np.char.add(np.char.add(names, "/"), k4.astype(str)),
                          "variant": names, "prompt": np.char.add(np.char.add(c4.astype(str), " "),
                                                                  np.char.add(objs, "s")),
                          "object": objs, "true_count": c4.astype(float), "answer_count": ans,
                          "rank": np.full(len(k4), np.nan), "position": np.full(len(k4), np.nan),
                          "seconds": np.full(len(k4), 5.0), "seed": s4.astype(float)})
            j = rng.choice(seeds, SESSION_CAPTIONS, replace=False)
            # The quality passed, not the function's default (bound when coverage.py was imported).
            u = cv._utilities(effects[j], raters, np.full(len(j), e), crowd.interaction, rng,
                              cv.QUALITY)  # (captions, m)
            ranks = np.empty_like(u)
            np.put_along_axis(ranks, np.argsort(-u, axis=1), np.arange(1, m + 1)[None, :].repeat(len(j), 0), 1)
            jj = np.repeat(j, m)
            vv = np.tile(np.arange(m), len(j))
            parts.append({"task": np.full(len(jj), "rank"),
                          "item_id": np.char.add("caption-", jj.astype(str)),
                          "variant": np.array(cv.VARIANTS)[vv],
                          "prompt": np.char.add("caption ", jj.astype(str)), "object": np.full(len(jj), ""),
                          "true_count": np.full(len(jj), np.nan), "answer_count": np.full(len(jj), np.nan),
                          "rank": ranks.ravel(), "position": ((vv + e + jj) % m).astype(float),
                          "seconds": np.full(len(jj), 12.0), "seed": np.zeros(len(jj))})
            for p in parts[-2:]:
                p["evaluator_id"] = np.full(len(p["task"]), f"e{e:02d}")
    finally:
        cv.ACCURACY, cv.QUALITY = saved
    cols = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    total = len(cols["task"])
    cols.update(skipped=np.zeros(total, dtype=bool), is_gold=np.zeros(total, dtype=bool),
                skip_reason=np.full(total, ""))
    return table_from_columns(cols)


def run_study(table: ResponseTable) -> dict:
    order = canonical_evaluator_order(table)
    section = primary_section(table, PLAN, variants=list(cv.VARIANTS), objects=list(cv.OBJECTS),
                              arrival=[f"e{e:02d}" for e in range(LOOKS[-1])],
                              ev_order=order, level=0.95, robust=False)
    # The fixed design: one look at every evaluator, Z read as the rule reads it (through t
    # with Satterthwaite's df), against the one-look boundary at the same share of alpha.
    fixed_c = sps.norm.isf(ALPHA / len(PLAN.comparisons) / 2)
    ev_code, _ = _evaluator_codes(table, order)
    count = _CountData.build(table, ev_code, list(cv.VARIANTS), list(cv.OBJECTS))
    rank = _RankData.build(table, ev_code, list(cv.VARIANTS))
    ia, ib = cv.VARIANTS.index(A), cv.VARIANTS.index(B)
    shown, fixed, flagged = False, False, False
    stops = []
    for pc, comp in zip(PLAN.comparisons, section.comparisons, strict=True):
        last = comp.looks[-1]
        flagged |= last.crowd_drift_p is not None and last.crowd_drift_p < ALPHA
        stops.append(last.n_evaluators if comp.decision != "continue" else LOOKS[-1])
        shown |= comp.decision == "stop: difference shown"
        est, var, df = _Rows(count, rank, pc.measure).estimate(None, ia, ib, 0.95)
        z_fixed = sequential.z_from_t(est, np.sqrt(var) if var >= 0 else np.nan, df)
        fixed |= bool(np.isfinite(z_fixed) and abs(z_fixed) >= fixed_c)
    return {"shown": shown, "evaluators": max(stops),  # paid until the last comparison stops
            "fixed": fixed, "flagged": flagged}


def main(args: argparse.Namespace) -> str:
    started = time.time()
    lines = [
        *result_header("The group-sequential stopping rule in bench/coverage.py's crowds (bench/sequential.py)"),
        f"looks at {list(LOOKS)} evaluators; sessions of {SESSION_UNITS} prompt-and-seed pairs x "
        f"{len(cv.VARIANTS)} variants and {SESSION_CAPTIONS} rankings; primary: {A} - {B} on "
        f"match_ratio (planned 0.1) and score (planned 0.3), alpha {ALPHA} shared",
        "",
        f"{'crowd':<48}{'effect':<9}{'studies':>8}{'stop: shown':>12}{'s.e.':>7}"
        f"{'fixed':>8}{'mean evaluators':>17}{'crowd flagged':>15}",
    ]
    null_acc = cv.ACCURACY.copy()
    null_acc[cv.VARIANTS.index(A)] = null_acc[cv.VARIANTS.index(B)]
    null_q = cv.QUALITY.copy()
    null_q[cv.VARIANTS.index(A)] = null_q[cv.VARIANTS.index(B)]
    footer = ["", "stop: shown: share of studies in which a primary comparison stopped with a "
              "difference shown at some look (with no effect: the false-positive rate over all "
              "looks; s.e. its binomial standard error, one study per row entry); fixed: the same "
              f"for one look at {LOOKS[-1]} evaluators; mean evaluators: paid for under the "
              f"sequential rule (the fixed design pays for {LOOKS[-1]}); crowd flagged: share of "
              f"studies in which a comparison's last look taken has the crowd-drift check "
              f"(sequential.crowd_drift_p: the arrival batches between looks estimate one difference) "
              f"below {ALPHA} (a study stopped at the first look has no check and is not flagged). "
              f"The drifting crowd: population difference about 0, its first half judging A ahead by the "
              f"planned effect and its second half B ahead by as much."]
    # Every row with no effect first (the false-positive rates), then the power rows; the
    # file is rewritten after each row, so a run cut short keeps what it measured.
    runs: list[tuple[int, cv.Crowd, str, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]] = [
        (ci, crowd, label, acc, q, None)
        for label, acc, q in (("none", null_acc, null_q), ("planned", cv.ACCURACY, cv.QUALITY))
        for ci, crowd in enumerate(CROWDS)]
    # Appended, so the rows above keep their seeds.
    runs.append((len(CROWDS), DRIFTING, "none", cv.ACCURACY, cv.QUALITY, _mirror(cv.ACCURACY, cv.QUALITY)))
    for done, (ci, crowd, label, acc, q, late) in enumerate(runs, start=1):
        if args.null_only and label != "none":
            continue
        rng = np.random.default_rng([args.seed, ci, label == "none"])
        n = args.studies if label == "none" else args.planned_studies
        out = [run_study(draw_study(crowd, rng, acc, q, late)) for _ in range(n)]
        shown = np.mean([o["shown"] for o in out])
        lines.append(f"{crowd.name:<48}{label:<9}{len(out):>8}{shown:>12.3f}"
                     f"{np.sqrt(shown * (1 - shown) / len(out)):>7.3f}"
                     f"{np.mean([o['fixed'] for o in out]):>8.3f}"
                     f"{np.mean([o['evaluators'] for o in out]):>17.1f}"
                     f"{np.mean([o['flagged'] for o in out]):>15.3f}")
        print(lines[-1], flush=True)
        if args.write and done < len(runs):
            save_result("sequential", "\n".join(lines + footer + [
                f"partial: {done} of {len(runs)} rows after {time.time() - started:.0f} s"]))
    lines += footer + [result_footer(started)]
    text = "\n".join(lines)
    return emit_result("sequential", text, write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--planned-studies", type=int, default=200)
    parser.add_argument("--null-only", action="store_true")
    parser.add_argument("--write", action="store_true")
    main(parser.parse_args())
