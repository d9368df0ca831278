"""The pairs design's intervals and tests under crowds unlike the one its own simulator draws.

`evalstudy.simulate.simulate_bradley_terry_pairs` answers by Davidson's model exactly. The
crowds here (simulated in this file, from their own definitions) answer otherwise:

* `davidson`: Davidson's logistic model with ties, as ours (the reference row);
* `probit`: Thurstone-Mosteller (a normal latent difference, Case V) with ties by a threshold:
  a tie when the latent difference is within +-tau;
* `raters`: rater-specific strengths (each rater's log-strengths off the crowd's by N(0, 0.6^2)),
  and 12% spammers: half always pick the left image, half pick at random;
* `position`: a strong pull to the left image (+0.6 on the latent scale) and a caption x variant
  interaction (N(0, 0.5^2) per caption and variant), probit, threshold ties;
* `uneven`: `raters`' crowd with uneven loads: a slot is abandoned at a random point in 40% of
  cases and its rest handed to a pool of returning raters drawn by Zipf weights, so loads run
  from a handful of rankings to hundreds.

The plan is the study's own (`design.plan_assignments(design="pairs")`). The true values are
computed, not simulated: each pair's probabilities of a win, a loss and a tie averaged over
the crowd (spammers, raters' and captions' effects integrated out by Gauss-Hermite quadrature,
the sides half and half, as the plan counterbalances them); the true strengths are the
Bradley-Terry-Davidson fit to those probabilities with every pair weighted alike (the
design's weights), the model's best approximation when the crowd does not follow it.

Per setting it records the coverage of the strength intervals, of the pairs' win-rate
intervals (ties left out) and of the left image's win share; under a null of equal variants
the crossed t test's rejection rate of the planned win-margin comparisons (each unadjusted,
and the family-wise rate after Holm's adjustment), and the position test's size; with a left
pull, its power. Monte Carlo standard errors are over studies (a study's pairs are not
independent).

    nice -n 10 .venv/bin/python bench/pairs_crowds.py [--reps 12] [--null-reps 12] [--n-boot 400]
        [--crowds davidson,probit,...] [--write]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit_result, result_footer, result_header  # noqa: E402
from evalstudy import bootstrap as bs  # noqa: E402
from evalstudy import rank_models, stats  # noqa: E402
from evalstudy.analysis.pairdesign import (  # noqa: E402
    _pair_table,
    _PairData,
    _ratio_intervals,
    pair_comparisons,
    pair_position_bias,
    pair_strengths,
)
from evalstudy.analysis.significance import EXACT_MAX_N  # noqa: E402
from evalstudy.design import SlotPlan, plan_assignments  # noqa: E402
from evalstudy.responses import ResponseTable, table_from_columns  # noqa: E402

LEVEL = 0.95
GH_NODES = 40  # Gauss-Hermite nodes for the crowd's random effects


@dataclass(frozen=True)
class Crowd:
    """How a crowd answers a pair. Latent preference for the left image over the right:
    d = (theta_L + r_L + c_L + left) - (theta_R + r_R + c_R) + e, e logistic (link "logit")
    or N(0, 2) (link "probit", Thurstone's Case V); a tie when |d| < tau, or by Davidson's
    nu (link "davidson": P(tie) = nu sqrt(s_L s_R) / D, no threshold)."""

    name: str
    link: str = "davidson"
    nu: float = 0.4
    tau: float = 0.35
    rater_sd: float = 0.0
    caption_sd: float = 0.0
    left: float = 0.0
    spam_left: float = 0.0
    spam_random: float = 0.0
    uneven: bool = False


CROWDS = {
    "davidson": Crowd("davidson"),
    "probit": Crowd("probit", link="probit"),
    "raters": Crowd("raters", link="logit", rater_sd=0.6, spam_left=0.06, spam_random=0.06),
    "position": Crowd("position", link="probit", left=0.6, caption_sd=0.5),
    "uneven": Crowd("uneven", link="logit", rater_sd=0.6, spam_left=0.06, spam_random=0.06, uneven=True),
}


def _outcome_probs(crowd: Crowd, mean: np.ndarray, extra_var: float) -> np.ndarray:
    """(..., 3) P(left wins), P(right wins), P(tie) of a careful rater, for latent mean
    differences `mean`, random effects of variance `extra_var` integrated out."""
    if crowd.link == "probit":
        sd = math.sqrt(2.0 + extra_var)
        p_left = sps.norm.sf((crowd.tau - mean) / sd)
        p_right = sps.norm.cdf((-crowd.tau - mean) / sd)
        return np.stack([p_left, p_right, np.maximum(1.0 - p_left - p_right, 0.0)], axis=-1)  # (rounding)
    x, w = np.polynomial.hermite_e.hermegauss(GH_NODES)
    w = w / w.sum()
    d = mean[..., None] + math.sqrt(extra_var) * x
    if crowd.link == "logit":
        p_left = special.expit(d - crowd.tau)
        p_right = special.expit(-d - crowd.tau)
        out = np.stack([p_left, p_right, np.maximum(1.0 - p_left - p_right, 0.0)], axis=-1)
    else:  # davidson, log-strength difference d
        t = crowd.nu * np.exp(-np.abs(d) / 2)  # nu sqrt(s_L s_R) / max(s_L, s_R)
        big = np.exp(-np.abs(d))
        denom = 1.0 + big + t
        win_big = 1.0 / denom
        out = np.stack([np.where(d >= 0, win_big, big / denom), np.where(d >= 0, big / denom, win_big),
                        t / denom], axis=-1)
    return (out * w[:, None]).sum(axis=-2)


def pair_truth(crowd: Crowd, theta: np.ndarray) -> tuple[dict, np.ndarray, float]:
    """Per pair (a, b), a < b: the crowd's P(a wins), P(b wins), P(tie) with the sides half and
    half; the true strengths (Davidson's fit to those with every pair weighted alike); the true
    share of untied rankings won by the left image."""
    n = len(theta)
    extra = 2 * crowd.rater_sd ** 2 + 2 * crowd.caption_sd ** 2
    careful = 1.0 - crowd.spam_left - crowd.spam_random
    truth = {}
    left_won = right_won = 0.0
    for a, b in itertools.combinations(range(n), 2):
        a_left = _outcome_probs(crowd, np.array(theta[a] - theta[b] + crowd.left), extra)
        b_left = _outcome_probs(crowd, np.array(theta[b] - theta[a] + crowd.left), extra)
        p_a = careful * (a_left[0] + b_left[1]) / 2 + crowd.spam_left * 0.5 + crowd.spam_random * 0.5
        p_b = careful * (a_left[1] + b_left[0]) / 2 + crowd.spam_left * 0.5 + crowd.spam_random * 0.5
        p_t = careful * (a_left[2] + b_left[2]) / 2
        truth[(a, b)] = (float(p_a), float(p_b), float(p_t))
        left_won += careful * (a_left[0] + b_left[0]) / 2 + crowd.spam_left + crowd.spam_random * 0.5
        right_won += careful * (a_left[1] + b_left[1]) / 2 + crowd.spam_random * 0.5
    wins, ties = np.zeros((n, n)), np.zeros((n, n))
    for (a, b), (pa, pb, pt) in truth.items():
        wins[a, b], wins[b, a], ties[a, b], ties[b, a] = pa, pb, pt, pt
    strengths, _ = rank_models.davidson_fit(wins * 1e4, ties * 1e4, gtol=1e-13)
    return truth, strengths[0], left_won / (left_won + right_won)


def _evaluator_of_rows(plans: list[SlotPlan], crowd: Crowd, rng: np.random.Generator) -> dict[tuple[int, str], str]:
    """(slot, item) -> evaluator id. Even loads: the slot's own evaluator. Uneven: 40% of slots
    are abandoned at a random point and their rest handed to a returning rater drawn from a
    pool by Zipf weights (a few raters take many hand-overs)."""
    out = {}
    pool = [f"r{k:03d}" for k in range(max(3, len(plans) // 4))]
    zipf = 1.0 / np.arange(1, len(pool) + 1) ** 1.2
    zipf /= zipf.sum()
    seen: dict[str, set[str]] = {r: set() for r in pool}
    for plan in plans:
        items = list(plan.positions)
        cut = len(items)
        if crowd.uneven and rng.random() < 0.4:
            cut = int(rng.integers(1, max(2, len(items))))
        rest = set(items[cut:])
        other = pool[rng.choice(len(pool), p=zipf)]
        if seen[other] & rest:  # no rater judges a caption twice: a newcomer takes this one
            other = f"n{plan.slot:03d}"
            seen[other] = set()
        seen[other] |= rest
        for k, item in enumerate(items):
            out[(plan.slot, item)] = f"e{plan.slot:03d}" if k < cut else other
    return out


def simulate(crowd: Crowd, theta: np.ndarray, n_evaluators: int, tasks_each: int, overlap: int,
             seed: int) -> ResponseTable:
    """The rank rows of a pairs study of len(theta) variants answered by `crowd`."""
    rng = np.random.default_rng(seed)
    n = len(theta)
    n_captions = n_evaluators * tasks_each // overlap
    captions = [f"c{k:04d}" for k in range(n_captions)]
    plans = plan_assignments([], captions, n_evaluators, overlap, seed, n_variants=n, design="pairs")
    who = _evaluator_of_rows(plans, crowd, rng)
    raters = sorted(set(who.values()))
    rater_effect = {r: rng.normal(0.0, crowd.rater_sd, n) for r in raters}
    u = rng.random(len(raters))
    kind = {r: ("left" if x < crowd.spam_left else "random" if x < crowd.spam_left + crowd.spam_random
                else "careful") for r, x in zip(raters, u, strict=True)}
    caption_effect = rng.normal(0.0, crowd.caption_sd, (n_captions, n))
    cols: dict[str, list] = {c: [] for c in ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                                              "true_count", "answer_count", "rank", "skipped", "skip_reason",
                                              "position", "seconds", "is_gold")}
    for plan in plans:
        for item, (left, right) in plan.positions.items():
            rater = who[(plan.slot, item)]
            c = int(item[1:])
            if kind[rater] == "left":
                outcome = 0
            elif kind[rater] == "random":
                outcome = int(rng.integers(0, 2))
            else:
                mean = (theta[left] + rater_effect[rater][left] + caption_effect[c, left] + crowd.left
                        - theta[right] - rater_effect[rater][right] - caption_effect[c, right])
                p = _outcome_probs(Crowd(crowd.name, crowd.link, crowd.nu, crowd.tau), np.array(mean), 0.0)
                outcome = int(rng.choice(3, p=p / p.sum()))
            ranks = ((1, 2), (2, 1), (1, 1))[outcome]
            for position, (v, rank) in enumerate(zip((left, right), ranks, strict=True)):
                cols["task"].append("rank")
                cols["item_id"].append(item)
                cols["evaluator_id"].append(rater)
                cols["variant"].append(f"m{v:02d}")
                cols["prompt"].append(item)
                cols["object"].append("")
                cols["true_count"].append(math.nan)
                cols["answer_count"].append(math.nan)
                cols["rank"].append(rank)
                cols["skipped"].append(False)
                cols["skip_reason"].append("")
                cols["position"].append(position)
                cols["seconds"].append(5.0)
                cols["is_gold"].append(False)
    return table_from_columns(cols, allow_ties=True)


def true_theta(n: int, spread: float) -> np.ndarray:
    """Log-strengths evenly spread over `spread` (0: the null of equal variants)."""
    return np.linspace(0.0, spread, n)


def one_study(crowd: Crowd, n: int, n_evaluators: int, tasks_each: int, overlap: int, spread: float,
              seed: int, n_boot: int, strengths: bool = True) -> dict:
    """One simulated study analysed by the pairs design's own functions, called as `analyze`
    calls them (`analysis._sections`); the strengths' bootstrap, the slow part, only when
    `strengths`."""
    theta = true_theta(n, spread)
    truth, true_strength, left_share = pair_truth(crowd, theta)
    table = simulate(crowd, theta, n_evaluators, tasks_each, overlap, seed)
    variants = [f"m{v:02d}" for v in range(n)]
    ev_ids, ev_code = np.unique(table["evaluator_id"], return_inverse=True)
    rng = np.random.default_rng(seed)
    v_eval = bs.draw_weights(len(ev_ids), n_boot, rng)
    data = _PairData.build(table, ev_code, variants)
    w_units = bs.draw_weights(data.n_units, n_boot, rng)
    out: dict = {"per_pair": data.n_rankings / (n * (n - 1) / 2)}
    if strengths:
        fit = pair_strengths(data, w_units, v_eval, LEVEL, allow_ties=True)
        ci = fit["strength_ci"]
        t = true_strength[fit["present"]]
        out["strength"] = float(np.mean((ci[:, 0] <= t) & (t <= ci[:, 1])))
    table_rows = _pair_table(data, LEVEL)
    target = np.array([truth[(variants.index(p.a), variants.index(p.b))] for p in table_rows])
    target = target[:, 0] / (target[:, 0] + target[:, 1])
    # The win-rate intervals reported, and those of the method before (the crossed bootstrap's
    # rescaled percentiles, a t interval under SMALL_GROUP captions) on the same rankings.
    done = np.flatnonzero(data.done)
    a_win, b_win = data.a_win[done], data.b_win[done]
    _, previous, _, _ = _ratio_intervals(data, done, data.pair[done], a_win, a_win + b_win, len(data.pairs),
                                         w_units, v_eval, LEVEL, 0.0, 1.0)
    for key, ci in (("win", np.array([p.win_rate_ci for p in table_rows], dtype=float)), ("win_before", previous)):
        ok = np.isfinite(ci).all(axis=1)
        out[key] = float(np.mean((ci[ok, 0] <= target[ok]) & (target[ok] <= ci[ok, 1])))
        out[f"{key}_width"] = float(np.mean(ci[ok, 1] - ci[ok, 0]))
    # Planned comparisons: neighbours in the true order (those a study would test), at most 6.
    planned = [(variants[k], variants[k + 1]) for k in range(0, n - 1, max(1, (n - 1) // 6))][:6]
    margins = pair_comparisons(data, planned, w_units, v_eval, LEVEL, EXACT_MAX_N)
    # The margin's interval reported (the ties-half win rate's score interval, mapped) and the
    # one before it (the crossed bootstrap's, as the win rate's before), on the same rankings.
    m_cover: dict[str, list[bool]] = {"margin": [], "margin_before": []}
    m_width: dict[str, list[float]] = {"margin": [], "margin_before": []}
    for m in margins:
        ia, ib = variants.index(m.a), variants.index(m.b)
        pa, pb, _ = truth[(ia, ib)]
        now_low, now_high = m.difference_ci
        if now_low is None or now_high is None:
            continue
        first, second = min(ia, ib), max(ia, ib)
        rows = np.flatnonzero(data.done & (data.a == first) & (data.b == second))
        margin = (1.0 if ia < ib else -1.0) * (data.a_win[rows] - data.b_win[rows])
        _, before, _, _ = _ratio_intervals(data, rows, np.zeros(len(rows), dtype=np.int64), margin,
                                           np.ones(len(rows)), 1, w_units, v_eval, LEVEL, -1.0, 1.0)
        for key, (low, high) in (("margin", (now_low, now_high)), ("margin_before", tuple(before[0].tolist()))):
            m_cover[key].append(low <= pa - pb <= high)
            m_width[key].append(high - low)
    p_values = [math.nan if m.p_value is None else m.p_value for m in margins]
    for key in m_cover:
        out[key] = float(np.mean(m_cover[key])) if m_cover[key] else math.nan
        out[f"{key}_width"] = float(np.mean(m_width[key])) if m_width[key] else math.nan
    out["reject"] = float(np.mean([p < 0.05 for p in p_values]))
    out["fwer"] = float(any(p < 0.05 for p in stats.holm(p_values)))
    pos = pair_position_bias(data, LEVEL, seed)
    if pos is None or pos.p_value is None:
        raise RuntimeError("a simulated study with no untied ranking")
    lo, hi = pos.left_win_rate_ci
    out["left_cover"] = float(lo is not None and hi is not None and lo <= left_share <= hi)
    out["position"] = float(pos.p_value < 0.05)
    return out


def _mean_se(values: Iterable[float | None]) -> tuple[float, float]:
    x = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan


# (variants, evaluators, tasks each, overlap)
SIZES = ((5, 20, 20, 4), (8, 30, 30, 6), (16, 40, 30, 6))
SPREAD = 2.0  # log-strengths from 0 to 2: the best variant preferred to the worst about 7 to 1


def _cell(runs: list[dict], key: str) -> str:
    mean, se = _mean_se(r[key] for r in runs)
    return f"{mean:.3f} ({se:.3f})"


def main(args: argparse.Namespace) -> None:
    started = time.time()
    lines = result_header("Pairs design under crowds unlike Davidson's model") + [
        f"{args.reps} studies per row ({args.null_reps} under the null), {args.n_boot} bootstrap resamples; "
        f"log-strengths evenly over [0, {args.spread}] (null: all equal); crowds in bench/pairs_crowds.py's docstring; "
        "(s.e.) over studies",
        "win rate: the pairs' win-rate intervals (ties left out) now (Wilson on the effective number of rankings) "
        "and before (the crossed bootstrap's rescaled percentiles, t under 10 captions), same rankings; "
        "coverage, mean width; margin: the planned comparisons' win-margin intervals now (the ties-half win "
        "rate's score interval, mapped) and before (the crossed bootstrap's), same rankings; coverage, mean width",
        "",
        " crowd     variants raters tasks rankings/pair  strength cov   win rate now        win rate before     "
        "margin now          margin before       left-share cov  position p<.05",
    ]
    crowds = args.crowds.split(",")
    for name in crowds:
        for n, raters, tasks, overlap in SIZES:
            runs = [one_study(CROWDS[name], n, raters, tasks, overlap, args.spread, 1000 * n + seed,
                              args.n_boot)
                    for seed in range(args.reps)]
            width, width_before, m_width, m_width_before = (
                np.nanmean([r[k] for r in runs]) for k in ("win_width", "win_before_width", "margin_width",
                                                           "margin_before_width"))
            lines.append(f" {name:<9} {n:>8} {raters:>6} {tasks:>5} {runs[0]['per_pair']:>13.1f}  "
                         f"{_cell(runs, 'strength')}  {_cell(runs, 'win')} {width:.3f}"
                         f"  {_cell(runs, 'win_before')} {width_before:.3f}"
                         f"  {_cell(runs, 'margin')} {m_width:.3f}  {_cell(runs, 'margin_before')} {m_width_before:.3f}"
                         f"  {_cell(runs, 'left_cover')}  {_cell(runs, 'position')}")
            print(lines[-1], file=sys.stderr, flush=True)
    if args.null_reps:
        lines += ["", "Null of equal variants: the planned win-margin comparisons' crossed t rejection rate at 0.05 "
                  "(unadjusted, per comparison), the family-wise rate after Holm, the position test's rejection "
                  "rate (its size where the crowd has no left pull: davidson, probit)", "",
                  " crowd     variants raters tasks  reject/comparison  family-wise (Holm)  win rate now   "
                  "win rate before  position p<.05"]
        for name in crowds:
            for n, raters, tasks, overlap in SIZES:
                runs = [one_study(CROWDS[name], n, raters, tasks, overlap, 0.0, 7000 + 1000 * n + seed,
                                  args.n_boot, strengths=False) for seed in range(args.null_reps)]
                lines.append(f" {name:<9} {n:>8} {raters:>6} {tasks:>5}  {_cell(runs, 'reject')}     "
                             f"{_cell(runs, 'fwer')}      {_cell(runs, 'win')}  {_cell(runs, 'win_before')}   "
                             f"{_cell(runs, 'position')}")
                print(lines[-1], file=sys.stderr, flush=True)
    lines.append(result_footer(started))
    stem = "pairs_crowds" if args.spread == SPREAD else f"pairs_crowds-spread{args.spread:g}"
    emit_result(stem, "\n".join(lines) + "\n", write=args.write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--null-reps", type=int, default=24)
    parser.add_argument("--n-boot", type=int, default=400)
    parser.add_argument("--crowds", default=",".join(CROWDS))
    parser.add_argument("--spread", type=float, default=SPREAD,
                        help="log-strengths evenly over [0, SPREAD]; a large one (20) puts neighbours near a "
                             "sweep, where the margin's interval meets its bound")
    parser.add_argument("--write", action="store_true", help="save under bench/results/")
    main(parser.parse_args())
