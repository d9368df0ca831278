"""The rank task of a pairs study (preference_task.design "pairs"): each ranking shows two
of the variants, so a ranking is one comparison of one pair, won by one image or tied.

What is reported, and why not the ranking design's numbers:
* per pair shown: wins, ties and losses, and the rates of `analysis.pairs` (win rate with
  ties left out, tie rate, ties-half sensitivity row, the shares of the win / tie / loss
  bar), over the rankings that showed that pair; Wilson score intervals on the effective
  number of rankings that the crossed design's variance (captions and raters) leaves, one
  ratio per pair;
* per variant: Bradley-Terry-Davidson strengths over every variant (`rank_models.davidson_fit`
  on the wins and ties of all pairs; with ties not allowed the tie parameter goes to 0 and
  the fit is Bradley-Terry's), intervals from the same crossed bootstrap and the shrinkage
  the ranking design's strengths use. A variant's mean rank is not reported: its value
  depends on the opponents it happened to meet, which the strengths take into account;
* the planned comparisons: the pair's win margin, (a wins - b wins) / rankings of the pair,
  in [-1, 1], from the rankings that showed a and b together, with the crossed t test and the
  ties-half win rate's score interval mapped onto the margin (`margin_interval`);
* position bias: the share of untied rankings won by the left image, its interval, and a
  permutation test that swaps the sides within each pair;
* agreement: Krippendorff's alpha (ordinal: a better, tie, b better) over (caption, pair)
  units that two raters or more judged; Friedman, Nemenyi and Kendall's W need full
  rankings and are not computed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from .. import bootstrap as bs
from .. import confidence, rank_models, stats
from ..responses import ResponseTable
from .data import _codes, kish_raters, rate_intervals
from .pairs import TIES_NOTE, strength_shrink
from .preference import DAVIDSON_SEPARATION_NOTE, SEPARATION_NOTE, _ranking_skip_rate, _skips_by_item
from .result import (
    Alpha,
    PairedTest,
    PairStat,
    PositionBias,
    PreferenceSection,
    PreferenceStat,
)
from .significance import crossed_t_test

Array = np.ndarray

PAIRS_STRENGTH_MODEL = "davidson (Bradley-Terry with ties) on the pairs shown"
PAIRS_STRENGTH_MODEL_NO_TIES = "bradley-terry on the pairs shown"
WIN_MARGIN = "win_margin"
WIN_MARGIN_METHOD = ("crossed t: win margin (a wins - b wins over the rankings that showed a and b) / its "
                     "crossed-bootstrap standard error (captions and raters) on t with Satterthwaite's df")
WIN_MARGIN_WILCOXON = ("Wilcoxon signed-rank on the per-caption mean margins, secondary: treats the captions "
                       "as independent although raters judge several")
POSITION_PERMUTATIONS = 2000
PAIRS_POSITION_METHOD = ("permutation test: which image was on the left swapped at random within each pair's "
                         "untied rankings; statistic: the share of untied rankings won by the left image")
PAIRS_AGREEMENT_UNITS = "(caption, pair) units judged by two raters or more"


def is_pairs_table(t: ResponseTable) -> bool:
    """Whether the responses' rankings (first showings) each rank two images and, together,
    more than two variants: a pairs study's table. Repeats are left out, as by the analysis."""
    mask = (t["task"] == "rank") & (t["repeat_of"] == "")
    if not mask.any():
        return False
    keys = np.char.add(np.char.add(t["evaluator_id"][mask], "\x1f"), t["item_id"][mask])
    _, sizes = np.unique(keys, return_counts=True)
    return bool((sizes == 2).all() and len(set(t["variant"][mask].tolist())) > 2)


class _PairData:
    """The rank rows of a pairs study: one record per ranking (evaluator x caption), its two
    variants a < b in the protocol's order. The per-row arrays (`ranking`, `unit`, `skipped`,
    `skip_reason`, `prompt`) are those the ranking design's skip rate reads."""

    variants: list[str]
    n_rankings: int
    unit_ids: list
    n_units: int
    # per row
    ranking: Array
    unit: Array
    skipped: Array
    skip_reason: Array
    prompt: Array
    # per ranking
    ranking_unit: Array
    ranking_evaluator: Array
    ranking_skipped: Array
    done: Array
    a: Array
    b: Array
    a_left: Array          # bool: a's image was on the left
    a_win: Array           # 1.0 where a was ranked above b (0 on a skip)
    b_win: Array
    tie: Array
    pair: Array            # index into `pairs`, -1 for a pair with no ranking done
    pairs: list[tuple[int, int]]   # (a, b) with a ranking done, in the protocol's order

    @classmethod
    def build(cls, t: ResponseTable, ev_code: np.ndarray, variants: list[str]) -> _PairData:
        self = cls()
        mask = (t["task"] == "rank") & (t["repeat_of"] == "")
        self.variants = variants
        variant, _ = _codes(t["variant"][mask], variants)
        self.unit, self.unit_ids = _codes(t["item_id"][mask])
        self.n_units = len(self.unit_ids)
        evaluator = ev_code[mask]
        self.skipped = t["skipped"][mask]
        self.skip_reason = t["skip_reason"][mask]
        self.prompt = t["prompt"][mask]
        n_ev = int(ev_code.max()) + 1 if len(ev_code) else 1
        key = self.unit * n_ev + evaluator
        uniq, self.ranking = np.unique(key, return_inverse=True)
        self.ranking = self.ranking.reshape(-1)
        self.n_rankings = len(uniq)
        self.ranking_unit = uniq // n_ev
        self.ranking_evaluator = uniq % n_ev
        if (np.bincount(self.ranking, minlength=self.n_rankings) != 2).any():
            raise ValueError("a pairs study's ranking ranks two images; some ranking here ranks another number")
        # The two rows of each ranking, the one of the variant first in the protocol's order first.
        rows = np.lexsort((variant, self.ranking)).reshape(-1, 2)
        first, second = rows[:, 0], rows[:, 1]
        self.a, self.b = variant[first], variant[second]
        if (self.a == self.b).any():
            raise ValueError("a ranking of a pairs study shows one variant twice")
        rank, position = t["rank"][mask], t["position"][mask]
        self.a_left = position[first] < position[second]
        self.ranking_skipped = self.skipped[first] | self.skipped[second]
        self.done = ~self.ranking_skipped
        ra, rb = np.nan_to_num(rank[first]), np.nan_to_num(rank[second])
        self.a_win = (self.done & (ra < rb)).astype(float)
        self.b_win = (self.done & (rb < ra)).astype(float)
        self.tie = (self.done & (ra == rb)).astype(float)
        nv = len(variants)
        codes = self.a * nv + self.b
        shown = np.unique(codes[self.done])
        self.pairs = [(int(c // nv), int(c % nv)) for c in shown.tolist()]
        lookup = {c: k for k, c in enumerate(shown.tolist())}
        self.pair = np.array([lookup.get(c, -1) for c in codes.tolist()], dtype=np.int64)
        return self


# ---------------------------------------------------------------------------
# Ratios over rankings, crossed-bootstrapped
# ---------------------------------------------------------------------------

def _ratio_intervals(p: _PairData, rows: Array, group: Array, num: Array, den: Array, n_groups: int,
                     w_units: Array, v_eval: Array, level: float, low: float,
                     high: float) -> tuple[Array, Array, bs.Spread, Array]:
    """sum(num) / sum(den) per group over the rankings `rows`: estimates (G,), intervals (G, 2),
    the crossed Spread, and the resamples (B, G)."""
    unit, ev = p.ranking_unit[rows], p.ranking_evaluator[rows]
    s_num = bs.crossed_sums(unit, ev, group, num, n_groups, w_units, v_eval)
    s_den = bs.crossed_sums(unit, ev, group, den, n_groups, w_units, v_eval)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = (np.bincount(group, weights=num, minlength=n_groups)
               / np.bincount(group, weights=den, minlength=n_groups))
    reps = bs.ratio_replicates(s_num, s_den)
    spread = bs.ratio_corrections(unit, ev, group, num, den, n_groups, level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = confidence.spread_intervals(est, reps, level, spread, low, high)
    return est, ci, spread, reps


def _pair_table(p: _PairData, level: float, allow_ties: bool = True) -> list[PairStat]:
    """One PairStat per pair with a ranking done: a before b in the protocol's order. Without
    ties allowed (and none given) the tie rate is 0 by construction, its interval [0, 0]."""
    rows = np.flatnonzero(p.done)
    if not len(rows) or not p.pairs:
        return []
    group = p.pair[rows]
    n_pairs = len(p.pairs)
    wa, wb, tt = p.a_win[rows], p.b_win[rows], p.tie[rows]
    ones = np.ones(len(rows))
    rates = {
        "win_rate": (wa, wa + wb),
        "tie_rate": (tt, ones),
        "win_rate_ties_half": (wa + tt / 2, ones),
        "a_rate": (wa, ones),
        "b_rate": (wb, ones),
    }
    unit, ev = p.ranking_unit[rows], p.ranking_evaluator[rows]
    est, ci = {}, {}
    for name, (num, den) in rates.items():
        # A pair's share rests on its own rankings, often a dozen or fewer: Wilson's score
        # interval on the effective number of rankings the crossed design's variance leaves
        # (data.rate_intervals), not the bootstrap's percentiles.
        with np.errstate(invalid="ignore", divide="ignore"):
            est[name] = (np.bincount(group, weights=num, minlength=n_pairs)
                         / np.bincount(group, weights=den, minlength=n_pairs))
        ci[name] = rate_intervals(unit, ev, group, num, den, n_pairs, level)
    if not allow_ties and not tt.any():
        ci["tie_rate"] = np.zeros((n_pairs, 2))
    count = {name: np.bincount(group, weights=x, minlength=n_pairs) for name, x in
             (("n", ones), ("a", wa), ("b", wb), ("t", tt))}
    return [PairStat(
        a=p.variants[a], b=p.variants[b], n=int(count["n"][k]),
        a_wins=int(count["a"][k]), b_wins=int(count["b"][k]), ties=int(count["t"][k]),
        win_rate=est["win_rate"][k], win_rate_ci=ci["win_rate"][k].tolist(),
        tie_rate=est["tie_rate"][k], tie_rate_ci=ci["tie_rate"][k].tolist(),
        win_rate_ties_half=est["win_rate_ties_half"][k], win_rate_ties_half_ci=ci["win_rate_ties_half"][k].tolist(),
        a_rate=est["a_rate"][k], a_rate_ci=ci["a_rate"][k].tolist(),
        b_rate=est["b_rate"][k], b_rate_ci=ci["b_rate"][k].tolist(),
    ) for k, (a, b) in enumerate(p.pairs)]


# ---------------------------------------------------------------------------
# Strengths
# ---------------------------------------------------------------------------

def _outcome_tables(p: _PairData, rows: Array, present: list[int], w_units: Array,
                    v_eval: Array) -> tuple[Array, Array]:
    """(B, k, k) weighted wins (i above j) and ties (symmetric) among the `present` variants."""
    k = len(present)
    index = np.full(len(p.variants), -1, dtype=np.int64)
    index[present] = np.arange(k)
    a, b = index[p.a[rows]], index[p.b[rows]]
    unit, ev = p.ranking_unit[rows], p.ranking_evaluator[rows]
    group = np.concatenate([a * k + b, b * k + a])
    cell_unit, cell_ev = np.concatenate([unit, unit]), np.concatenate([ev, ev])
    wins = bs.crossed_sums(cell_unit, cell_ev, group, np.concatenate([p.a_win[rows], p.b_win[rows]]),
                           k * k, w_units, v_eval)
    ties = bs.crossed_sums(cell_unit, cell_ev, group, np.concatenate([p.tie[rows], p.tie[rows]]),
                           k * k, w_units, v_eval)
    return wins.reshape(-1, k, k), ties.reshape(-1, k, k)


def pair_strengths(p: _PairData, w_units: Array, v_eval: Array, level: float,
                   allow_ties: bool) -> dict:
    """Bradley-Terry-Davidson strengths of the variants that took part in a ranking done:
    `present` (variant codes), `strength` (k,) summing to 1, `strength_ci` (k, 2), the tie
    parameter and its interval (None where ties were not allowed or it has no finite
    estimate), and `note` (SEPARATION_NOTE / DAVIDSON_SEPARATION_NOTE, or "")."""
    rows = np.flatnonzero(p.done)
    present = sorted(set(p.a[rows].tolist()) | set(p.b[rows].tolist()))
    out: dict = {"present": present, "strength": np.zeros(0), "strength_ci": np.zeros((0, 2)),
                 "tie_parameter": None, "tie_parameter_ci": [None, None], "note": ""}
    if len(present) < 2:
        return out
    ones_u, ones_e = np.ones((1, w_units.shape[1])), np.ones((1, v_eval.shape[1]))
    wins_pt, ties_pt = _outcome_tables(p, rows, present, ones_u, ones_e)
    g_point, nu_point = rank_models.davidson_fit(wins_pt, ties_pt)
    init = (g_point[0], nu_point)
    fits = [rank_models.davidson_fit(*_outcome_tables(p, rows, present, wu, ve), init=init)
            for wu, ve in ((w_units, v_eval), (w_units, np.ones_like(v_eval)), (np.ones_like(w_units), v_eval))]
    (g_reps, nu_reps), (g_units, nu_units), (g_evals, nu_evals) = fits
    units, evaluators = p.ranking_unit[rows], p.ranking_evaluator[rows]
    shrink = strength_shrink(units, evaluators, g_reps, g_units, g_evals, level)
    out["strength"] = g_point[0]
    out["strength_ci"] = confidence.intervals(g_point[0], g_reps, level, shrink, 0.0, 1.0)
    beats = (wins_pt[0] + ties_pt[0]) > 0  # a tie counts both ways
    connected, _ = rank_models.win_graph(beats)
    has_ties = bool(ties_pt.sum() > 0)
    finite = bool(rank_models.davidson_separation(wins_pt, ties_pt)[0]) if has_ties else True
    if not connected[0]:
        out["note"] = SEPARATION_NOTE
    elif has_ties and not finite:
        out["note"] = DAVIDSON_SEPARATION_NOTE
    if allow_ties and has_ties and finite and connected[0]:
        log_nu = [np.log(x)[:, None] for x in (nu_reps, nu_units, nu_evals)]
        nu_shrink = strength_shrink(units, evaluators, log_nu[0], log_nu[1], log_nu[2], level)
        bound = rank_models.DAVIDSON_LOG_BOUND
        nu_ci = confidence.intervals(np.log(nu_point), log_nu[0], level, nu_shrink, -bound, bound)
        out["tie_parameter"] = float(nu_point[0])
        out["tie_parameter_ci"] = [math.exp(x) for x in nu_ci[0]]
    return out


# ---------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------

def pairs_preference_section(p: _PairData, w_units: Array, v_eval: Array, level: float,
                             allow_ties: bool) -> PreferenceSection:
    """The preference section of a pairs study (design "pairs"): the pair table, each
    variant's strength and counts, the ranking skip rate."""
    nv = len(p.variants)
    if p.n_rankings == 0:
        return PreferenceSection(by_variant=[], ranking_skip_rate=None, ranking_skip_rate_ci=[None, None],
                                 skip_reasons={}, by_item=[], n_rankings=0, n_ranked=0, m=2, design="pairs")
    pairs = _pair_table(p, level, allow_ties)
    fit = pair_strengths(p, w_units, v_eval, level, allow_ties)
    strength_of = {v: k for k, v in enumerate(fit["present"])}
    skip_est, skip_ci = _ranking_skip_rate(p, level)
    reasons, by_item = _skips_by_item(p)
    done = p.done
    # Per variant, over its rankings: each ranking counts once for each of its two variants.
    var = np.concatenate([p.a, p.b])
    ev = np.concatenate([p.ranking_evaluator, p.ranking_evaluator])
    shown = np.bincount(var, minlength=nv)
    done2 = np.concatenate([done, done])
    n_done = np.bincount(var[done2], minlength=nv)
    won = np.concatenate([p.a_win, p.b_win])
    tied = np.concatenate([p.tie, p.tie])
    first = np.bincount(var, weights=won + tied, minlength=nv)  # ranked 1st (a tie for first: both)
    second = np.bincount(var, weights=np.concatenate([p.b_win, p.a_win]), minlength=nv)
    ties = np.bincount(var, weights=tied, minlength=nv)
    raters = [len(set(ev[done2 & (var == v)].tolist())) for v in range(nv)]
    effective = kish_raters(var[done2], ev[done2], np.ones(int(done2.sum())), nv)
    by_variant = []
    for v in range(nv):
        if shown[v] == 0:
            continue
        k = strength_of.get(v)
        by_variant.append(PreferenceStat(
            variant=p.variants[v], score=None, score_ci=[None, None], mean_rank=None,
            n=int(n_done[v]), n_shown=int(shown[v]), rank_counts=[int(first[v]), int(second[v])],
            pl_strength=None, pl_strength_ci=[None, None],
            n_raters=raters[v], n_raters_effective=float(effective[v]),
            tie_rate=float(ties[v] / n_done[v]) if n_done[v] else None,
            bt_strength=fit["strength"][k] if k is not None else None,
            bt_strength_ci=fit["strength_ci"][k].tolist() if k is not None else [None, None]))
    has_ties = bool(p.tie.sum() > 0)
    return PreferenceSection(
        by_variant=by_variant, ranking_skip_rate=skip_est, ranking_skip_rate_ci=skip_ci.tolist(),
        skip_reasons=reasons, by_item=by_item, n_rankings=p.n_rankings, n_ranked=int(done.sum()), m=2,
        pairs=pairs, pairs_note=TIES_NOTE, has_ties=has_ties,
        strength_model=PAIRS_STRENGTH_MODEL if allow_ties else PAIRS_STRENGTH_MODEL_NO_TIES,
        bt_tie_parameter=fit["tie_parameter"], bt_tie_parameter_ci=fit["tie_parameter_ci"],
        strength_note=fit["note"], design="pairs")


def margin_interval(p: _PairData, rows: Array, margin: Array, level: float) -> Array:
    """(1, 2) interval of a pair's win margin over the rankings ``rows`` (``margin`` each
    ranking's +1, 0 or -1): the margin is 2 q - 1 of q, a's share of the rankings with a tie
    counted half (the pair table's ties-half win rate), so its interval is that rate's score
    interval mapped the same way (`data.rate_intervals`: Wilson on the effective number of
    rankings the crossed design's variance leaves, t on its df). Without ties it is Wilson's
    interval of the win share; with ties a ranking's variance is below q (1 - q) (ties vary
    less than wins and losses), which n_eff = q (1 - q) / V counts as more rankings. Tango's
    trinomial score interval, which refits the tie share at each candidate margin, covered no
    more and was wider (bench/pair_margin.py).
    Where one variant won every ranking it is [1 - 2 t^2 / (n + t^2), 1] for n rankings, not
    the [1, 1] of every resample alike."""
    share = (margin + 1.0) / 2.0
    group = np.zeros(len(rows), dtype=np.int64)
    q = rate_intervals(p.ranking_unit[rows], p.ranking_evaluator[rows], group, share, np.ones(len(rows)), 1, level)
    return 2.0 * q - 1.0


def pair_comparisons(p: _PairData, comparisons: Sequence[tuple[str, str]], w_units: Array, v_eval: Array,
                     level: float,
                     exact_max_n: int) -> list[PairedTest]:
    """The planned comparisons of a pairs study, unadjusted (Holm's adjustment is the
    caller's, over every planned test): each pair's win margin from the rankings that showed
    both, (a wins - b wins) / rankings, with the crossed t test (`significance.crossed_t_test`)."""
    index = {v: k for k, v in enumerate(p.variants)}
    out = []
    for a, b in comparisons:
        ia, ib = index[a], index[b]
        lo, hi = min(ia, ib), max(ia, ib)
        sign = 1.0 if ia < ib else -1.0  # the records hold a before b in the protocol's order
        rows = np.flatnonzero(p.done & (p.a == lo) & (p.b == hi))
        if not len(rows):
            out.append(PairedTest(task="rank", measure=WIN_MARGIN, a=a, b=b, difference=None,
                                  difference_ci=[None, None], n_pairs=0, n_nonzero=0, mean_paired_difference=None,
                                  statistic=None, p_value=None, method="not computable: no ranking of this pair",
                                  p_holm=None, significant=False))
            continue
        margin = sign * (p.a_win[rows] - p.b_win[rows])
        group = np.zeros(len(rows), dtype=np.int64)
        est, _, spread, _ = _ratio_intervals(p, rows, group, margin, np.ones(len(rows)), 1, w_units, v_eval,
                                             level, -1.0, 1.0)
        ci = margin_interval(p, rows, margin, level)
        t_value, p_value = crossed_t_test(float(est[0]), float(spread.var[0]), float(spread.df[0]))
        units = p.ranking_unit[rows]
        per_item = (np.bincount(units, weights=margin, minlength=p.n_units)
                    / np.maximum(np.bincount(units, minlength=p.n_units), 1))[np.unique(units)]
        test = stats.wilcoxon_signed_rank(per_item, exact_max_n)
        crossed = (f"{WIN_MARGIN_METHOD} = {float(spread.df[0]):.1f}" if math.isfinite(p_value)
                   else "crossed t: not computable (fewer than two captions or raters, or no variance)")
        out.append(PairedTest(
            task="rank", measure=WIN_MARGIN, a=a, b=b, difference=float(est[0]), difference_ci=ci[0].tolist(),
            n_pairs=test.n_pairs, n_nonzero=test.n_nonzero, mean_paired_difference=float(per_item.mean()),
            statistic=t_value, p_value=p_value,
            method=f"{crossed}; {WIN_MARGIN_WILCOXON} ({test.method or 'no non-zero captions'})",
            p_holm=None, significant=False, df=float(spread.df[0]),
            wilcoxon_statistic=test.statistic, p_wilcoxon_items=test.p_value))
    return out


def pair_position_bias(p: _PairData, level: float, seed: int) -> PositionBias | None:
    """Does the left image win more often than its variant would? The share of untied rankings
    won by the left image, with its interval, and a permutation test: within each pair, which
    image was on the left is exchangeable under no position effect (the plan counterbalances
    the sides), so the sides are swapped at random among the pair's untied rankings."""
    rows = np.flatnonzero(p.done)
    if not len(rows):
        return None
    left_won = np.where(p.a_left[rows], p.a_win[rows], p.b_win[rows])
    right_won = np.where(p.a_left[rows], p.b_win[rows], p.a_win[rows])
    tied = p.tie[rows]
    decided = rows[tied == 0]
    # A rate like the others (data.rate_intervals): where a few raters always pick the left image
    # they carry its variance, and the t quantile on the raters' df widens the interval by that.
    ci = rate_intervals(p.ranking_unit[rows], p.ranking_evaluator[rows], np.zeros(len(rows), dtype=np.int64),
                        left_won, left_won + right_won, 1, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.array([left_won.sum() / (left_won + right_won).sum()])
    statistic = p_value = None
    if len(decided):
        strata = p.pair[decided].astype(float)
        a_left = p.a_left[decided].astype(float)
        a_won = p.a_win[decided]
        observed = float((a_left == a_won).sum())
        rng = np.random.default_rng([seed, 2])
        base = np.argsort(strata, kind="stable")
        perms = np.argsort(strata[None, :] + rng.random((POSITION_PERMUTATIONS, len(decided))), axis=1)
        shuffled = np.empty((POSITION_PERMUTATIONS, len(decided)))
        shuffled[:, base] = a_left[perms]
        null = (shuffled == a_won[None, :]).sum(axis=1).astype(float)
        centre = null.mean()
        p_value = float((1 + np.sum(np.abs(null - centre) >= abs(observed - centre) - 1e-9))
                        / (POSITION_PERMUTATIONS + 1))
        statistic = observed / len(decided)
    mid = np.where(tied > 0, 1.5, 1.0)  # the mid-rank of an image ranked first, or of a tie
    left_rank = np.where(left_won > 0, 1.0, np.where(right_won > 0, 2.0, mid))
    right_rank = 3.0 - left_rank
    return PositionBias(
        mean_rank_by_position=[float(left_rank.mean()), float(right_rank.mean())],
        first_choice_by_position=[int((left_won + tied).sum()), int((right_won + tied).sum())],
        statistic=statistic, p_value=p_value, n_permutations=POSITION_PERMUTATIONS, n_rankings=len(rows),
        method=PAIRS_POSITION_METHOD, left_win_rate=float(est[0]), left_win_rate_ci=ci[0].tolist())


def pairs_agreement(p: _PairData) -> Alpha | None:
    """Krippendorff's alpha (ordinal) of the outcomes (a better, tie, b better) of the rankings
    that showed the same pair of the same caption; None when no such unit was judged twice."""
    rows = np.flatnonzero(p.done)
    if not len(rows):
        return None
    nv = len(p.variants)
    unit = (p.ranking_unit[rows] * nv + p.a[rows]) * nv + p.b[rows]
    value = p.a_win[rows] - p.b_win[rows]
    _, counts = np.unique(unit, return_counts=True)
    pairable = int((counts >= 2).sum())
    if pairable == 0:
        return None
    return Alpha(alpha=stats.krippendorff_alpha_long(unit, value, "ordinal"), units=PAIRS_AGREEMENT_UNITS,
                 values="outcomes: a better (1), tie (0), b better (-1)", n_pairable_units=pairable)
