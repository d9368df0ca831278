"""Every statistic of a study, from the responses table, as one JSON-ready dict.

How the answers enter
---------------------
* Count task, per image: the error is |answer - true count| (the paper's eq. 9),
  a match is answer == true count (eq. 10). Both average over the same n, the
  images given a count, as in the paper: "can't tell" (an empty answer) has no
  size and enters neither. Its share of the images shown is `cant_tell_rate`,
  beside them, and `match_ratio_cant_tell_as_miss` is the labelled sensitivity
  row that counts it as a miss. Skipped rows (no answer at all, e.g. an image
  that did not load) enter none of these and are reported as `task_skip_rate`.
* Rank task: rank 1..m scores m..1 (m = 4: the paper's 4..1); a skipped ranking
  is left out of the score and reported as `ranking_skip_rate` (skipped
  rankings over rankings shown; a skip names no variant, so there is one rate).
* Two skip rates, one name each: `ranking_skip_rate` as above, and per evaluator
  `task_skip_rate` (skipped tasks of both kinds over all tasks shown), which the
  exclusion rule `max_task_skip_rate` reads.
* Gold items and repeated showings measure the evaluators only; they are not
  part of any variant's statistics.

Uncertainty: 95% intervals by the crossed bootstrap (`evalstudy.bootstrap`),
which resamples the evaluators and the items together. For the count task the
resampled item is the prompt-and-seed pair, so that the images of all variants
made from one prompt and seed stay together and a difference between variants
is resampled as a paired difference.

Evaluators are put in a canonical order (by a hash of their responses) before
any resampling, so relabelling evaluators or shuffling rows changes nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import warnings
from collections import Counter, defaultdict

import numpy as np
from scipy import stats as sps

from . import bootstrap as bs
from . import stats
from .protocol import Exclusions, Protocol, default_comparisons
from .responses import ResponseTable

SCHEMA = "evalstudy.analysis/1"
EXACT_MAX_N = 50
POSITION_PERMUTATIONS = 2000
POSITION_METHOD = ("permutation test: layouts permuted within each caption's rankings; "
                   "statistic: sum over positions of the squared summed residual ranks "
                   "(rank minus a two-way caption and evaluator fit per variant)")
CANT_TELL_POLICY = ("'can't tell' enters neither mean_abs_error nor match_ratio (eq. 9 and "
                    "eq. 10 over the same n, the images given a count); it is reported as "
                    "cant_tell_rate, and counted as a miss only in match_ratio_cant_tell_as_miss")
SKIP_POLICY = ("skipped responses enter no score or error; ranking_skip_rate: skipped rankings "
               "over rankings shown; task_skip_rate: skipped tasks over tasks shown")
BOOTSTRAP_METHOD = ("crossed bootstrap: items (count: prompt-and-seed pairs; rank: captions) and "
                    "evaluators resampled together with product weights; percentile intervals "
                    "pulled towards the estimate to remove the doubly counted "
                    "item x evaluator term")


def analyze(table: ResponseTable, protocol: Protocol | None = None, n_boot: int = 2000,
            seed: int = 0, exclusions: bool = True) -> dict:
    """Analyse a responses table; deterministic for a given seed.

    With a protocol, its variant order, objects, comparisons, confidence level and
    exclusion rules are used; without one they come from the data and no evaluator
    is excluded. The top-level `count`, `preference`, `tests`, `agreement` and
    `data` describe the evaluators kept by the exclusion rules (all evaluators when
    `exclusions` is False); `unfiltered` holds the same sections for everyone.
    `result["exclusions"]["excluded"]` lists the evaluators that break a rule, and
    `applied` says whether the top-level sections leave them out; when the rules
    would leave no one, they are not applied and `not_applied_reason` says so. NaN becomes
    None, so the result is strict JSON.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    plan = protocol.analysis if protocol is not None else None
    level = plan.ci_level if plan else 0.95
    alpha = plan.alpha if plan else 0.05
    variants = _variant_order(table, protocol)
    objects = _object_order(table, protocol)
    comparisons = protocol.comparisons() if protocol else default_comparisons(variants)
    comparisons = tuple((a, b) for a, b in comparisons if a in variants and b in variants)
    posthoc = plan.posthoc if plan else "holm"

    reliability = evaluator_reliability(table)
    rules = plan.exclusions if plan else Exclusions()
    excluded = apply_exclusions(reliability, rules)
    for rec in reliability:
        rec["excluded"] = rec["evaluator_id"] in excluded
        rec["reasons"] = excluded.get(rec["evaluator_id"], [])

    ev_order = canonical_evaluator_order(table)
    # A canonical row order too, so that sums are added in the same order whatever the
    # file's order and the evaluators' labels (floating point addition is not associative).
    ev_rank = {e: k for k, e in enumerate(ev_order)}
    table = table.subset(np.lexsort((
        table["variant"], table["repeat_of"],
        np.array([ev_rank[e] for e in table["evaluator_id"].tolist()]),
        table["item_id"], table["task"])))
    settings = dict(variants=variants, objects=objects, comparisons=comparisons, level=level,
                    alpha=alpha, posthoc=posthoc, n_boot=n_boot, seed=seed, ev_order=ev_order)
    unfiltered = _sections(table, **settings)
    applied = bool(exclusions and excluded)
    not_applied_reason = None
    if applied:
        keep = ~np.isin(table["evaluator_id"], list(excluded))
        if keep.any():
            main = _sections(table.subset(keep), **settings)
        else:
            # Nothing would be left to analyse: show everyone, and say so.
            applied = False
            not_applied_reason = (f"the exclusion rules exclude every evaluator ({len(excluded)} "
                                  "of them); the results shown are the unfiltered ones")
            main = unfiltered
    else:
        main = unfiltered
    result = {
        "schema": SCHEMA,
        "protocol": ({"name": protocol.name, "hash": protocol.content_hash()}
                     if protocol else None),
        "settings": {"n_boot": n_boot, "seed": seed, "ci_level": level, "alpha": alpha,
                     "bootstrap": BOOTSTRAP_METHOD, "cant_tell": CANT_TELL_POLICY,
                     "skips": SKIP_POLICY, "exact_wilcoxon_max_n": EXACT_MAX_N,
                     "posthoc": posthoc},
        **main,
        "evaluators": reliability,
        "exclusions": {
            "applied": applied,
            "not_applied_reason": not_applied_reason,
            "rules": {k: getattr(rules, k) for k in Exclusions.__dataclass_fields__},
            "n_evaluators": len(reliability),
            "n_excluded": len(excluded),
            "excluded": [{"evaluator_id": e, "reasons": r} for e, r in sorted(excluded.items())],
        },
        "unfiltered": unfiltered,
    }
    return jsonable(result)


def jsonable(x):
    """Plain Python containers and numbers; NaN and infinities become None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


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
    """Evaluators ordered by a hash of their responses (ties: identical responses,
    which are interchangeable), so that their labels do not matter."""
    ev = t["evaluator_id"].tolist()
    keys = defaultdict(list)
    cols = [t[c].tolist() for c in ("task", "item_id", "variant", "answer_count", "rank",
                                    "skipped", "position", "repeat_of")]
    for k, row in enumerate(zip(*cols)):
        keys[ev[k]].append(repr(row))
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
# The sections computed for one set of evaluators
# ---------------------------------------------------------------------------

def _sections(t: ResponseTable, *, variants, objects, comparisons, level, alpha, posthoc,
              n_boot, seed, ev_order) -> dict:
    ev_code, ev_ids = _evaluator_codes(t, ev_order)
    rng = np.random.default_rng(seed)
    v_eval = bs.draw_weights(len(ev_ids), n_boot, rng)
    count = _CountData.build(t, ev_code, variants, objects)
    rank = _RankData.build(t, ev_code, variants)
    w_count = bs.draw_weights(count.n_units, n_boot, rng)
    w_rank = bs.draw_weights(rank.n_units, n_boot, rng)

    count_out, count_reps = _count_section(count, w_count, v_eval, level)
    pref_out, pref_reps = _preference_section(rank, w_rank, v_eval, level)
    tests = _tests_section(count, rank, comparisons, count_reps, pref_reps, level, alpha, posthoc,
                           seed)
    agreement = _agreement_section(t, count, rank)
    data = {
        "n_rows": len(t),
        "n_evaluators": len(ev_ids),
        "n_count_responses": count.n_rows,
        "n_count_images": count.n_images,
        "n_count_units": count.n_units,
        "n_rankings": rank.n_rankings,
        "n_rank_items": rank.n_units,
        "variants": variants,
        "objects": objects,
        "counts": count.counts,
    }
    return {"data": data, "count": count_out, "preference": pref_out, "tests": tests,
            "agreement": agreement}


class _CountData:
    """The count task's main rows (no gold, no repeats) as codes and arrays."""

    @classmethod
    def build(cls, t: ResponseTable, ev_code, variants, objects) -> _CountData:
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


class _RankData:
    """The rank task's main rows, and one record per ranking (evaluator x item)."""

    @classmethod
    def build(cls, t: ResponseTable, ev_code, variants) -> _RankData:
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
        if m >= 2:
            r = self.ranks[self.done][:, self.present]
            order = np.argsort(r, axis=1, kind="stable")  # best first, indices into present
            self.orderings = stats.all_orderings(m)
            lookup = {tuple(o): k for k, o in enumerate(self.orderings.tolist())}
            self.perm = np.array([lookup[tuple(o)] for o in order.tolist()], dtype=np.int64)
        else:
            self.orderings = np.zeros((0, 0), dtype=int)
            self.perm = np.zeros(0, dtype=np.int64)
        return self


def _ratio_stat(num, den, reps_num, reps_den, shrink, level, bounds):
    """Estimates, (G, 2) intervals and (B, G) replicates of the ratios num / den;
    bounds = (low, high) arrays, each group's possible range."""
    est = bs.ratio_replicates(num[None, :], den[None, :])[0]
    reps = bs.ratio_replicates(reps_num, reps_den)
    ci = bs.intervals(est, reps, level, shrink, *bounds)
    return est, ci, reps


def group_range(group, values, keep, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per group: the smallest and largest of `values` on the rows `keep`
    (the rows a ratio's denominator counts). A weighted mean of these values, and so
    every resample of it, lies in this range; +-inf for an empty group."""
    group = np.asarray(group, dtype=np.int64)[keep]
    values = np.asarray(values, dtype=float)[keep]
    low = np.full(n_groups, np.inf)
    high = np.full(n_groups, -np.inf)
    np.minimum.at(low, group, values)
    np.maximum.at(high, group, values)
    return low, high


def _count_section(c: _CountData, w_units, v_eval, level) -> tuple[dict, dict]:
    nv, no, nc = len(c.variants), len(c.objects), len(c.counts)
    out = {"by_variant": [], "by_variant_object": [], "by_variant_object_count": []}
    reps_out = {}
    if c.n_rows == 0:
        return out, reps_out
    fine = (c.variant * no + c.object) * nc + c.count
    n_fine = nv * no * nc
    # Resampled sums of: responses with an answer or "can't tell", answers, |errors|, matches.
    quantities = np.stack([c.nonskip, c.answered, c.abs_error, c.match])
    nq = len(quantities)
    n_boot = w_units.shape[0]
    sums = bs.crossed_sums(np.tile(c.unit, nq), np.tile(c.evaluator, nq),
                           (fine[None, :] * nq + np.arange(nq)[:, None]).ravel(),
                           quantities.ravel(), n_fine * nq, w_units, v_eval)
    sums = sums.reshape(n_boot, nv, no, nc, nq)
    point = np.stack([np.bincount(fine, weights=q, minlength=n_fine)
                      for q in (*quantities, c.skipped)], axis=-1)
    point = point.reshape(nv, no, nc, nq + 1)
    images = defaultdict(set)
    for g, i in zip(fine.tolist(), c.item.tolist()):
        images[g].add(i)

    levels = [
        ("by_variant", c.variant, (nv,), sums.sum(axis=(2, 3)), point.sum(axis=(1, 2))),
        ("by_variant_object", c.variant * no + c.object, (nv, no), sums.sum(axis=3),
         point.sum(axis=2)),
        ("by_variant_object_count", fine, (nv, no, nc), sums, point),
    ]
    for name, group, shape, s, p in levels:
        n_groups = int(np.prod(shape))
        s = s.reshape(n_boot, n_groups, nq)
        p = p.reshape(n_groups, nq + 1)  # the point sums also hold the skips
        stat = {}
        # eq. 9 and eq. 10 over one n, the images given a count; "can't tell" beside them,
        # and counted as a miss only in the labelled sensitivity row.
        for key, num_i, den_i, num_rows, den_rows in (
                ("mean_abs_error", 2, 1, c.abs_error, c.answered),
                ("match_ratio", 3, 1, c.match, c.answered),
                ("cant_tell_rate", None, 0, c.cant_tell, c.nonskip),
                ("match_ratio_cant_tell_as_miss", 3, 0, c.match, c.nonskip)):
            num = p[:, num_i] if num_i is not None else p[:, 0] - p[:, 1]
            rnum = s[:, :, num_i] if num_i is not None else s[:, :, 0] - s[:, :, 1]
            shrink = bs.ratio_shrink(c.unit, c.evaluator, group, num_rows, den_rows, n_groups,
                                     level)
            bounds = group_range(group, num_rows, den_rows > 0, n_groups)
            stat[key] = _ratio_stat(num, p[:, den_i], rnum, s[:, :, den_i], shrink, level,
                                    bounds)
        if name == "by_variant":
            reps_out = {"mean_abs_error": stat["mean_abs_error"][2],
                        "match_ratio": stat["match_ratio"][2]}
        shown = p[:, 0] + p[:, 4]
        for g in range(n_groups):
            if shown[g] == 0:
                continue
            idx = np.unravel_index(g, shape)
            rec = {"variant": c.variants[idx[0]]}
            if len(idx) > 1:
                rec["object"] = c.objects[idx[1]]
            if len(idx) > 2:
                rec["count"] = c.counts[idx[2]]
            fine_groups = _fine_groups(idx, no, nc)
            rec["n"] = int(p[g, 0])
            rec["n_answered"] = int(p[g, 1])
            rec["n_images"] = len(set().union(*(images[f] for f in fine_groups)))
            for key, (est, ci, _) in stat.items():
                rec[key] = est[g]
                rec[key + "_ci"] = ci[g].tolist()
            rec["task_skip_rate"] = p[g, 4] / shown[g]
            out[name].append(rec)
    return out, reps_out


def _fine_groups(idx, no, nc) -> list[int]:
    v = idx[0]
    objs = [idx[1]] if len(idx) > 1 else range(no)
    cnts = [idx[2]] if len(idx) > 2 else range(nc)
    return [(v * no + o) * nc + k for o in objs for k in cnts]


def _preference_section(r: _RankData, w_units, v_eval, level) -> tuple[dict, dict]:
    out = {"by_variant": [], "ranking_skip_rate": math.nan, "ranking_skip_rate_ci": [math.nan] * 2,
           "skip_reasons": {}, "by_item": [],
           "n_rankings": r.n_rankings, "n_ranked": int(r.done.sum()), "m": r.m}
    reps_out = {}
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
    shrink_p = bs.ratio_shrink(r.unit[rows_done], r.evaluator[rows_done], r.variant[rows_done],
                               row_score[rows_done], np.ones(int(rows_done.sum())), nv, level)
    score_low, score_high = group_range(r.variant, row_score, rows_done, nv)
    score_ci = bs.intervals(score_point_p, score_reps_p, level, shrink_p[present],
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
    shrink_pl = bs.shrink_factors(var_u, var_e, np.maximum(var_p - var_u - var_e, 0.0),
                                  np.full(len(present), n_u), np.full(len(present), n_e), level)
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
    for j, v in enumerate(present):
        out["by_variant"].append({
            "variant": r.variants[v],
            "score": score_point_p[j],
            "score_ci": score_ci[j].tolist(),
            "mean_rank": r.m + 1 - score_point_p[j],
            "n": int(n_done[v]),
            "n_shown": int(shown_pt[v]),
            "rank_counts": [int(x) for x in np.bincount(
                r.rank[(r.variant == v) & rows_done].astype(int) - 1, minlength=r.m)],
            "pl_strength": gamma_point[j],
            "pl_strength_ci": gamma_ci[j].tolist(),
        })
    out["ranking_skip_rate"] = skip_est
    out["ranking_skip_rate_ci"] = skip_ci[0].tolist()
    reasons = Counter()
    first_row = np.unique(r.ranking, return_index=True)[1]
    for k in first_row[r.skipped[first_row]]:
        reasons[r.skip_reason[k] or "(none given)"] += 1
    out["skip_reasons"] = dict(sorted(reasons.items()))
    item_prompt = {}
    for u, p in zip(r.unit[first_row].tolist(), r.prompt[first_row].tolist()):
        item_prompt.setdefault(u, p)
    shown_by_item = np.bincount(r.ranking_unit, minlength=r.n_units)
    skipped_by_item = np.bincount(r.ranking_unit, weights=r.ranking_skipped, minlength=r.n_units)
    for u in range(r.n_units):
        out["by_item"].append({"item_id": r.unit_ids[u], "prompt": item_prompt.get(u, ""),
                               "n_shown": int(shown_by_item[u]),
                               "n_skipped": int(skipped_by_item[u]),
                               "ranking_skip_rate": skipped_by_item[u] / shown_by_item[u]})
    return out, reps_out


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def _unit_means(unit, variant, num, den, n_units, nv):
    key = unit * nv + variant
    s_num = np.bincount(key, weights=num, minlength=n_units * nv).reshape(n_units, nv)
    s_den = np.bincount(key, weights=den, minlength=n_units * nv).reshape(n_units, nv)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s_den > 0, s_num / np.where(s_den > 0, s_den, 1), np.nan)


def _difference_shrink(unit, evaluator, variant, num, den, a, b, level) -> float:
    """Shrink factor for ratio(a) - ratio(b), from linearised contributions."""
    z = np.zeros(len(num))
    for v, sign in ((a, 1.0), (b, -1.0)):
        rows = variant == v
        d = den[rows].sum()
        if d > 0:
            z[rows] = sign * (num[rows] - num[rows].sum() / d * den[rows]) / d
    keep = ((variant == a) | (variant == b)) & (den > 0)
    parts = bs.linearised_variances(unit[keep], evaluator[keep],
                                    np.zeros(int(keep.sum()), dtype=np.int64), z[keep], 1)
    return float(bs.shrink_factors(*parts, level)[0])


def _tests_section(c: _CountData, r: _RankData, comparisons, count_reps, pref_reps, level,
                   alpha, posthoc, seed) -> dict:
    variants = c.variants
    nv = len(variants)
    index = {v: k for k, v in enumerate(variants)}
    paired = []
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
    for a, b in comparisons:
        ia, ib = index[a], index[b]
        for task, measure, unit, ev, var, num, den, n_units, reps in measures:
            means = _unit_means(unit, var, num, den, n_units, nv)
            both = np.isfinite(means[:, ia]) & np.isfinite(means[:, ib])
            if not both.any():
                continue
            d = means[both, ia] - means[both, ib]
            test = stats.wilcoxon_signed_rank(d, EXACT_MAX_N)
            sa, sb = den[var == ia].sum(), den[var == ib].sum()
            diff = num[var == ia].sum() / sa - num[var == ib].sum() / sb
            shrink = _difference_shrink(unit, ev, var, num, den, ia, ib, level)
            # ratio(a) - ratio(b) lies between low(a) - high(b) and high(a) - low(b).
            low, high = group_range(var, num / np.where(den > 0, den, 1), den > 0, nv)
            ci = bs.interval(diff, reps[:, ia] - reps[:, ib], level, shrink,
                             (low[ia] - high[ib], high[ia] - low[ib]))
            paired.append({"task": task, "measure": measure, "a": a, "b": b,
                           "difference": diff, "difference_ci": ci,
                           "n_pairs": test["n_pairs"], "n_nonzero": test["n_nonzero"],
                           "mean_paired_difference": float(d.mean()),
                           "statistic": test["statistic"], "p_value": test["p_value"],
                           "method": f"Wilcoxon signed-rank ({test['method']})"
                           if test["method"] else "Wilcoxon signed-rank (no non-zero pairs)"})
    for rec, p in zip(paired, stats.holm([x["p_value"] for x in paired])):
        rec["p_holm"] = p
        rec["significant"] = bool(p is not None and math.isfinite(p) and p < alpha)
    return {"paired": paired, **_ranking_tests(r, alpha, posthoc, seed)}


def _ranking_tests(r: _RankData, alpha, posthoc, seed) -> dict:
    out = {"friedman": None, "posthoc": None, "position_bias": None}
    if r.n_rankings == 0 or r.m < 2 or not r.done.any():
        return out
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
    out["friedman"] = {"blocks": "items (mean rank over their evaluators)",
                       "n_blocks": fr["n_blocks"], "k": fr["k"], "statistic": fr["statistic"],
                       "p_value": fr["p_value"], "df": fr["k"] - 1,
                       "mean_ranks": dict(zip(names, fr["mean_ranks"])),
                       # Kendall's W over the caption blocks: how consistently the captions
                       # order the variants (an effect size), not agreement between raters.
                       "w_between_captions": (fr["statistic"] / (fr["n_blocks"] * (fr["k"] - 1))
                                              if math.isfinite(fr["statistic"]) else math.nan)}
    nem = stats.nemenyi(fr["mean_ranks"], fr["n_blocks"], alpha)
    nemenyi = [{"a": names[p["i"]], "b": names[p["j"]],
                "mean_rank_difference": p["mean_rank_difference"], "p_value": p["p_value"]}
               for p in nem["pairs"]]
    holm_rows = []
    scores = len(present) + 1 - blocks  # per item mean score
    for i, j in itertools.combinations(range(len(present)), 2):
        t = stats.wilcoxon_signed_rank(scores[:, i] - scores[:, j], EXACT_MAX_N)
        holm_rows.append({"a": names[i], "b": names[j], "n_pairs": t["n_pairs"],
                          "statistic": t["statistic"], "p_value": t["p_value"],
                          "method": t["method"]})
    for rec, p in zip(holm_rows, stats.holm([x["p_value"] for x in holm_rows])):
        rec["p_holm"] = p
    out["posthoc"] = {"primary": posthoc,
                      "nemenyi": {"critical_difference": nem["critical_difference"],
                                  "pairs": nemenyi},
                      "holm_wilcoxon": holm_rows}
    out["position_bias"] = _position_bias(r, seed)
    return out


def _position_bias(r: _RankData, seed: int) -> dict:
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
    return {
        "mean_rank_by_position": np.nanmean(by_pos, axis=0).tolist(),
        "first_choice_by_position": np.bincount(pos[ranks == 1], minlength=m).tolist(),
        "statistic": test["statistic"], "p_value": test["p_value"],
        "n_permutations": test["n_permutations"], "n_rankings": test["n_rankings"],
        "method": POSITION_METHOD,
    }


# ---------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------

def _agreement_section(t: ResponseTable, c: _CountData, r: _RankData) -> dict:
    out = {"count_alpha_interval": None, "rank_alpha_ordinal": None, "kendall_w": None,
           "auto_counter": None}
    if c.n_rows:
        values = np.where(c.answered > 0, c.answer, np.nan)
        out["count_alpha_interval"] = {
            "alpha": stats.krippendorff_alpha_long(c.item, values, "interval"),
            "units": "count images", "values": "answered counts ('can't tell' missing)",
            "n_pairable_units": _pairable(c.item, values)}
    if r.n_rankings and r.m >= 2:
        done = ~r.skipped
        unit = r.unit[done] * len(r.variants) + r.variant[done]
        out["rank_alpha_ordinal"] = {
            "alpha": stats.krippendorff_alpha_long(unit, r.rank[done], "ordinal"),
            "units": "(caption, variant) pairs", "values": "ranks",
            "n_pairable_units": _pairable(unit, r.rank[done])}
        per_item = []
        for u in range(r.n_units):
            rows = (r.ranking_unit == u) & r.done
            if rows.sum() >= 2:
                per_item.append(stats.kendall_w(-r.ranks[rows][:, r.present]))
        all_rankings = r.ranks[r.done][:, r.present]
        out["kendall_w"] = {
            "per_item_mean": float(np.mean(per_item)) if per_item else math.nan,
            "per_item_median": float(np.median(per_item)) if per_item else math.nan,
            "n_items": len(per_item),
            "all_rankings": (stats.kendall_w(-all_rankings) if len(all_rankings) >= 2
                             else math.nan),
            "note": "per item: agreement among the evaluators of one caption; all rankings: "
                    "concordance of every ranking about the variants' order"}
    if c.n_rows and np.isfinite(c.auto).any():
        both = (c.answered > 0) & np.isfinite(c.auto)
        if both.any():
            out["auto_counter"] = {
                "n": int(both.sum()),
                "mean_abs_difference": float(np.abs(c.answer[both] - c.auto[both]).mean()),
                "quadratic_weighted_kappa": stats.quadratic_weighted_kappa(c.answer[both],
                                                                           c.auto[both]),
                "exact_agreement": float((c.answer[both] == c.auto[both]).mean())}
    return out


def _pairable(unit, values) -> int:
    u = np.asarray(unit)[np.isfinite(values)]
    if len(u) == 0:
        return 0
    _, counts = np.unique(u, return_counts=True)
    return int((counts >= 2).sum())


# ---------------------------------------------------------------------------
# Evaluators
# ---------------------------------------------------------------------------

def evaluator_reliability(t: ResponseTable) -> list[dict]:
    """Per evaluator: gold accuracy, can't-tell rate, task skip rate (skipped tasks of
    either kind over all tasks shown, repeats and gold included: the rate the exclusion
    rule reads), ranking skip rate (skipped rankings over rankings shown), median seconds per
    item, and consistency on repeated items (share of the same count answered
    again; for rankings the share of variant pairs put in the same order)."""
    task = t["task"].tolist()
    ev = t["evaluator_id"].tolist()
    item = t["item_id"].tolist()
    var = t["variant"].tolist()
    gold = t["is_gold"].tolist()
    skipped = t["skipped"].tolist()
    answer = t["answer_count"].tolist()
    truth = t["true_count"].tolist()
    rank = t["rank"].tolist()
    seconds = t["seconds"].tolist()
    repeat_of = t["repeat_of"].tolist()

    acc = defaultdict(lambda: {"n_count": 0, "n_rank": 0, "gold": [], "cant_tell": 0,
                               "answered_or_ct": 0, "shown": 0, "skipped": 0,
                               "rankings": 0, "rankings_skipped": 0})
    times = defaultdict(dict)            # evaluator -> item -> seconds
    answers = defaultdict(dict)          # evaluator -> item -> answer or ranking
    for k in range(len(task)):
        e, i = ev[k], item[k]
        a = acc[e]
        if task[k] == "count":
            a["shown"] += 1
            a["skipped"] += skipped[k]
            if not repeat_of[k] and not gold[k]:
                a["n_count"] += 1
            if not skipped[k]:
                a["answered_or_ct"] += 1
                a["cant_tell"] += answer[k] != answer[k]
                if gold[k]:
                    a["gold"].append(answer[k] == truth[k])
            answers[e][i] = None if skipped[k] else ("ct" if answer[k] != answer[k] else answer[k])
        else:
            if i not in answers[e]:
                answers[e][i] = None if skipped[k] else {}
                a["shown"] += 1
                a["skipped"] += skipped[k]
                a["rankings"] += 1
                a["rankings_skipped"] += skipped[k]
                if not repeat_of[k]:
                    a["n_rank"] += 1
            if answers[e][i] is not None:
                answers[e][i][var[k]] = rank[k]
        if seconds[k] == seconds[k]:
            times[e][i] = max(times[e].get(i, 0.0), seconds[k])

    repeats = defaultdict(list)
    for k in range(len(task)):
        if repeat_of[k]:
            repeats[ev[k]].append((item[k], repeat_of[k]))
    out = []
    for e in sorted(acc):
        a = acc[e]
        scores = []
        for rep, orig in dict.fromkeys(repeats[e]):
            x, y = answers[e].get(rep), answers[e].get(orig)
            if x is None or y is None:
                continue
            if isinstance(x, dict) and isinstance(y, dict):
                common = sorted(set(x) & set(y))
                pairs = list(itertools.combinations(common, 2))
                if pairs:
                    same = sum((x[p] < x[q]) == (y[p] < y[q]) for p, q in pairs)
                    scores.append(same / len(pairs))
            elif not isinstance(x, dict) and not isinstance(y, dict):
                scores.append(float(x == y))
        t_items = list(times[e].values())
        out.append({
            "evaluator_id": e,
            "n_count": a["n_count"],
            "n_rank": a["n_rank"],
            "n_gold": len(a["gold"]),
            "gold_accuracy": float(np.mean(a["gold"])) if a["gold"] else math.nan,
            "cant_tell_rate": (a["cant_tell"] / a["answered_or_ct"]
                               if a["answered_or_ct"] else math.nan),
            "task_skip_rate": a["skipped"] / a["shown"] if a["shown"] else math.nan,
            "ranking_skip_rate": (a["rankings_skipped"] / a["rankings"] if a["rankings"]
                                  else math.nan),
            "median_seconds": float(np.median(t_items)) if t_items else math.nan,
            "n_repeats": len(scores),
            "consistency": float(np.mean(scores)) if scores else math.nan,
        })
    return out


def apply_exclusions(reliability: list[dict], rules: Exclusions) -> dict[str, list[str]]:
    """{evaluator_id: reasons} for the evaluators that break a rule. A rule whose
    measure is undefined for an evaluator (no gold item seen, say) does not apply."""
    checks = (
        ("gold_accuracy", rules.min_gold_accuracy, "<", "gold accuracy"),
        ("cant_tell_rate", rules.max_cant_tell_rate, ">", "can't-tell rate"),
        ("median_seconds", rules.min_median_seconds, "<", "median seconds per item"),
        ("consistency", rules.min_consistency, "<", "consistency on repeats"),
        ("task_skip_rate", rules.max_task_skip_rate, ">", "task skip rate"),
    )
    out: dict[str, list[str]] = {}
    for rec in reliability:
        reasons = []
        for key, limit, op, label in checks:
            value = rec[key]
            if limit is None or value is None or not math.isfinite(value):
                continue
            if (op == "<" and value < limit) or (op == ">" and value > limit):
                reasons.append(f"{label} {value:.3g} {op} {limit:g}")
        if reasons:
            out[rec["evaluator_id"]] = reasons
    return out
