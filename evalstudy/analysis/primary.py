"""The pre-registered primary comparisons: the stopping rule's looks and how robust each
conclusion is to dropping a few evaluators (or items).

A comparison's estimate is ratio(a) - ratio(b) of one measure (eq. 9's mean error, eq.
10's match ratio, or the preference score), as in the tests section; its variance is the
crossed-bootstrap variance target of that section (`significance.planned_difference`), so the
standard error here is the one the paired difference's interval is built from.

Robustness (Broderick, Giordano and Meager, "An automatic finite-sample robustness
metric", the approximate maximum influence perturbation): each evaluator's influence on
the difference is the sum of its rows' linearised contributions (dropping the evaluator
moves the estimate by about minus that sum). Evaluators are dropped in the order of
their influence towards the other conclusion, and the approximation names how many
along that order would change it: the sign of the difference, or whether its interval
(est +- t sqrt(variance), the same variance and df) excludes zero. Each answer is then
confirmed by refitting without the evaluators named, going on along the same order until
the refitted conclusion changes. That count is an upper bound: a set off the influence
order can be smaller (the audit's 25_amip_exhaustive.py found 8 such cases in 120). So
where there are at most EXHAUSTIVE_MAX evaluators (items), every subset smaller than the
greedy count (up to half of them) is refitted too, and the count is the true minimum
(`Fragility.search` "exhaustive"); above that it stays "at most k" along the influence
order ("greedy"). `removed` lists the set found; removing all but the last of a greedy
set does not change the conclusion. The same for items (count: prompt-and-seed pairs;
rank: captions).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy import stats as sps

from .. import sequential
from ..protocol import PrimaryPlan
from ..responses import ResponseTable
from .data import _CountData, _evaluator_codes, _RankData
from .result import Fragility, Look, PrimaryComparisonResult, PrimarySection
from .significance import planned_difference

ROBUSTNESS_MAX_SHARE = 0.5  # search no further than half the evaluators (items)
# Up to this many evaluators (items), every subset up to half of them is refitted. A
# refit of the interval (the crossed variance) took 3-4 ms on one shared core (20 raters x
# 40 units); at 10 the worst case is 637 refits (sum of C(10, k), k <= 5), about 2.5 s per
# comparison, at 12 it would be 2,509 (about 10 s). The sign needs only the difference,
# which costs microseconds. Above it the greedy bound stands.
EXHAUSTIVE_MAX = 10
ROBUSTNESS_METHOD = ("approximate maximum influence perturbation (Broderick, Giordano and "
                     "Meager): evaluators (items) dropped in the order of their linearised "
                     "influence towards the other conclusion; each count confirmed by refitting "
                     f"without them; with at most {EXHAUSTIVE_MAX} evaluators (items) every smaller "
                     "subset up to half is refitted too, so the count is the fewest; above that it "
                     "is at most that many (greedy, along the influence order); interval: "
                     "estimate +- t(df) x crossed-bootstrap standard error")


# ---------------------------------------------------------------------------
# One comparison's rows, estimate and variance
# ---------------------------------------------------------------------------

class _Rows:
    """A measure's rows as arrays: resampling unit, evaluator, variant, numerator, denominator."""

    def __init__(self, count: _CountData, rank: _RankData, measure: str):
        if measure == "score":
            done = ~rank.skipped
            self.unit, self.evaluator, self.variant = (rank.unit[done], rank.evaluator[done],
                                                       rank.variant[done])
            self.num = (rank.m + 1 - rank.rank[done]).astype(float)
            self.den = np.ones(int(done.sum()))
            self.unit_ids = [str(u) for u in rank.unit_ids]
        else:
            self.unit, self.evaluator, self.variant = count.unit, count.evaluator, count.variant
            self.num = count.abs_error if measure == "mean_abs_error" else count.match
            self.den = count.answered
            self.unit_ids = [str(u).replace("\x1eitem\x1f", "").replace("\x1f", " / seed ")
                             for u in count.unit_ids]
        self.n_variants = len(count.variants)

    def estimate(self, keep: np.ndarray | None, ia: int, ib: int, level: float
                 ) -> tuple[float, float, float]:
        """(difference, variance, df) on the rows `keep` (all when None); NaN where a
        variant has no rows."""
        sel = slice(None) if keep is None else keep
        unit, ev, var, num, den = (self.unit[sel], self.evaluator[sel], self.variant[sel],
                                   self.num[sel], self.den[sel])
        diff, spread = planned_difference(unit, ev, var, num, den, ia, ib, self.n_variants, level)
        return diff, float(spread.var[0]), float(spread.df[0])

    def difference(self, keep: np.ndarray, ia: int, ib: int) -> float:
        """ratio(a) - ratio(b) on the rows `keep`, without its variance; NaN where a
        variant has no denominator."""
        ratios = []
        for v in (ia, ib):
            rows = keep & (self.variant == v)
            d = self.den[rows].sum()
            ratios.append(self.num[rows].sum() / d if d > 0 else math.nan)
        return float(ratios[0] - ratios[1])

    def influence(self, ia: int, ib: int) -> np.ndarray:
        """Each row's linearised contribution to ratio(a) - ratio(b)."""
        z = np.zeros(len(self.num))
        for v, sign in ((ia, 1.0), (ib, -1.0)):
            rows = self.variant == v
            d = self.den[rows].sum()
            if d > 0:
                z[rows] = sign * (self.num[rows] - self.num[rows].sum() / d * self.den[rows]) / d
        return z


def _half_width(var: float, df: float, level: float) -> float:
    if not (math.isfinite(var) and var >= 0 and math.isfinite(df)):
        return math.nan
    return float(sps.t.ppf((1.0 + level) / 2.0, max(df, 1.0)) * math.sqrt(var))


# ---------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------

def _conclusion(diff: float, var: float, df: float, level: float, criterion: str) -> bool:
    if criterion == "sign":
        return diff > 0
    h = _half_width(var, df, level)
    return bool(math.isfinite(h) and abs(diff) > h)


def _fragility(rows: _Rows, key: np.ndarray, ids: list[str], ia: int, ib: int, level: float,
               criterion: str, by: str) -> Fragility:
    """How many keys (evaluators or units, named by `by`) must go to change the conclusion:
    the fewest (search "exhaustive") where at most EXHAUSTIVE_MAX are present, else an
    upper bound along the influence order (search "greedy")."""
    present = np.unique(key[(rows.variant == ia) | (rows.variant == ib)])
    diff, var, df = rows.estimate(None, ia, ib, level)
    search = "exhaustive" if len(present) <= EXHAUSTIVE_MAX else "greedy"
    unchanged = Fragility(by=by, criterion=criterion, n_total=int(len(present)), approximate=None,
                          confirmed=None, removed=[], search=search)
    if not math.isfinite(diff):
        return unchanged
    psi = np.bincount(key, weights=rows.influence(ia, ib), minlength=len(ids))[present]
    sign = 1.0 if diff > 0 else -1.0
    h = _half_width(var, df, level)
    before = _conclusion(diff, var, df, level, criterion)
    if criterion == "significance" and not before:
        # Not excluding zero: what would make it do so? Drop those pulling towards zero,
        # until the nearer end of the interval passes zero.
        order = np.argsort(sign * psi)              # most negative (towards zero) first
        moved = sign * (diff - np.cumsum(psi[order])) - h
        hit = np.flatnonzero(moved > 0)
    else:
        order = np.argsort(-sign * psi)             # most in the estimate's direction first
        margin = 0.0 if criterion == "sign" else h
        moved = sign * (diff - np.cumsum(psi[order])) - margin
        hit = np.flatnonzero(moved <= 0)
    limit = max(1, int(len(present) * ROBUSTNESS_MAX_SHARE))
    approx = int(hit[0]) + 1 if len(hit) and hit[0] < limit else None
    unchanged = dataclasses.replace(unchanged, approximate=approx)
    ranked = present[order]

    def flips(drop: np.ndarray) -> bool:
        keep = ~np.isin(key, drop)
        if criterion == "sign":
            d = rows.difference(keep, ia, ib)
            return math.isfinite(d) and (d > 0) != before
        d, v, f = rows.estimate(keep, ia, ib, level)
        return math.isfinite(d) and _conclusion(d, v, f, level, criterion) != before

    def changed(k: int) -> bool:
        return flips(ranked[:k])

    # Confirm by refitting along the same order: start at the approximation (or 1), step
    # down while one fewer still changes it, up until it does.
    k = approx or 1
    found: int | None = None
    if changed(k):
        while k > 1 and changed(k - 1):
            k -= 1
        found = k
    else:
        while k < limit and not changed(k):
            k += 1
        found = k if changed(k) else None
    removed = ranked[:found] if found else None
    if search == "exhaustive":
        # Every subset smaller than the greedy set (up to half), in the influence order's
        # combination order, so that of equal sizes the one nearest that order is named.
        for size in range(1, (found or limit + 1)):
            hit_set = next((c for c in itertools.combinations(ranked, size) if flips(np.array(c))), None)
            if hit_set is not None:
                found, removed = size, np.array(hit_set)
                break
    if found is None or removed is None:
        return unchanged
    return dataclasses.replace(unchanged, confirmed=found, removed=[ids[j] for j in removed.tolist()])


def robustness(rows: _Rows, ev_ids: list[str], ia: int, ib: int, level: float) -> list[Fragility]:
    """Per criterion (sign, significance) and per kind (evaluators, items) of removal."""
    out = []
    for by, key, ids in (("evaluators", rows.evaluator, ev_ids), ("items", rows.unit, rows.unit_ids)):
        for criterion in ("sign", "significance"):
            out.append(_fragility(rows, key, ids, ia, ib, level, criterion, by))
    return out


# ---------------------------------------------------------------------------
# The sequential section
# ---------------------------------------------------------------------------

def arrival_order(t: ResponseTable) -> list[str]:
    """Evaluators in the order of their first row in the table (the web app writes rows in
    the order they were given)."""
    seen: dict[str, None] = {}
    for e in t["evaluator_id"].tolist():
        if e and e not in seen:
            seen[e] = None
    return list(seen)


def _build(t: ResponseTable, variants: list[str], objects: list[str], ev_order: list[str]
           ) -> tuple[_CountData, _RankData, list[str]]:
    ev_code, ev_ids = _evaluator_codes(t, ev_order)
    return _CountData.build(t, ev_code, variants, objects), _RankData.build(t, ev_code, variants), ev_ids


def primary_section(t: ResponseTable, plan: PrimaryPlan, *, variants: list[str], objects: list[str], arrival: list[str],
                    ev_order: list[str], level: float, robust: bool = True) -> PrimarySection:
    """Each primary comparison at the looks reached, replayed on the first n_k evaluators in
    arrival order, with its robustness on all the evaluators analysed (unless `robust` is
    False, as in the simulations that need only the looks)."""
    present = set(t["evaluator_id"].tolist())
    arrived = [e for e in arrival if e in present]
    arrived += sorted(present - set(arrived))
    n_now = len(arrived)
    index = {v: k for k, v in enumerate(variants)}
    alpha = plan.alpha / len(plan.comparisons)
    reached = [n for n in plan.looks if n <= n_now]
    look_tables = []
    for n in reached:
        keep = np.isin(t["evaluator_id"], arrived[:n])
        look_tables.append((n, _build(t.subset(keep), variants, objects, ev_order)))
    count, rank, ev_ids = _build(t, variants, objects, ev_order)
    comparisons = []
    for pc in plan.comparisons:
        ia, ib = index[pc.a], index[pc.b]
        looks_in = []
        for n, (c_k, r_k, _) in look_tables:
            d, v, f = _Rows(c_k, r_k, pc.measure).estimate(None, ia, ib, level)
            looks_in.append(sequential.LookInput(n, d, math.sqrt(v) if v >= 0 else math.nan, f))
        outcomes, needed = sequential.monitor(looks_in, plan.looks, alpha, pc.effect, plan.power)
        rows = _Rows(count, rank, pc.measure)
        diff, var, df = rows.estimate(None, ia, ib, level)
        decision = outcomes[-1].decision if outcomes else sequential.CONTINUE
        if not outcomes and math.isfinite(var) and var > 0:
            # Before the first look: the estimate of what the planned effect needs, from now.
            c_last = sequential.boundaries(np.asarray(plan.looks, float) / plan.looks[-1], alpha)[-1]
            needed = n_now * (math.sqrt(var) * (c_last + sps.norm.ppf(plan.power)) / pc.effect) ** 2
        comparisons.append(PrimaryComparisonResult(
            a=pc.a, b=pc.b, measure=pc.measure, effect=pc.effect, alpha=alpha,
            looks=[Look(**vars(o)) for o in outcomes],
            current_look=len(outcomes),
            next_look=(plan.looks[len(outcomes)]
                       if decision == sequential.CONTINUE and len(outcomes) < len(plan.looks)
                       else None),
            decision=decision,
            estimate=diff, se=math.sqrt(var) if var >= 0 else None,
            evaluators_needed=math.ceil(needed) if needed is not None and math.isfinite(needed) else None,
            evaluators_more=(max(0, math.ceil(needed) - n_now)
                             if needed is not None and math.isfinite(needed) else None),
            robustness=robustness(rows, ev_ids, ia, ib, level) if robust else [],
        ))
    decisions = [c.decision for c in comparisons]
    return PrimarySection(rule=sequential.RULE, robustness_method=ROBUSTNESS_METHOD,
                          looks_planned=list(plan.looks), n_evaluators=n_now,
                          looks_taken=len(reached), alpha=plan.alpha, power=plan.power,
                          decision=(sequential.CONTINUE if sequential.CONTINUE in decisions else "stop"),
                          comparisons=comparisons)
