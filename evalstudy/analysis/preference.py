"""The rank task: preference scores, Plackett-Luce strengths, the ranking skip rate.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import numpy as np

from .. import bootstrap as bs
from .. import stats
from .data import _RankData, group_range, kish_raters


def _preference_section(r: _RankData, w_units: np.ndarray, v_eval: np.ndarray,
                        level: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    out: dict[str, Any] = {"by_variant": [], "ranking_skip_rate": math.nan, "ranking_skip_rate_ci": [math.nan] * 2,
           "skip_reasons": {}, "by_item": [],
           "n_rankings": r.n_rankings, "n_ranked": int(r.done.sum()), "m": r.m}
    reps_out: dict[str, np.ndarray] = {}
    if r.n_rankings == 0 or r.m < 2:
        return out, reps_out
    nv = len(r.variants)
    present = r.present
    n_boot = w_units.shape[0]
    k_orders = len(r.orderings)
    done_idx = np.flatnonzero(r.done)
    # Weighted counts of each ordering, per resample: everything else follows from them.
    def order_counts(w, v):
        return bs.crossed_sums(r.ranking_unit[done_idx], r.ranking_evaluator[done_idx], r.perm,
                               np.ones(len(done_idx)), k_orders, w, v)

    counts = order_counts(w_units, v_eval)
    point_counts = np.bincount(r.perm, minlength=k_orders).astype(float)
    # score of variant present[j] in ordering k: m - (its place in the ordering)
    place = np.argsort(r.orderings, axis=1)  # (K, m): place of each present variant
    score_of = r.m - place
    with np.errstate(invalid="ignore", divide="ignore"):
        score_reps_p = (counts @ score_of) / counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # every ranking skipped: NaN
        score_point_p = point_counts @ score_of / point_counts.sum()
    rows_done = ~r.skipped
    row_score = np.where(rows_done, r.m + 1 - np.nan_to_num(r.rank), 0.0)
    spread_p = bs.ratio_corrections(r.unit[rows_done], r.evaluator[rows_done], r.variant[rows_done],
                                    row_score[rows_done], np.ones(int(rows_done.sum())), nv, level)
    score_low, score_high = group_range(r.variant, row_score, rows_done, nv)
    score_ci = bs.spread_intervals(score_point_p, score_reps_p, level,
                                   bs.Spread(*(part[present] for part in spread_p)),
                                   score_low[present], score_high[present])

    # Plackett-Luce strengths, with the same shrinkage estimated from one-way resamples.
    gamma_point = stats.plackett_luce_mm(point_counts[None, :], r.orderings)[0]
    gamma_reps = stats.plackett_luce_mm(counts, r.orderings, init=gamma_point)
    gamma_units = stats.plackett_luce_mm(order_counts(w_units, np.ones_like(v_eval)),
                                         r.orderings, init=gamma_point)
    gamma_evals = stats.plackett_luce_mm(order_counts(np.ones_like(w_units), v_eval),
                                         r.orderings, init=gamma_point)
    # One-way resamples estimate V_units and V_evaluators; the product weights add V_cells.
    with warnings.catch_warnings():  # all-NaN columns when every ranking was skipped
        warnings.simplefilter("ignore", RuntimeWarning)
        var_p, var_u, var_e = (np.nanvar(g, axis=0)
                               for g in (gamma_reps, gamma_units, gamma_evals))
    n_u = len(np.unique(r.ranking_unit[done_idx]))
    n_e = len(np.unique(r.ranking_evaluator[done_idx]))
    # A one-way bootstrap's variance is kappa times the unbiased one, kappa the centring
    # factor of the units' (evaluators') shares of the rankings: with raters' loads from
    # 2 to hundreds it is far below (n - 1) / n (see bootstrap.centring_factors).
    one_group = np.zeros(len(done_idx), dtype=np.int64)
    ones_done = np.ones(len(done_idx))
    kappa_u, kappa_e = (np.full(len(present), bs.centring_factors(key[done_idx], one_group, ones_done, 1)[0])
                        for key in (r.ranking_unit, r.ranking_evaluator))
    shrink_pl = bs.shrink_factors(var_u, var_e, np.maximum(var_p - var_u - var_e, 0.0),
                                  np.full(len(present), n_u), np.full(len(present), n_e), level,
                                  c_units=kappa_u, c_evals=kappa_e)
    gamma_ci = bs.intervals(gamma_point, gamma_reps, level, shrink_pl, 0.0, 1.0)

    # The ranking skip rate: skipped rankings over rankings shown. A skip covers the
    # whole ranking and names no variant, so there is one rate, not one per variant.
    ones = np.ones(r.n_rankings)
    skipped = r.ranking_skipped.astype(float)
    no_group = np.zeros(r.n_rankings, dtype=np.int64)
    sk = bs.crossed_sums(np.concatenate([r.ranking_unit, r.ranking_unit]),
                         np.concatenate([r.ranking_evaluator, r.ranking_evaluator]),
                         np.concatenate([no_group, no_group + 1]),
                         np.concatenate([ones, skipped]), 2, w_units, v_eval)
    skip_est = float(skipped.mean())
    skip_shrink = bs.ratio_shrink(r.ranking_unit, r.ranking_evaluator, no_group, skipped, ones,
                                  1, level)
    skip_ci = bs.intervals(np.array([skip_est]), bs.ratio_replicates(sk[:, 1:], sk[:, :1]),
                           level, skip_shrink, *group_range(no_group, skipped, ones > 0, 1))
    shown_pt = np.bincount(r.variant, minlength=nv).astype(float)

    score_full = np.full((n_boot, nv), np.nan)
    score_full[:, present] = score_reps_p
    reps_out = {"score": score_full}
    n_done = np.bincount(r.variant[rows_done], minlength=nv)
    raters_effective = kish_raters(r.variant[rows_done], r.evaluator[rows_done],
                                   np.ones(int(rows_done.sum())), nv)
    for j, v in enumerate(present):
        out["by_variant"].append({
            "variant": r.variants[v],
            "score": score_point_p[j],
            "score_ci": score_ci[j].tolist(),
            "mean_rank": r.m + 1 - score_point_p[j],
            "n": int(n_done[v]),
            "n_shown": int(shown_pt[v]),
            "n_raters": int(spread_p.n_evals[v]),
            "n_raters_effective": float(raters_effective[v]),
            "rank_counts": [int(x) for x in np.bincount(
                r.rank[(r.variant == v) & rows_done].astype(int) - 1, minlength=r.m)],
            "pl_strength": gamma_point[j],
            "pl_strength_ci": gamma_ci[j].tolist(),
        })
    out["ranking_skip_rate"] = skip_est
    out["ranking_skip_rate_ci"] = skip_ci[0].tolist()
    reasons: Counter[str] = Counter()
    first_row = np.unique(r.ranking, return_index=True)[1]
    for k in first_row[r.skipped[first_row]]:
        reasons[r.skip_reason[k] or "(none given)"] += 1
    out["skip_reasons"] = dict(sorted(reasons.items()))
    item_prompt: dict[int, str] = {}
    for u, p in zip(r.unit[first_row].tolist(), r.prompt[first_row].tolist(), strict=True):
        item_prompt.setdefault(u, p)
    shown_by_item = np.bincount(r.ranking_unit, minlength=r.n_units)
    skipped_by_item = np.bincount(r.ranking_unit, weights=r.ranking_skipped, minlength=r.n_units)
    for u in range(r.n_units):
        out["by_item"].append({"item_id": r.unit_ids[u], "prompt": item_prompt.get(u, ""),
                               "n_shown": int(shown_by_item[u]),
                               "n_skipped": int(skipped_by_item[u]),
                               "ranking_skip_rate": skipped_by_item[u] / shown_by_item[u]})
    return out, reps_out
