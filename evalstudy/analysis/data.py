"""The responses as integer codes and arrays, shared by every section of the analysis.

Evaluators are put in a canonical order (by a hash of their responses) before any
resampling, so relabelling evaluators or shuffling rows changes nothing.
"""

from __future__ import annotations

import hashlib
import typing

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from .. import bootstrap as bs
from .. import confidence, rank_models
from ..protocol import Protocol
from ..responses import ResponseTable

# ---------------------------------------------------------------------------
# Orders and codes
# ---------------------------------------------------------------------------

def _variant_order(t: ResponseTable, protocol: Protocol | None) -> list[str]:
    seen = sorted(set(t["variant"].tolist()) - {""})
    if protocol is None:
        return seen
    unknown = sorted(set(seen) - set(protocol.variants))
    if unknown:
        raise ValueError(f"variant(s) {unknown} in the responses are not in the protocol's "
                         f"variants {list(protocol.variants)}")
    return list(protocol.variants)


def _object_order(t: ResponseTable, protocol: Protocol | None) -> list[str]:
    seen = sorted(set(t["object"][t["task"] == "count"].tolist()) - {""})
    if protocol is None or protocol.count_task is None:
        return seen
    planned = [o.name for o in protocol.count_task.objects]
    return planned + [o for o in seen if o not in planned]


def _codes(values: np.ndarray, order: list | None = None) -> tuple[np.ndarray, list]:
    if order is None:
        uniq, inv = np.unique(values, return_inverse=True)
        return inv.astype(np.int64), uniq.tolist()
    lookup = {v: k for k, v in enumerate(order)}
    return np.array([lookup[v] for v in values.tolist()], dtype=np.int64), list(order)


def _evaluator_codes(t: ResponseTable, order: list[str] | None = None
                     ) -> tuple[np.ndarray, list[str]]:
    """Codes of the evaluators in `order` (default: `canonical_evaluator_order`),
    restricted to those present in t."""
    order = canonical_evaluator_order(t) if order is None else order
    present = set(t["evaluator_id"].tolist())
    return _codes(t["evaluator_id"], [e for e in order if e in present])


def canonical_evaluator_order(t: ResponseTable) -> list[str]:
    """Evaluators ordered by a hash of the responses the headline numbers use (ties:
    identical responses, which are interchangeable), so that their labels do not matter.

    Only the rows `_CountData` and `_RankData` read are hashed: count answers to non-gold
    images and rankings, repeats left out of both. Gold and repeated answers check the
    evaluators (`evaluator_reliability`) and enter no interval, so they must not reseed
    the bootstrap either: with them in the hash, a changed gold answer moved every
    interval's ends (a fresh Monte Carlo draw) though no estimate. An evaluator with no
    such rows hashes as an empty list: present in the order, with nothing to resample."""
    keys: dict[str, list[str]] = {e: [] for e in t["evaluator_id"].tolist()}
    used = (((t["task"] == "count") & ~t["is_gold"]) | (t["task"] == "rank")) & (t["repeat_of"] == "")
    cols = [t[c][used].tolist() for c in ("evaluator_id", "task", "item_id", "variant",
                                          "answer_count", "rank", "skipped", "position")]
    for e, *row in zip(*cols, strict=True):
        keys[e].append(repr(tuple(row)))
    digest = {e: hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
              for e, rows in keys.items()}
    return sorted(digest, key=lambda e: (digest[e], e))


def _cluster_key(t: ResponseTable, mask: np.ndarray) -> np.ndarray:
    """The count task's resampling unit: prompt and seed (the variants' images of one
    prompt and seed form a pair); the image's item id where the seed is unknown."""
    seed = t["seed"][mask]
    prompt = t["prompt"][mask].astype(object)
    item = t["item_id"][mask].astype(object)
    seed_txt = np.where(np.isfinite(seed), seed, -1).astype(np.int64).astype(str).astype(object)
    return np.where(np.isfinite(seed), prompt + "\x1f" + seed_txt, "\x1eitem\x1f" + item)


# ---------------------------------------------------------------------------
# The two tasks as arrays
# ---------------------------------------------------------------------------

Array = np.ndarray  # 1-D per row unless its comment says otherwise


class _CountData:
    """The count task's main rows (no gold, no repeats) as codes and arrays."""

    variants: list[str]
    objects: list[str]
    counts: list[int]
    n_rows: int
    variant: Array        # variant code
    object: Array         # object code
    count: Array          # true count's code (index into counts)
    unit: Array           # resampling unit: prompt-and-seed
    unit_ids: list
    n_units: int
    evaluator: Array
    item: Array
    n_images: int
    nonskip: Array        # 1.0 where an answer or "can't tell" was given
    answered: Array       # 1.0 where a count was given (eq. 9 and 10's n)
    abs_error: Array
    match: Array
    cant_tell: Array
    skipped: Array
    answer: Array
    auto: Array

    @classmethod
    def build(cls, t: ResponseTable, ev_code: np.ndarray, variants: list[str],
              objects: list[str]) -> _CountData:
        self = cls()
        mask = (t["task"] == "count") & ~t["is_gold"] & (t["repeat_of"] == "")
        self.variants, self.objects = variants, objects
        self.counts = sorted({int(c) for c in t["true_count"][mask].tolist()})
        self.n_rows = int(mask.sum())
        self.variant, _ = _codes(t["variant"][mask], variants)
        self.object, _ = _codes(t["object"][mask], objects)
        self.count, _ = _codes(t["true_count"][mask].astype(int), self.counts)
        self.unit, self.unit_ids = _codes(_cluster_key(t, mask).astype(str))
        self.n_units = len(self.unit_ids)
        self.evaluator = ev_code[mask]
        self.item = t["item_id"][mask]
        self.n_images = len(set(self.item.tolist()))
        skipped = t["skipped"][mask]
        answer = t["answer_count"][mask]
        truth = t["true_count"][mask]
        self.nonskip = (~skipped).astype(float)
        self.answered = (~skipped & np.isfinite(answer)).astype(float)
        self.abs_error = np.where(self.answered > 0, np.abs(np.nan_to_num(answer) - truth), 0.0)
        self.match = ((self.answered > 0) & (answer == truth)).astype(float)
        self.cant_tell = self.nonskip - self.answered
        self.skipped = skipped.astype(float)
        self.answer = answer
        self.auto = t["auto_count"][mask]
        return self


class Rankings(typing.Protocol):
    """What the ranking skip rate reads of a task's rankings (`_RankData`, and the pairs
    design's `pairdesign._PairData`): per row its ranking, item code, skip and reason, per
    ranking its item, rater and skip."""

    n_rankings: int
    n_units: int
    unit_ids: list
    ranking: Array
    unit: Array
    skipped: Array
    skip_reason: Array
    prompt: Array
    ranking_unit: Array
    ranking_evaluator: Array
    ranking_skipped: Array


class _RankData:
    """The rank task's main rows, and one record per ranking (evaluator x item)."""

    variants: list[str]
    m: int
    variant: Array
    unit: Array
    unit_ids: list
    n_units: int
    evaluator: Array
    skipped: Array
    rank: Array               # per row: its mid-rank (the stored rank where nothing is tied)
    rank_stored: Array        # per row: the competition rank answered ("1,2,2,4")
    position: Array
    prompt: Array
    skip_reason: Array
    ranking: Array            # per row: its ranking's index
    n_rankings: int
    ranking_unit: Array       # per ranking
    ranking_evaluator: Array
    ranks: Array              # (n_rankings, n_variants) mid-rank per variant
    positions: Array          # (n_rankings, n_variants) screen position per variant
    ranking_skipped: Array
    present: list[int]
    done: Array
    has_ties: bool            # some ranking ties two images
    orderings: Array          # (m!, m) best first; empty when there are ties
    patterns: Array           # (K, m) competition ranks of each answer pattern: the m!
                              # orderings, or with ties the distinct answers seen
    perm: Array               # per done ranking: index of its ordering (pattern)

    @classmethod
    def build(cls, t: ResponseTable, ev_code: np.ndarray, variants: list[str]) -> _RankData:
        self = cls()
        mask = (t["task"] == "rank") & (t["repeat_of"] == "")
        self.variants = variants
        self.m = m = len({v for v in t["variant"][mask].tolist()}) if mask.any() else 0
        self.variant, _ = _codes(t["variant"][mask], variants)
        self.unit, self.unit_ids = _codes(t["item_id"][mask])
        self.n_units = len(self.unit_ids)
        self.evaluator = ev_code[mask]
        self.skipped = t["skipped"][mask]
        self.rank = t["rank"][mask]
        self.position = t["position"][mask]
        self.prompt = t["prompt"][mask]
        self.skip_reason = t["skip_reason"][mask]
        n_ev = int(ev_code.max()) + 1 if len(ev_code) else 1
        key = self.unit * n_ev + self.evaluator
        uniq, self.ranking = np.unique(key, return_inverse=True)
        self.n_rankings = len(uniq)
        self.ranking_unit = uniq // n_ev
        self.ranking_evaluator = uniq % n_ev
        nv = len(variants)
        self.ranks = np.full((self.n_rankings, nv), np.nan)       # rank per variant
        self.positions = np.full((self.n_rankings, nv), np.nan)   # screen position per variant
        self.ranks[self.ranking, self.variant] = self.rank
        self.positions[self.ranking, self.variant] = self.position
        self.ranking_skipped = np.zeros(self.n_rankings, dtype=bool)
        self.ranking_skipped[self.ranking] = self.skipped
        # Rank columns of the variants that take part (a protocol may list more).
        self.present = [v for v in range(nv) if np.isfinite(self.positions[:, v]).any()]
        self.done = ~self.ranking_skipped
        self.rank_stored = self.rank.copy()  # competition ranks, as answered
        self.has_ties = False
        if m >= 2:
            r = self.ranks[self.done][:, self.present]
            self.has_ties = bool((np.diff(np.sort(r, axis=1), axis=1) == 0).any())
            if not self.has_ties:
                order = np.argsort(r, axis=1, kind="stable")  # best first, indices into present
                self.orderings = rank_models.all_orderings(m)
                lookup = {tuple(o): k for k, o in enumerate(self.orderings.tolist())}
                self.perm = np.array([lookup[tuple(o)] for o in order.tolist()], dtype=np.int64)
                self.patterns = np.argsort(self.orderings, axis=1) + 1
            else:
                # Weak orders: the distinct answers seen (at most 4683 for 6 images), and
                # every score, test and agreement below on mid-ranks: a tied group takes
                # the mean of the places it occupies (rank r of m scores m + 1 - r).
                self.orderings = np.zeros((0, m), dtype=int)
                patterns, perm = np.unique(r.astype(np.int64), axis=0, return_inverse=True)
                self.patterns, self.perm = patterns, perm.reshape(-1).astype(np.int64)
                mids = self.ranks.copy()
                done_rows = np.flatnonzero(self.done)
                mids[np.ix_(done_rows, np.asarray(self.present))] = sps.rankdata(r, axis=1)
                self.ranks = mids
                self.rank = np.where(self.skipped, np.nan, mids[self.ranking, self.variant])
        else:
            self.orderings = np.zeros((0, 0), dtype=int)
            self.perm = np.zeros(0, dtype=np.int64)
            self.patterns = np.zeros((0, 0), dtype=int)
        return self


def _ratio_stat(num: Array, den: Array, reps_num: Array, reps_den: Array, spread: bs.Spread, level: float,
                bounds: tuple[float, float]) -> tuple[Array, Array, Array]:
    """Estimates, (G, 2) intervals and (B, G) replicates of the ratios num / den;
    bounds = (low, high), scalars or arrays, the range of the groups' population values
    (`parameter_range`); spread, the groups'
    `bootstrap.Spread` (shrink factors and accelerations)."""
    est = bs.ratio_replicates(num[None, :], den[None, :])[0]
    reps = bs.ratio_replicates(reps_num, reps_den)
    low, high = bounds
    ci = confidence.spread_intervals(est, reps, level, spread, low, high)
    return est, ci, reps


def rate_intervals(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, num: ArrayLike, den: ArrayLike,
                   n_groups: int, level: float, spread: bs.Spread | None = None) -> np.ndarray:
    """(G, 2) intervals of the per-group rates sum(num) / sum(den) (num in [0, den] per row:
    a match, a win, a skip), every rate of the analysis: Wilson's score interval on the
    rate's effective number of trials, with t on the crossed variance's df
    (`confidence.score_intervals`). `unit`, `evaluator`: each row's resampling unit and
    rater; `spread`, the groups' `bootstrap.ratio_corrections` where already computed."""
    group = np.asarray(group, dtype=np.int64)
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    if spread is None:
        spread = bs.ratio_corrections(unit, evaluator, group, num, den, n_groups, level)
    z, _ = bs.ratio_contributions(group, num, den, n_groups)
    independent = np.bincount(group, weights=z ** 2, minlength=n_groups)
    trials = np.bincount(group, weights=den, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.bincount(group, weights=num, minlength=n_groups) / trials
    return confidence.score_intervals(est, spread.var, independent, trials, level, spread.df)


def paired_rate_correlation(var_a: ArrayLike, var_b: ArrayLike, var_difference: ArrayLike, trials_a: ArrayLike,
                            trials_b: ArrayLike, continuity: bool = True) -> np.ndarray:
    """The correlation of two rates' estimates, from their crossed variances and their
    difference's: cov = (Va + Vb - Vd) / 2, phi = cov / sqrt(Va Vb) in [-1, 1]; 0 where
    either variance is 0 or unknown (a rate at 0 or 1 varies with nothing).

    With independent trials in n pairs (one rater per item) this is the phi coefficient
    (AD - BC) / sqrt(EFGH) of the paired 2 x 2 table (the kappa factors of the variances
    cancel). `continuity`: Newcombe's correction of a positive phi (1998, method 10: AD - BC
    less N / 2, at least 0), here as the estimates' covariance less 1 / (2 n_a n_b), n the
    rates' trials, which is the same thing for the 2 x 2 table; a negative phi is left as it is."""
    va, vb, vd = (np.asarray(x, dtype=float) for x in (var_a, var_b, var_difference))
    cov = (va + vb - vd) / 2.0
    if continuity:
        half_answer = 0.5 / (np.asarray(trials_a, dtype=float) * np.asarray(trials_b, dtype=float))
        cov = np.where(cov > 0, np.maximum(cov - half_answer, 0.0), cov)
    known = np.isfinite(va) & np.isfinite(vb) & np.isfinite(vd) & (va > 0) & (vb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = cov / np.sqrt(np.where(known, va * vb, 1.0))
    return np.where(known, np.clip(phi, -1.0, 1.0), 0.0)


def rate_difference_interval(unit: ArrayLike, evaluator: ArrayLike, group: ArrayLike, num: ArrayLike,
                             den: ArrayLike, a: int, b: int, n_groups: int, level: float, own: bs.Spread,
                             difference: bs.Spread) -> np.ndarray:
    """(2,) interval of rate(a) - rate(b), two of the per-group rates sum(num) / sum(den) on
    the same items and raters (a planned comparison of two variants' match ratios):
    Newcombe's hybrid score interval (`confidence.paired_score_difference`) from each rate's
    own interval (`rate_intervals`: Wilson on its effective number of trials) and the
    correlation of the two (`paired_rate_correlation`, with Newcombe's correction) from the
    crossed variances. `own`: the groups' `bootstrap.ratio_corrections`; `difference`: the
    difference's (`significance.planned_difference`).

    The t quantile of each rate's interval is on the fewer of its own df and the
    difference's: with the correlation read from the same variances the interval is, away
    from the bounds, d -+ q sqrt(Vd), so it rests on Vd and its df, which are fewer than a
    rate's when the pairing cancels most of the variance (a few items' or raters' changes
    then carry it). With each rate's own df it covered 0.921 (caption effects, 30 items,
    rates of 0.5; s.e. 0.009) and 0.934 with independent answers; with the fewer, 0.942-1.000
    over every row of bench/pair_difference.py (0.98-1.00 with 8 items: wide there, but
    narrower than the bootstrap's t interval at rates of 0.5).

    Why not the crossed bootstrap's interval of the difference: where both rates are at the
    same bound (every answer of both variants right, in a pilot or on easy prompts) every
    resample gives 0 and that interval is [0, 0], and near it (true rates of 0.99) it
    covered 0.55-0.59 with 30 items; this one is as wide as the two rates' score intervals
    say (bench/pair_difference.py, docs/statistics.md)."""
    group = np.asarray(group, dtype=np.int64)
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    fewer = own._replace(df=np.minimum(own.df, difference.df[0]))
    ci = rate_intervals(unit, evaluator, group, num, den, n_groups, level, fewer)
    trials = np.bincount(group, weights=den, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.bincount(group, weights=num, minlength=n_groups) / trials
    phi = paired_rate_correlation(own.var[a], own.var[b], difference.var[0], trials[a], trials[b])
    return confidence.paired_score_difference(est[a:a + 1], ci[a:a + 1], est[b:b + 1], ci[b:b + 1],
                                              np.atleast_1d(phi))[0]


def kish_raters(group: ArrayLike, evaluator: ArrayLike, weight: ArrayLike, n_groups: int) -> np.ndarray:
    """Kish's effective number of raters per group, (sum of loads)^2 / sum of squared loads,
    a rater's load the summed `weight` of their rows (answers) in the group: the number of
    raters with equal loads that would give a load-weighted mean the same variance. 24 raters
    whose loads run log-uniformly from 1 to 150 count as about 9. NaN for an empty group."""
    group = np.asarray(group, dtype=np.int64)
    evaluator = np.asarray(evaluator, dtype=np.int64)
    n_ev = int(evaluator.max()) + 1 if len(evaluator) else 1
    loads = np.bincount(group * n_ev + evaluator, weights=np.asarray(weight, dtype=float),
                        minlength=n_groups * n_ev).reshape(n_groups, n_ev)
    squares = (loads ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(squares > 0, loads.sum(axis=1) ** 2 / np.where(squares > 0, squares, 1.0), np.nan)


def parameter_range(measure: str, m: int = 0) -> tuple[float, float]:
    """(low, high): the values a measure's population value can take, whatever the data.
    Intervals are bounded by this range, never by the range of the values observed: a
    mean |error| whose images all erred (errors 1 and 2) may still be 0.9 in the
    population, and a difference from a variant whose every answer was right may still be
    0 (audit of 2026-12-07, findings 2 and 3: the observed range took the 95% interval of
    such a difference off 0 in a quarter of null studies with 8 units)."""
    if measure == "mean_abs_error":
        return 0.0, np.inf
    if measure == "score":  # rank r of m scores m + 1 - r
        return 1.0, float(m)
    return 0.0, 1.0  # rates: match ratio, can't-tell rate, skip rate


def difference_range(measure: str, m: int = 0) -> tuple[float, float]:
    """(low, high) of measure(a) - measure(b) from `parameter_range`: [-1, 1] for rates,
    [-(m - 1), m - 1] for scores, unbounded for mean |error|."""
    low, high = parameter_range(measure, m)
    return low - high, high - low
