"""Statistical tests: planned paired comparisons, Friedman and post hoc tests, position bias.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from .. import bootstrap as bs
from .. import confidence, stats
from .data import _CountData, _RankData, group_range
from .result import Friedman, HolmPair, Nemenyi, NemenyiPair, PairedTest, PositionBias, Posthoc, Tests

EXACT_MAX_N = 50
POSITION_PERMUTATIONS = 2000
POSITION_METHOD = ("permutation test: layouts permuted within each caption's rankings; "
                   "statistic: F-type quadratic form of the position sums of residual ranks "
                   "after a two-way caption and evaluator fit per variant, each permutation "
                   "normalised by its own layouts' Gram matrix")

def _unit_means(unit, variant, num, den, n_units, nv):
    key = unit * nv + variant
    s_num = np.bincount(key, weights=num, minlength=n_units * nv).reshape(n_units, nv)
    s_den = np.bincount(key, weights=den, minlength=n_units * nv).reshape(n_units, nv)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s_den > 0, s_num / np.where(s_den > 0, s_den, 1), np.nan)


def _difference_spread(unit, evaluator, variant, num, den, a, b, level, own_var) -> bs.Spread:
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


def _tests_section(c: _CountData, r: _RankData, comparisons, count_reps, pref_reps, level,
                   alpha, posthoc, seed) -> Tests:
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
    # Each variant's own variance, once per measure: the floor of every paired difference.
    own_vars = [bs.ratio_corrections(unit, ev, var, num, den, nv, level).var
                for _, _, unit, ev, var, num, den, _, _ in measures]
    for a, b in comparisons:
        ia, ib = index[a], index[b]
        for (task, measure, unit, ev, var, num, den, n_units, reps), own_var in zip(measures, own_vars, strict=True):
            means = _unit_means(unit, var, num, den, n_units, nv)
            both = np.isfinite(means[:, ia]) & np.isfinite(means[:, ib])
            if not both.any():
                continue
            d = means[both, ia] - means[both, ib]
            test = stats.wilcoxon_signed_rank(d, EXACT_MAX_N)
            sa, sb = den[var == ia].sum(), den[var == ib].sum()
            diff = num[var == ia].sum() / sa - num[var == ib].sum() / sb
            spread = _difference_spread(unit, ev, var, num, den, ia, ib, level, own_var)
            # ratio(a) - ratio(b) lies between low(a) - high(b) and high(a) - low(b).
            low, high = group_range(var, num / np.where(den > 0, den, 1), den > 0, nv)
            ci = confidence.spread_intervals(np.array([diff]), (reps[:, ia] - reps[:, ib])[:, None], level, spread,
                                     low[ia] - high[ib], high[ia] - low[ib])[0].tolist()
            unadjusted.append(PairedTest(
                task=task, measure=measure, a=a, b=b, difference=diff, difference_ci=ci,
                n_pairs=test["n_pairs"], n_nonzero=test["n_nonzero"],
                mean_paired_difference=float(d.mean()),
                statistic=test["statistic"], p_value=test["p_value"],
                method=f"Wilcoxon signed-rank ({test['method']})"
                if test["method"] else "Wilcoxon signed-rank (no non-zero pairs)",
                p_holm=None, significant=False))
    # Holm's adjustment needs every p-value first. A record keeps None for a NaN p-value.
    p_holm = stats.holm([math.nan if t.p_value is None else t.p_value for t in unadjusted])
    paired = [dataclasses.replace(t, p_holm=p, significant=bool(p is not None and math.isfinite(p) and p < alpha))
              for t, p in zip(unadjusted, p_holm, strict=True)]
    friedman, posthoc_tests, position_bias = _ranking_tests(r, alpha, posthoc, seed)
    return Tests(paired=paired, friedman=friedman, posthoc=posthoc_tests, position_bias=position_bias)


def _ranking_tests(r: _RankData, alpha, posthoc,
                   seed) -> tuple[Friedman | None, Posthoc | None, PositionBias | None]:
    if r.n_rankings == 0 or r.m < 2 or not r.done.any():
        return None, None, None
    present = r.present
    names = [r.variants[v] for v in present]
    done = r.done
    # Blocks are items: an item's rankings by several evaluators are not independent,
    # so each item contributes the mean rank of each variant.
    s = np.zeros((r.n_units, len(present)))
    n = np.zeros(r.n_units)
    np.add.at(s, r.ranking_unit[done], r.ranks[done][:, present])
    np.add.at(n, r.ranking_unit[done], 1.0)
    blocks = s[n > 0] / n[n > 0, None]
    fr = stats.friedman(blocks)
    friedman = Friedman(
        blocks="items (mean rank over their evaluators)",
        n_blocks=fr["n_blocks"], k=fr["k"], statistic=fr["statistic"],
        p_value=fr["p_value"], df=fr["k"] - 1,
        mean_ranks=dict(zip(names, fr["mean_ranks"], strict=True)),
        # Kendall's W over the caption blocks: how consistently the captions
        # order the variants (an effect size), not agreement between raters.
        w_between_captions=(fr["statistic"] / (fr["n_blocks"] * (fr["k"] - 1))
                            if math.isfinite(fr["statistic"]) else None))
    nem = stats.nemenyi(fr["mean_ranks"], fr["n_blocks"], alpha)
    nemenyi = [NemenyiPair(a=names[p["i"]], b=names[p["j"]],
                           mean_rank_difference=p["mean_rank_difference"], p_value=p["p_value"])
               for p in nem["pairs"]]
    holm_tests = []
    scores = len(present) + 1 - blocks  # per item mean score
    for i, j in itertools.combinations(range(len(present)), 2):
        holm_tests.append((names[i], names[j],
                           stats.wilcoxon_signed_rank(scores[:, i] - scores[:, j], EXACT_MAX_N)))
    holm_rows = [HolmPair(a=a, b=b, n_pairs=t["n_pairs"], statistic=t["statistic"], p_value=t["p_value"],
                          method=t["method"], p_holm=p)
                 for (a, b, t), p in zip(holm_tests, stats.holm([t["p_value"] for _, _, t in holm_tests]),
                                         strict=True)]
    posthoc_tests = Posthoc(primary=posthoc,
                            nemenyi=Nemenyi(critical_difference=nem["critical_difference"], pairs=nemenyi),
                            holm_wilcoxon=holm_rows)
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
        statistic=test["statistic"], p_value=test["p_value"],
        n_permutations=test["n_permutations"], n_rankings=test["n_rankings"],
        method=POSITION_METHOD,
    )
