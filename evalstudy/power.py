"""Power analysis: how many evaluators a study needs to find a difference, by simulating
whole studies with `simulate.RaterSimulator` and analysing each with the analysis' own
planned test. `power_analysis` returns a `PowerAnalysis`; `python -m evalstudy power --json`
prints its `to_dict()`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import stats
from .protocol import DEFAULT_ALPHA, DEFAULT_POWER, Protocol
from .simulate import RaterSimulator, simulate_study, synthetic_protocol


@dataclass(frozen=True)
class PowerRow:
    """One design of the grid. n_evaluators: raters; n_items: captions (rank task) or
    count images (count task, both variants') the design shows; overlap: raters per item.
    power: share of the simulated studies the analysis flags significant (Holm-adjusted
    over the planned rows), power_se its binomial standard error; power_unadjusted(_se):
    the same for p < alpha before Holm."""

    n_evaluators: int
    n_items: int
    overlap: int
    power: float
    power_se: float
    power_unadjusted: float
    power_unadjusted_se: float


@dataclass(frozen=True)
class PowerAnalysis:
    """`power_analysis`'s answer: the settings it ran with (task "count" or "rank", variants
    a and b, alpha, the target power, n_sims studies per design, items_per_evaluator, the
    planned_rows Holm adjusts over), a row per number of evaluators, in the order asked,
    and required_evaluators, the fewest whose power reaches the target (None if none does)."""

    task: str
    a: str
    b: str
    alpha: float
    target: float
    n_sims: int
    items_per_evaluator: int
    planned_rows: int
    rows: tuple[PowerRow, ...]
    required_evaluators: int | None

    def to_dict(self) -> dict[str, object]:
        """The JSON form `python -m evalstudy power --json` prints (fields in this order)."""
        return dataclasses.asdict(self)


def _check_power_inputs(simulator: RaterSimulator, shown: list[str], *, evaluators: Sequence[int],
                        **settings: float) -> None:
    """ValueError naming the argument and its value, before any study is simulated: every
    variant shown needs a quality, every design number must be a whole number of at least 1,
    alpha and the target power must be probabilities."""
    missing = [v for v in shown if v not in simulator.variant_quality]
    if missing:
        raise ValueError(f"no quality given for variant(s) {', '.join(map(repr, missing))}; "
                         f"quality names {sorted(simulator.variant_quality)}")
    bad = [n for n in evaluators if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1]
    if not len(evaluators) or bad:
        raise ValueError(f"evaluators must be whole numbers of at least 1, got {list(evaluators)}")
    for name in ("items_per_evaluator", "overlap", "n_sims"):
        x = settings[name]
        if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {x!r}")
    for name, top in (("alpha", "1)"), ("target", "1]")):
        x = settings[name]
        if not (0 < x < 1 or (name == "target" and x == 1)):
            raise ValueError(f"{name} must be in (0, {top}, got {x!r}")


def power_analysis(simulator: RaterSimulator, a: str, b: str, *, task: str = "rank",
                   evaluators: Sequence[int] = (5, 10, 20, 40, 80), items_per_evaluator: int = 20,
                   overlap: int = 3, n_sims: int = 200, alpha: float = DEFAULT_ALPHA,
                   target: float = DEFAULT_POWER, seed: int = 0,
                   objects: Sequence[str] = ("circle", "square", "triangle"),
                   counts: Sequence[int] = (1, 2, 3, 4, 5), ranked: Sequence[str] | None = None,
                   planned_rows: int | None = None) -> PowerAnalysis:
    """How many evaluators find a difference between variants a and b?

    For each number of evaluators E, a study with `items_per_evaluator` items per
    evaluator (per task) and `overlap` evaluators per item is simulated `n_sims`
    times and analysed with the planned comparison's test of the analysis, the crossed t
    (`analysis.significance.crossed_t_test`: difference / crossed-bootstrap standard error,
    Satterthwaite's df; the count task compares mean absolute error, the rank task the
    preference score). The
    number of items grows with E: E * items_per_evaluator / overlap captions, or
    as many prompt-and-seed pairs (each shown for both variants).

    Power is the share of studies whose row the analysis flags `significant`: Holm's
    adjusted p below alpha over every planned row (`tests.paired`: one per planned
    comparison and measure, mean |error| and match ratio for a count task, the score for a
    rank task; `planned_row_count` of a protocol). `planned_rows` is that number; by default
    the simulated design's own rows with this one comparison (2 for count, 1 for rank). The
    simulated rows enter Holm with their own p-values (the count task's power is its mean
    |error| row's); the planned rows not simulated enter with p = 1, so with more rows than
    simulated the power is a lower bound (Holm's flag needs at most Bonferroni's p x rows).
    `power_unadjusted` is the share with p < alpha. `required_evaluators` is the smallest
    E whose (Holm) power >= target (None if none in the grid reaches it).

    The rank task ranks the variants `ranked` together (2 to 6 of the simulator's; default
    a and b alone, a pairwise study), with ties when the simulator's tie_margin is above 0;
    the preference scores are on mid-ranks, as in the analysis.
    """
    from .analysis import _CountData, _evaluator_codes, _RankData  # the analysis' own codes
    from .analysis.significance import crossed_t_test, planned_difference

    if task not in ("count", "rank"):
        raise ValueError(f"task must be 'count' or 'rank', got {task!r}")
    together = list(ranked) if ranked is not None else [a, b]
    if task == "rank" and (a not in together or b not in together or len(set(together)) != len(together)):
        raise ValueError(f"ranked must name a and b once each, got {together}")
    _check_power_inputs(simulator, together if task == "rank" else [a, b], evaluators=evaluators,
                        items_per_evaluator=items_per_evaluator, overlap=overlap, n_sims=n_sims,
                        alpha=alpha, target=target)
    simulated = 2 if task == "count" else 1
    family = simulated if planned_rows is None else planned_rows
    if family < simulated:
        raise ValueError(f"planned_rows must be at least the {simulated} row(s) a {task} task's "
                         f"comparison gives, got {planned_rows}")
    rng = np.random.default_rng(seed)
    rows: list[PowerRow] = []
    for n_ev in evaluators:
        k = min(overlap, n_ev)
        n_items = max(2, round(n_ev * items_per_evaluator / k))
        if task == "rank":
            protocol = synthetic_protocol(together, n_captions=n_items, n_evaluators=n_ev,
                                          overlap=k, objects=(), allow_ties=simulator.tie_margin > 0)
        else:
            # items_per_evaluator count images per evaluator, two variants per pair
            per_prompt = max(1, round(n_items / 2 / (len(objects) * len(counts))))
            protocol = synthetic_protocol([a, b], objects=objects, counts=counts,
                                          images_per_prompt=per_prompt, n_captions=0,
                                          n_evaluators=n_ev, overlap=k)
        shown = together if task == "rank" else [a, b]
        sim = dataclasses.replace(simulator, variant_quality={
            v: simulator.variant_quality[v] for v in shown})
        hits = raw_hits = 0
        for _ in range(n_sims):
            table = simulate_study(sim, protocol, seed=int(rng.integers(2 ** 31)))
            ev_code, _ = _evaluator_codes(table)
            if task == "rank":
                r = _RankData.build(table, ev_code, together)
                done = ~r.skipped & np.isin(r.variant, [together.index(a), together.index(b)])
                unit, ev = r.unit[done], r.evaluator[done]
                var = (r.variant[done] == together.index(b)).astype(np.int64)  # a: 0, b: 1
                num, den = (r.m + 1 - r.rank[done]).astype(float), np.ones(int(done.sum()))
            else:
                c = _CountData.build(table, ev_code, [a, b], list(objects))
                unit, ev, var, den = c.unit, c.evaluator, c.variant, c.answered
            # the analysis' rows of this comparison, in its order: mean |error|, match ratio
            measures = [num] if task == "rank" else [c.abs_error, c.match]
            ps = []
            for values in measures:
                diff, spread = planned_difference(unit, ev, var, values, den, 0, 1, 2, 1.0 - alpha)
                ps.append(crossed_t_test(diff, float(spread.var[0]), float(spread.df[0]))[1])
            p_holm = stats.holm(ps + [1.0] * (family - simulated))[0]
            raw_hits += bool(ps[0] == ps[0] and ps[0] < alpha)
            hits += bool(p_holm == p_holm and p_holm < alpha)
        power, raw = hits / n_sims, raw_hits / n_sims
        rows.append(PowerRow(n_evaluators=n_ev, n_items=n_items if task == "rank" else
                             2 * per_prompt * len(objects) * len(counts),
                             overlap=k, power=power, power_se=math.sqrt(power * (1 - power) / n_sims),
                             power_unadjusted=raw, power_unadjusted_se=math.sqrt(raw * (1 - raw) / n_sims)))
    required = next((r.n_evaluators for r in rows if r.power >= target), None)
    return PowerAnalysis(task=task, a=a, b=b, alpha=alpha, target=target, n_sims=n_sims,
                         items_per_evaluator=items_per_evaluator, planned_rows=family, rows=tuple(rows),
                         required_evaluators=required)


def planned_row_count(protocol: Protocol) -> int:
    """The rows of the analysis' `tests.paired`, over which Holm adjusts: per planned
    comparison, mean |error| and match ratio with a count task, the score with a ranking task."""
    per = 2 * (protocol.count_task is not None) + (protocol.preference_task is not None)
    return len(protocol.comparisons()) * per
