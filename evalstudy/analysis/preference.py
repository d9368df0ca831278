"""The rank task: preference scores, Plackett-Luce (or, with ties, Bradley-Terry-Davidson)
strengths, every pair's win and tie rates, the ranking skip rate.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from scipy import stats as sps

from .. import bootstrap as bs
from .. import confidence, rank_models
from .data import Rankings, _RankData, kish_raters, parameter_range, rate_intervals
from .pairs import TIES_NOTE, OrderCounts, davidson_strengths, pairwise_section, strength_shrink
from .result import ItemSkips, PreferenceSection, PreferenceStat, edge_interval_note

# Shown where the point's win graph is not strongly connected (rank_models.win_graph).
SEPARATION_NOTE = ("Some variant is ranked above another in every ranking that shows both (or a group of "
                   "variants above the rest): the strengths have no finite maximum-likelihood estimate. "
                   "Those shown are the limit the likelihood approaches (the top group's own fit, 0 or near "
                   "0 for the variants always below it), and so are the resamples' behind the intervals; the "
                   "preference scores and pairwise win rates are unaffected and are the numbers to read.")
# Shown, with ties, where the win graph is strongly connected but Davidson's likelihood still
# has no finite maximum (rank_models.davidson_separation): wins and ties that fit ever better
# as the tie parameter, and the strengths' spread with it, grow without end.
DAVIDSON_SEPARATION_NOTE = (
    "The wins and ties are arranged so that the Bradley-Terry-Davidson strengths and tie parameter have "
    "no finite maximum-likelihood estimate (the fit improves without end as the tie parameter and the "
    "strengths' spread grow together): the strengths shown are where the fit stopped, near the "
    "likelihood's supremum, and so are the resamples' behind the intervals; the tie parameter is not "
    "reported (it would be wherever the fit stopped, e.g. 2.7e10 when every answer is a tie); the "
    "preference scores and pairwise win and tie rates are unaffected and are the numbers to read.")


def _scores(r: _RankData, counts: np.ndarray, point_counts: np.ndarray,
            level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bs.Spread]:
    """Preference scores of the present variants (rank 1 of m scores m; a tied group its
    mid-rank): the point (n_present,), the resamples (n_boot, n_present) from the
    orderings' resampled counts, the intervals (n_present, 2), and the spread parts of
    every variant (whose ``n_evals`` are the raters per variant)."""
    nv = len(r.variants)
    present = r.present
    if not r.has_ties:
        # score of variant present[j] in ordering k: m - (its place in the ordering)
        place = np.argsort(r.orderings, axis=1)  # (K, m): place of each present variant
        score_of = r.m - place
    else:  # rank r of m scores m + 1 - r, a tied group its mid-rank
        score_of = r.m + 1 - sps.rankdata(r.patterns, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score_reps_p = (counts @ score_of) / counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # every ranking skipped: NaN
        score_point_p = point_counts @ score_of / point_counts.sum()
    rows_done = ~r.skipped
    row_score = np.where(rows_done, r.m + 1 - np.nan_to_num(r.rank), 0.0)
    spread_p = bs.ratio_corrections(r.unit[rows_done], r.evaluator[rows_done], r.variant[rows_done],
                                    row_score[rows_done], np.ones(int(rows_done.sum())), nv, level)
    score_ci = confidence.spread_intervals(score_point_p, score_reps_p, level,
                                           bs.Spread(*(part[present] for part in spread_p)),
                                           *parameter_range("score", r.m))
    return score_point_p, score_reps_p, score_ci, spread_p


def _plackett_luce(r: _RankData, order_counts: OrderCounts, counts: np.ndarray, point_counts: np.ndarray,
                   w_units: np.ndarray, v_eval: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Plackett-Luce strengths of the present variants (full rankings only): the point and
    the intervals, with the crossed resamples' shrinkage taken from one-way resamples."""
    gamma_point = rank_models.plackett_luce_mm(point_counts[None, :], r.orderings)[0]
    # A separated study's point is the supremum's limit (some strengths exactly 0): the
    # resamples start from equal strengths, as 0 cannot be left by multiplicative updates.
    gamma_point_init = gamma_point if (gamma_point > 0).all() else None
    gamma_reps = rank_models.plackett_luce_mm(counts, r.orderings, init=gamma_point_init)
    gamma_units = rank_models.plackett_luce_mm(order_counts(w_units, np.ones_like(v_eval)),
                                               r.orderings, init=gamma_point_init)
    gamma_evals = rank_models.plackett_luce_mm(order_counts(np.ones_like(w_units), v_eval),
                                               r.orderings, init=gamma_point_init)
    done_idx = np.flatnonzero(r.done)
    shrink_pl = strength_shrink(r.ranking_unit[done_idx], r.ranking_evaluator[done_idx],
                                gamma_reps, gamma_units, gamma_evals, level)
    return gamma_point, confidence.intervals(gamma_point, gamma_reps, level, shrink_pl, 0.0, 1.0)


def _ranking_skip_rate(r: Rankings, level: float) -> tuple[float, np.ndarray]:
    """Skipped rankings over rankings shown, and its interval (2,) (`data.rate_intervals`: a
    study where nobody skipped gets [0, upper], not [0, 0]). A skip covers the whole ranking
    and names no variant, so there is one rate, not one per variant."""
    skipped = r.ranking_skipped.astype(float)
    no_group = np.zeros(r.n_rankings, dtype=np.int64)
    skip_ci = rate_intervals(r.ranking_unit, r.ranking_evaluator, no_group, skipped, np.ones(r.n_rankings), 1, level)
    return float(skipped.mean()), skip_ci[0]


def _skips_by_item(r: Rankings) -> tuple[dict[str, int], list[ItemSkips]]:
    """The skip reasons given (sorted by reason), and each item's rankings shown and skipped."""
    reasons: Counter[str] = Counter()
    first_row = np.unique(r.ranking, return_index=True)[1]
    for k in first_row[r.skipped[first_row]]:
        reasons[r.skip_reason[k] or "(none given)"] += 1
    item_prompt: dict[int, str] = {}
    for u, p in zip(r.unit[first_row].tolist(), r.prompt[first_row].tolist(), strict=True):
        item_prompt.setdefault(u, p)
    shown_by_item = np.bincount(r.ranking_unit, minlength=r.n_units)
    skipped_by_item = np.bincount(r.ranking_unit, weights=r.ranking_skipped, minlength=r.n_units)
    by_item = [ItemSkips(item_id=r.unit_ids[u], prompt=item_prompt.get(u, ""),
                         n_shown=int(shown_by_item[u]), n_skipped=int(skipped_by_item[u]),
                         ranking_skip_rate=skipped_by_item[u] / shown_by_item[u])
               for u in range(r.n_units)]
    return dict(sorted(reasons.items())), by_item


def _preference_section(
        r: _RankData, w_units: np.ndarray, v_eval: np.ndarray,
        level: float, allow_ties: bool = False) -> tuple[PreferenceSection, dict[str, np.ndarray]]:
    """The section, and the resampled scores (n_boot, nv) under "score", which the paired
    tests difference. `allow_ties`: the protocol's (a tie rate is then estimated even where
    no ranking tied)."""
    reps_out: dict[str, np.ndarray] = {}
    if r.n_rankings == 0 or r.m < 2:
        return PreferenceSection(by_variant=[], ranking_skip_rate=None, ranking_skip_rate_ci=[None, None],
                                 skip_reasons={}, by_item=[], n_rankings=r.n_rankings,
                                 n_ranked=int(r.done.sum()), m=r.m), reps_out
    nv = len(r.variants)
    present = r.present
    n_boot = w_units.shape[0]
    k_orders = len(r.patterns)
    done_idx = np.flatnonzero(r.done)
    # Weighted counts of each ordering, per resample: everything else follows from them.
    def order_counts(w: np.ndarray, v: np.ndarray) -> np.ndarray:
        return bs.crossed_sums(r.ranking_unit[done_idx], r.ranking_evaluator[done_idx], r.perm,
                               np.ones(len(done_idx)), k_orders, w, v)

    counts = order_counts(w_units, v_eval)
    point_counts = np.bincount(r.perm, minlength=k_orders).astype(float)
    score_point_p, score_reps_p, score_ci, spread_p = _scores(r, counts, point_counts, level)

    # Strengths: Plackett-Luce for full rankings; with ties, Bradley-Terry-Davidson on
    # the rankings' pairs. Intervals with the same shrinkage, from one-way resamples.
    pl_point = pl_ci = None
    davidson: dict[str, Any] | None = None
    if not r.has_ties:
        pl_point, pl_ci = _plackett_luce(r, order_counts, counts, point_counts, w_units, v_eval, level)
        connected, _ = rank_models.plackett_luce_separation(point_counts, r.orderings)
    else:
        davidson = davidson_strengths(r, order_counts, w_units, v_eval, level)
        win, tie = rank_models.pair_outcomes(r.patterns)
        beats = np.einsum("k,kij->ij", point_counts, win + tie) > 0  # a tie counts both ways
        connected, _ = rank_models.win_graph(beats)
        davidson_finite = rank_models.davidson_separation(np.einsum("k,kij->ij", point_counts, win),
                                                          np.einsum("k,kij->ij", point_counts, tie))
    strength_note = ""
    if point_counts.sum() > 0 and not connected[0]:
        strength_note = SEPARATION_NOTE
        if davidson is not None and not davidson_finite[0]:
            strength_note += (" The Bradley-Terry-Davidson tie parameter has no finite estimate either "
                              "and is not reported.")
    elif davidson is not None and point_counts.sum() > 0 and not davidson_finite[0]:
        strength_note = DAVIDSON_SEPARATION_NOTE

    skip_est, skip_ci = _ranking_skip_rate(r, level)
    shown_pt = np.bincount(r.variant, minlength=nv).astype(float)

    score_full = np.full((n_boot, nv), np.nan)
    score_full[:, present] = score_reps_p
    reps_out = {"score": score_full}
    rows_done = ~r.skipped
    n_done = np.bincount(r.variant[rows_done], minlength=nv)
    raters_effective = kish_raters(r.variant[rows_done], r.evaluator[rows_done],
                                   np.ones(int(rows_done.sum())), nv)
    # Rankings in which the variant shares its rank with another image.
    pattern_ties = (np.sum(r.patterns[:, :, None] == r.patterns[:, None, :], axis=2) > 1)
    tied_with_other = point_counts @ pattern_ties if len(r.patterns) else np.zeros(len(present))
    n_rankings_done = float(point_counts.sum())
    by_variant = [PreferenceStat(
        variant=r.variants[v],
        score=score_point_p[j],
        score_ci=score_ci[j].tolist(),
        mean_rank=r.m + 1 - score_point_p[j],
        n=int(n_done[v]),
        n_shown=int(shown_pt[v]),
        n_raters=int(spread_p.n_evals[v]),
        n_raters_effective=float(raters_effective[v]),
        rank_counts=[int(x) for x in np.bincount(
            r.rank_stored[(r.variant == v) & rows_done].astype(int) - 1, minlength=r.m)],
        pl_strength=pl_point[j] if pl_point is not None else None,
        pl_strength_ci=pl_ci[j].tolist() if pl_ci is not None else [None, None],
        tie_rate=float(tied_with_other[j] / n_rankings_done) if n_rankings_done else None,
        bt_strength=davidson["strength"][j] if davidson else None,
        bt_strength_ci=davidson["strength_ci"][j].tolist() if davidson else [None, None],
    ) for j, v in enumerate(present)]
    reasons, by_item = _skips_by_item(r)
    pairs = pairwise_section(r, level, allow_ties)
    # The pairs' rates have width wherever they have rankings (`data.rate_intervals`); a score
    # every ranking puts first can still get a point interval.
    edges = [(p.score, p.score_ci, 1.0, float(r.m)) for p in by_variant]
    # A tie parameter without a finite estimate is not reported (see DAVIDSON_SEPARATION_NOTE):
    # the number there would be where Newton's iterations stopped (2.7e10 when every answer
    # is a tie), not an estimate.
    nu_finite = davidson is not None and point_counts.sum() > 0 and bool(davidson_finite[0])
    section = PreferenceSection(
        by_variant=by_variant,
        ranking_skip_rate=skip_est,
        ranking_skip_rate_ci=skip_ci.tolist(),
        skip_reasons=reasons,
        by_item=by_item,
        n_rankings=r.n_rankings,
        n_ranked=int(r.done.sum()),
        m=r.m,
        pairs=pairs,
        pairs_note=TIES_NOTE,
        has_ties=r.has_ties,
        strength_model=("plackett-luce" if not r.has_ties
                        else "davidson (Bradley-Terry with ties, on each ranking's pairs)"),
        bt_tie_parameter=davidson["tie_parameter"] if davidson and nu_finite else None,
        bt_tie_parameter_ci=davidson["tie_parameter_ci"] if davidson and nu_finite else [None, None],
        strength_note=strength_note,
        edge_note=edge_interval_note(edges),
    )
    return section, reps_out
