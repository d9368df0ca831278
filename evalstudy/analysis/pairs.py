"""Every pair of variants: how often one image was ranked above the other, how often they
were tied, and Bradley-Terry-Davidson strengths for rankings with ties.

A ranking of m images holds m (m - 1) / 2 pairs; each is a win for one image or a tie.
The win rate of a over b counts the rankings that did not tie them (ties left out:
"of the times raters told them apart, how often was a better"); the tie rate, beside it,
is the share of rankings that tied them; the sensitivity row counts a tie as half a win
for each, over all rankings. Intervals: Wilson's score interval on each rate's effective
number of rankings (`data.rate_intervals`, the crossed variance of captions and raters).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import bootstrap as bs
from .. import confidence, rank_models
from .data import Array, _RankData, rate_intervals
from .result import PairStat

TIES_NOTE = ("win_rate: a ranked above b over the rankings that did not tie them (ties left "
             "out); tie_rate: rankings that tied them over all rankings; "
             "win_rate_ties_half: (a above b + half the ties) over all rankings, the "
             "sensitivity row that counts a tie as half a win for each")


def _pair_codes(r: _RankData) -> list[tuple[int, int]]:
    """(j, k) indices into r.present, in the protocol's variant order."""
    return list(itertools.combinations(range(len(r.present)), 2))


def pairwise_section(r: _RankData, level: float, allow_ties: bool) -> list[PairStat]:
    """One record per pair of variants (a before b in the protocol's order), each rate with
    `data.rate_intervals` over the rankings' outcomes for that pair. Where ties were not
    allowed (`allow_ties` False and no ranking tied) the tie rate is 0 by construction and
    its interval [0, 0]: nothing is estimated there."""
    done_idx = np.flatnonzero(r.done)
    if len(done_idx) == 0:
        return []
    win, tie = rank_models.pair_outcomes(r.patterns)       # (K, m, m)
    pairs = _pair_codes(r)
    n_pairs = len(pairs)
    a_idx = np.array([j for j, _ in pairs])
    b_idx = np.array([k for _, k in pairs])
    win_a, win_b, tied = win[:, a_idx, b_idx], win[:, b_idx, a_idx], tie[:, a_idx, b_idx]  # (K, P)
    point = np.bincount(r.perm, minlength=len(r.patterns)).astype(float)
    # Per ranking and pair: the outcome, each ranking's caption and rater.
    pat = r.perm
    unit = np.repeat(r.ranking_unit[done_idx], n_pairs)
    evaluator = np.repeat(r.ranking_evaluator[done_idx], n_pairs)
    group = np.tile(np.arange(n_pairs), len(done_idx))
    wa, wb, tt = (x[pat].ravel() for x in (win_a, win_b, tied))
    ones = np.ones_like(wa)
    out: list[PairStat] = []
    rates = {
        "win_rate": (wa, wa + wb, win_a, win_a + win_b),
        "tie_rate": (tt, ones, tied, np.ones_like(tied)),
        "win_rate_ties_half": (wa + tt / 2, ones, win_a + tied / 2, np.ones_like(tied)),
        # Shares of all rankings: a better, b better (with the tie rate, the three parts
        # of the win / tie / loss bar).
        "a_rate": (wa, ones, win_a, np.ones_like(tied)),
        "b_rate": (wb, ones, win_b, np.ones_like(tied)),
    }
    est: dict[str, np.ndarray] = {}
    ci: dict[str, np.ndarray] = {}
    for name, (num_rows, den_rows, num_pat, den_pat) in rates.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            est[name] = (point @ num_pat) / (point @ den_pat)
        ci[name] = rate_intervals(unit, evaluator, group, num_rows, den_rows, n_pairs, level)
    if not (allow_ties or r.has_ties):
        ci["tie_rate"] = np.zeros((n_pairs, 2))
    n = float(point.sum())
    for p, (j, k) in enumerate(pairs):
        out.append(PairStat(
            a=r.variants[r.present[j]], b=r.variants[r.present[k]],
            n=int(n),
            a_wins=int(point @ win_a[:, p]), b_wins=int(point @ win_b[:, p]),
            ties=int(point @ tied[:, p]),
            win_rate=est["win_rate"][p], win_rate_ci=ci["win_rate"][p].tolist(),
            tie_rate=est["tie_rate"][p], tie_rate_ci=ci["tie_rate"][p].tolist(),
            win_rate_ties_half=est["win_rate_ties_half"][p],
            win_rate_ties_half_ci=ci["win_rate_ties_half"][p].tolist(),
            a_rate=est["a_rate"][p], a_rate_ci=ci["a_rate"][p].tolist(),
            b_rate=est["b_rate"][p], b_rate_ci=ci["b_rate"][p].tolist(),
        ))
    return out


# order_counts(w, v): (B, K) weights of a section's rankings under unit weights w (B, n_units)
# and evaluator weights v (B, n_evaluators).
OrderCounts = Callable[[Array, Array], Array]


def davidson_strengths(r: _RankData, order_counts: OrderCounts, w_units: np.ndarray, v_eval: np.ndarray,
                       level: float) -> dict[str, Any]:
    """Bradley-Terry strengths with ties (Davidson 1970) of the present variants, each
    ranking read as its pairs, each tie a Davidson tie between the tied images; intervals
    from the crossed bootstrap with the shrinkage the Plackett-Luce strengths use.

    order_counts(w, v) -> (B, K) weights of r.patterns under unit weights w and
    evaluator weights v."""
    win, tie = rank_models.pair_outcomes(r.patterns)
    point_counts = np.bincount(r.perm, minlength=len(r.patterns)).astype(float)

    def fit(counts: Array, init: tuple[Array, Array] | None = None) -> tuple[Array, Array]:
        wins = np.einsum("bk,kij->bij", counts, win)
        ties = np.einsum("bk,kij->bij", counts, tie)
        return rank_models.davidson_fit(wins, ties, init=init)

    g_point, nu_point = fit(point_counts[None, :])
    init = (g_point[0], nu_point)
    g_reps, nu_reps = fit(order_counts(w_units, v_eval), init)
    g_units, nu_units = fit(order_counts(w_units, np.ones_like(v_eval)), init)
    g_evals, nu_evals = fit(order_counts(np.ones_like(w_units), v_eval), init)
    done_idx = np.flatnonzero(r.done)
    units, evaluators = r.ranking_unit[done_idx], r.ranking_evaluator[done_idx]
    shrink = strength_shrink(units, evaluators, g_reps, g_units, g_evals, level)
    g_ci = confidence.intervals(g_point[0], g_reps, level, shrink, 0.0, 1.0)
    # nu on its log scale, where its bootstrap is nearer symmetric; bounded as the fit is.
    log_nu = [np.log(x)[:, None] for x in (nu_reps, nu_units, nu_evals)]
    nu_shrink = strength_shrink(units, evaluators, log_nu[0], log_nu[1], log_nu[2], level)
    bound = rank_models.DAVIDSON_LOG_BOUND
    nu_ci = confidence.intervals(np.log(nu_point), log_nu[0], level, nu_shrink, -bound, bound)
    return {"strength": g_point[0], "strength_ci": g_ci,
            "tie_parameter": float(nu_point[0]),
            "tie_parameter_ci": [math.exp(x) for x in nu_ci[0]]}


def strength_shrink(units: ArrayLike, evaluators: ArrayLike, g_reps: Array, g_units: Array, g_evals: Array,
                    level: float) -> np.ndarray:
    """Shrink factors (G,) for a model's (B, G) product-weight bootstrap replicates, from
    its one-way resamples of the items (g_units) and of the raters (g_evals): they
    estimate V_units and V_evaluators, and the product weights add V_cells. `units` and
    `evaluators`: the item and rater codes of the rankings fitted (those done)."""
    units, evaluators = np.asarray(units, dtype=np.int64), np.asarray(evaluators, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var_p, var_u, var_e = (np.nanvar(g, axis=0) for g in (g_reps, g_units, g_evals))
    n_u = len(np.unique(units))
    n_e = len(np.unique(evaluators))
    one_group = np.zeros(len(units), dtype=np.int64)
    ones_done = np.ones(len(units))
    k = g_reps.shape[1]
    # A one-way bootstrap's variance is kappa times the unbiased one, kappa the centring
    # factor of the units' (evaluators') shares of the rankings: with raters' loads from
    # 2 to hundreds it is far below (n - 1) / n (see bootstrap.centring_factors).
    kappa_u, kappa_e = (np.full(k, bs.centring_factors(key, one_group, ones_done, 1)[0])
                        for key in (units, evaluators))
    return bs.shrink_factors(var_u, var_e, np.maximum(var_p - var_u - var_e, 0.0),
                             np.full(k, n_u), np.full(k, n_e), level,
                             c_units=kappa_u, c_evals=kappa_e)
