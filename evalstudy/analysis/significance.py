"""Statistical tests: planned paired comparisons, Friedman and post hoc tests, position bias.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from .. import bootstrap as bs
from .. import confidence, stats
from .data import Array, _CountData, _RankData, difference_range, parameter_range, rate_difference_interval
from .result import Friedman, HolmPair, Nemenyi, NemenyiPair, PairedTest, PositionBias, Posthoc, Tests

EXACT_MAX_N = 50
# The planned tests' method text. The item-level Wilcoxon is kept as a secondary column:
# raters judge several items, so a rater's own taste for a variant is shared by all the
# items they judged, the items' differences are positively correlated and the sign-flip
# null is too narrow (the audit of 2026-12: 0.147 at alpha = 0.05 with 10 raters x 9
# captions each and a rater x variant taste of s.d. 0.6; bench/rater_clustering.py).
CROSSED_METHOD = ("crossed t: difference / crossed-bootstrap standard error (items and raters, "
                  "the variance of difference_ci) on t with Satterthwaite's df")
WILCOXON_ITEMS_NOTE = ("treats the items as independent blocks although raters judge several: "
                       "liberal when raters share a taste across their items")
# Friedman, Nemenyi and the post hoc Wilcoxon tests read the same caption blocks.
CAPTION_BLOCKS_NOTE = ("captions as independent blocks (each the mean rank over its raters); raters "
                       "who rank several captions connect the blocks, which these tests ignore, so "
                       "they are liberal when raters rank many captions; the planned comparisons' "
                       "crossed t test is not")
POSITION_PERMUTATIONS = 2000
POSITION_METHOD = ("permutation test: layouts permuted within each caption's rankings; "
                   "statistic: F-type quadratic form of the position sums of residual ranks "
                   "after a two-way caption and evaluator fit per variant, each permutation "
                   "normalised by its own layouts' Gram matrix")

def _unit_means(unit: Array, variant: Array, num: Array, den: Array, n_units: int, nv: int) -> Array:
    key = unit * nv + variant
    s_num = np.bincount(key, weights=num, minlength=n_units * nv).reshape(n_units, nv)
    s_den = np.bincount(key, weights=den, minlength=n_units * nv).reshape(n_units, nv)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s_den > 0, s_num / np.where(s_den > 0, s_den, 1), np.nan)


def _difference_spread(unit: Array, evaluator: Array, variant: Array, num: Array, den: Array, a: int, b: int,
                       level: float, own_var: Array) -> bs.Spread:
    """`bootstrap.Spread` of ratio(a) - ratio(b), from linearised contributions, its
    variance floored at `bootstrap.difference_floor` of the two ratios' own variances
    (`own_var`, per variant: `bootstrap.ratio_corrections(...).var`)."""
    z = np.zeros(len(num))
    share = np.zeros(len(num))  # each row's share of its own variant's denominator, halved
    for v, sign in ((a, 1.0), (b, -1.0)):
        rows = variant == v
        d = den[rows].sum()
        if d > 0:
            z[rows] = sign * (num[rows] - num[rows].sum() / d * den[rows]) / d
            share[rows] = den[rows] / d / 2.0
    keep = ((variant == a) | (variant == b)) & (den > 0)
    one = np.zeros(int(keep.sum()), dtype=np.int64)
    return bs.spread_corrections(unit[keep], evaluator[keep], one, z[keep], share[keep], 1, level,
                                 bs.difference_floor(own_var[a:a + 1], own_var[b:b + 1]))


def planned_difference(unit: Array, evaluator: Array, variant: Array, num: Array, den: Array, a: int, b: int,
                       n_variants: int, level: float, own_var: Array | None = None) -> tuple[float, bs.Spread]:
    """ratio(a) - ratio(b) (NaN where either has no denominator) and its crossed
    `bootstrap.Spread` (`_difference_spread`); `own_var`, the variants' own variances
    (`bootstrap.ratio_corrections(...).var`), is computed when not given."""
    sa, sb = den[variant == a].sum(), den[variant == b].sum()
    if sa <= 0 or sb <= 0:
        nan = np.full(1, np.nan)
        return math.nan, bs.Spread(nan, nan, nan, nan, np.ones(1, dtype=bool), np.zeros(1))
    diff = float(num[variant == a].sum() / sa - num[variant == b].sum() / sb)
    if own_var is None:
        own_var = bs.ratio_corrections(unit, evaluator, variant, num, den, n_variants, level).var
    return diff, _difference_spread(unit, evaluator, variant, num, den, a, b, level, own_var)


def crossed_t_test(estimate: float, var: float, df: float) -> tuple[float, float]:
    """(t, two-sided p) of estimate / sqrt(var) on t(df), df at least 1: the planned
    comparisons' test, the same reading of the crossed variance and Satterthwaite's df as
    the stopping rule's (`sequential.z_from_t`). NaN where the variance is not positive
    or not known (a zero variance: every resample the same, no test)."""
    if not (math.isfinite(estimate) and math.isfinite(var) and var > 0 and math.isfinite(df)):
        return math.nan, math.nan
    t = estimate / math.sqrt(var)
    return t, float(2.0 * sps.t.sf(abs(t), max(df, 1.0)))


def _tests_section(c: _CountData, r: _RankData, comparisons: Sequence[tuple[str, str]],
                   count_reps: dict[str, Array], pref_reps: dict[str, Array], level: float,
                   alpha: float, posthoc: str, seed: int, rank_paired: list[PairedTest] | None = None,
                   position_bias: PositionBias | None = None) -> Tests:
    """The planned comparisons (Holm-adjusted together) and the ranking tests. A pairs study
    passes its rank task's planned tests (`rank_paired`, unadjusted) and position bias, and an
    `r` without rankings (its rankings are not full ones)."""
    variants = c.variants
    nv = len(variants)
    index = {v: k for k, v in enumerate(variants)}
    unadjusted: list[PairedTest] = []
    measures = []
    if c.n_rows:
        measures += [("count", "mean_abs_error", c.unit, c.evaluator, c.variant, c.abs_error,
                      c.answered, c.n_units, count_reps.get("mean_abs_error")),
                     ("count", "match_ratio", c.unit, c.evaluator, c.variant, c.match,
                      c.answered, c.n_units, count_reps.get("match_ratio"))]
    if r.n_rankings and r.m >= 2:
        done = ~r.skipped
        measures.append(("rank", "score", r.unit[done], r.evaluator[done], r.variant[done],
                         r.m + 1 - r.rank[done], np.ones(int(done.sum())), r.n_units,
                         pref_reps.get("score")))
    # Each variant's own spread, once per measure: its variance is the floor of every paired
    # difference, and a rate's score interval reads it.
    own_spreads = [bs.ratio_corrections(unit, ev, var, num, den, nv, level)
                   for _, _, unit, ev, var, num, den, _, _ in measures]
    for a, b in comparisons:
        ia, ib = index[a], index[b]
        for (task, measure, unit, ev, var, num, den, n_units, reps), own in zip(measures, own_spreads, strict=True):
            # The sections return replicates for every measure listed here (same conditions).
            assert reps is not None
            means = _unit_means(unit, var, num, den, n_units, nv)
            both = np.isfinite(means[:, ia]) & np.isfinite(means[:, ib])
            if not both.any():
                # Kept as a row: a planned comparison that vanished would read as never planned.
                empty = [name for name, k in ((a, ia), (b, ib)) if den[var == k].sum() <= 0]
                why = (f"no {'counted answers' if task == 'count' else 'rankings'} for "
                       f"{' or '.join(empty)}" if empty else "no item with answers for both variants")
                unadjusted.append(PairedTest(
                    task=task, measure=measure, a=a, b=b, difference=None, difference_ci=[None, None],
                    n_pairs=0, n_nonzero=0, mean_paired_difference=None, statistic=None, p_value=None,
                    method=f"not computable: {why}", p_holm=None, significant=False))
                continue
            d = means[both, ia] - means[both, ib]
            test = stats.wilcoxon_signed_rank(d, EXACT_MAX_N)
            diff, spread = planned_difference(unit, ev, var, num, den, ia, ib, nv, level, own.var)
            t_value, p_value = crossed_t_test(diff, float(spread.var[0]), float(spread.df[0]))
            if parameter_range(measure) == (0.0, 1.0):
                # A difference of two rates: Newcombe's score interval from the rates' own, which
                # has width where both rates sit at a bound and every resample gives 0.
                ci = rate_difference_interval(unit, ev, var, num, den, ia, ib, nv, level, own, spread).tolist()
            else:
                # The parameter's range, not the observed answers': with every answer of a right,
                # low(a) - high(b) is 0, and an interval kept inside that range never holds 0.
                ci = confidence.spread_intervals(np.array([diff]), (reps[:, ia] - reps[:, ib])[:, None], level,
                                                 spread, *difference_range(measure, r.m))[0].tolist()
            wilcoxon = (f"Wilcoxon signed-rank on per-item mean differences ({test.method}), "
                        f"secondary: {WILCOXON_ITEMS_NOTE}" if test.method else
                        "Wilcoxon signed-rank on per-item mean differences: no non-zero pairs")
            if math.isfinite(p_value):
                crossed = f"{CROSSED_METHOD} = {float(spread.df[0]):.1f}"
            elif np.isfinite(spread.var[0]):
                crossed = ("crossed t: not computable, the crossed variance is 0 (every resample "
                           "of items and raters gives the same difference)")
            else:
                crossed = "crossed t: not computable, fewer than two items or raters"
            unadjusted.append(PairedTest(
                task=task, measure=measure, a=a, b=b, difference=diff, difference_ci=ci,
                n_pairs=test.n_pairs, n_nonzero=test.n_nonzero,
                mean_paired_difference=float(d.mean()),
                statistic=t_value, p_value=p_value, method=f"{crossed}; {wilcoxon}",
                p_holm=None, significant=False, df=float(spread.df[0]),
                wilcoxon_statistic=test.statistic, p_wilcoxon_items=test.p_value))
    unadjusted += rank_paired or []
    # Holm's adjustment needs every p-value first. A record keeps None for a NaN p-value.
    p_holm = stats.holm([math.nan if t.p_value is None else t.p_value for t in unadjusted])
    paired = [dataclasses.replace(t, p_holm=p, significant=bool(p is not None and math.isfinite(p) and p < alpha))
              for t, p in zip(unadjusted, p_holm, strict=True)]
    friedman, posthoc_tests, ranking_bias = _ranking_tests(r, alpha, posthoc, seed)
    return Tests(paired=paired, friedman=friedman, posthoc=posthoc_tests,
                 position_bias=position_bias if position_bias is not None else ranking_bias)


def _ranking_tests(r: _RankData, alpha: float, posthoc: str,
                   seed: int) -> tuple[Friedman | None, Posthoc | None, PositionBias | None]:
    if r.n_rankings == 0 or r.m < 2 or not r.done.any():
        return None, None, None
    present = r.present
    names = [r.variants[v] for v in present]
    done = r.done
    # Blocks are items: an item's rankings by several evaluators are not independent,
    # so each item contributes the mean rank of each variant. The raters an item shares
    # with others are not modelled (CAPTION_BLOCKS_NOTE): a crossed Wald chi-square on the
    # m - 1 score contrasts would need their joint crossed covariance, which rests on a
    # handful of raters and was not checked; the planned comparisons carry the crossed test.
    s = np.zeros((r.n_units, len(present)))
    n = np.zeros(r.n_units)
    np.add.at(s, r.ranking_unit[done], r.ranks[done][:, present])
    np.add.at(n, r.ranking_unit[done], 1.0)
    blocks = s[n > 0] / n[n > 0, None]
    fr = stats.friedman(blocks)
    friedman = Friedman(
        blocks="items (mean rank over their evaluators)",
        n_blocks=fr.n_blocks, k=fr.k, statistic=fr.statistic,
        p_value=fr.p_value, df=fr.k - 1,
        mean_ranks=dict(zip(names, fr.mean_ranks, strict=True)),
        # Kendall's W over the caption blocks: how consistently the captions
        # order the variants (an effect size), not agreement between raters.
        w_between_captions=(fr.statistic / (fr.n_blocks * (fr.k - 1))
                            if math.isfinite(fr.statistic) else None),
        note=CAPTION_BLOCKS_NOTE)
    nem = stats.nemenyi(fr.mean_ranks, fr.n_blocks, alpha)
    nemenyi = [NemenyiPair(a=names[p.i], b=names[p.j],
                           mean_rank_difference=p.mean_rank_difference, p_value=p.p_value)
               for p in nem.pairs]
    holm_tests = []
    scores = len(present) + 1 - blocks  # per item mean score
    for i, j in itertools.combinations(range(len(present)), 2):
        holm_tests.append((names[i], names[j],
                           stats.wilcoxon_signed_rank(scores[:, i] - scores[:, j], EXACT_MAX_N)))
    holm_rows = [HolmPair(a=a, b=b, n_pairs=t.n_pairs, statistic=t.statistic, p_value=t.p_value,
                          method=t.method, p_holm=p)
                 for (a, b, t), p in zip(holm_tests, stats.holm([t.p_value for _, _, t in holm_tests]),
                                         strict=True)]
    posthoc_tests = Posthoc(primary=posthoc,
                            nemenyi=Nemenyi(critical_difference=nem.critical_difference, pairs=nemenyi),
                            holm_wilcoxon=holm_rows, note=CAPTION_BLOCKS_NOTE)
    return friedman, posthoc_tests, _position_bias(r, seed)


def _position_bias(r: _RankData, seed: int) -> PositionBias:
    """Does the screen position change the rank, given the variant and the caption?

    `stats.position_permutation_test` (layouts permuted within each caption's
    rankings, residuals from a caption and evaluator fit per variant); also the mean rank and the number
    of first choices at each position, for reading the direction.
    """
    m = r.m
    done = r.done
    ranks = r.ranks[done][:, r.present]
    pos = r.positions[done][:, r.present].astype(int)
    by_pos = np.full((len(ranks), m), np.nan)
    np.put_along_axis(by_pos, pos, ranks, axis=1)
    test = stats.position_permutation_test(
        ranks, pos, r.ranking_unit[done], r.ranking_evaluator[done], POSITION_PERMUTATIONS,
        np.random.default_rng([seed, 1]))
    return PositionBias(
        mean_rank_by_position=np.nanmean(by_pos, axis=0).tolist(),
        # best-ranked images (a tie for first counts each of them)
        first_choice_by_position=np.bincount(pos[ranks == ranks.min(axis=1, keepdims=True)],
                                             minlength=m).tolist(),
        statistic=test.statistic, p_value=test.p_value,
        n_permutations=test.n_permutations, n_rankings=test.n_rankings,
        method=POSITION_METHOD,
    )
