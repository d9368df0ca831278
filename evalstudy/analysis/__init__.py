"""Every statistic of a study, from the responses table, as one typed `AnalysisResult`.

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
is resampled as a paired difference. Rates get Wilson's score interval on the
effective number of trials that the same crossed variance leaves
(`data.rate_intervals`), which has width where every answer went one way; a
difference of two variants' rates (a planned comparison of match ratios) gets
Newcombe's hybrid score interval from the two rates' own intervals
(`data.rate_difference_interval`), which has width where both went one way.

Evaluators are put in a canonical order (by a hash of their responses) before
any resampling, so relabelling evaluators or shuffling rows changes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import bootstrap as bs
from .. import provenance
from ..protocol import (
    DEFAULT_ALPHA,
    DEFAULT_CI_LEVEL,
    DEFAULT_N_BOOT,
    DEFAULT_POSTHOC,
    Exclusions,
    Protocol,
    default_comparisons,
    min_resamples,
)
from ..responses import ResponseTable
from .agreement import _agreement_section
from .count import _count_section
from .data import _CountData, _evaluator_codes, _object_order, _RankData, _variant_order, canonical_evaluator_order
from .evaluators import apply_exclusions, evaluator_reliability
from .pairdesign import (
    _PairData,
    is_pairs_table,
    pair_comparisons,
    pair_position_bias,
    pairs_agreement,
    pairs_preference_section,
)
from .ppi import judge_only_rows, ppi_section
from .preference import _preference_section
from .primary import arrival_order, primary_section
from .record import jsonable
from .result import (
    SCHEMA,
    SCHEMA_VERSION,
    AnalysisResult,
    Data,
    ExcludedEvaluator,
    ExclusionSummary,
    ProtocolRef,
    ResultProvenance,
    SchemaError,
    Sections,
    Settings,
)
from .significance import EXACT_MAX_N, _tests_section

__all__ = ["SCHEMA", "SCHEMA_VERSION", "AnalysisResult", "SchemaError", "analyze",
           "apply_exclusions", "canonical_evaluator_order", "evaluator_reliability", "jsonable"]

CANT_TELL_POLICY = ("'can't tell' enters neither mean_abs_error nor match_ratio (eq. 9 and "
                    "eq. 10 over the same n, the images given a count); it is reported as "
                    "cant_tell_rate, and counted as a miss only in match_ratio_cant_tell_as_miss")
SKIP_POLICY = ("skipped responses enter no score or error; ranking_skip_rate: skipped rankings "
               "over rankings shown; task_skip_rate: skipped tasks over tasks shown")
BOOTSTRAP_METHOD = ("crossed bootstrap: items (count: prompt-and-seed pairs; rank: captions) and "
                    "evaluators resampled together with product weights; percentile intervals at "
                    "BCa-accelerated levels, their spread corrected on the logit scale of the "
                    "statistic's range for the doubly counted item x evaluator term and for small "
                    "samples (t quantile, Satterthwaite degrees of freedom); groups of fewer than 10 "
                    "resampling units (Figure 5's cells) get t intervals with the same variance and "
                    "degrees of freedom, an end past the range taken from the logit scale; rates (match "
                    "ratios, can't-tell, win, tie and skip rates, the left image's share) get Wilson's score "
                    "interval on their effective number of trials (the same crossed variance, a design "
                    "effect of at least one) with the t quantile on the same degrees of freedom; a paired "
                    "difference of two rates gets Newcombe's hybrid score interval (method 10) from the two "
                    "rates' score intervals and the correlation of their estimates from the crossed variances")


@functools.lru_cache(maxsize=1)
def _provenance() -> ResultProvenance:
    """The commit and package versions that computed a result (looked up once per process)."""
    prov = provenance.collect(names=("numpy", "scipy"))
    return ResultProvenance(commit=prov.commit.sha if prov.commit else None,
                            dirty=prov.commit.dirty if prov.commit else None,
                            packages=dict(prov.packages))


def analyze(table: ResponseTable, protocol: Protocol | None = None, n_boot: int = DEFAULT_N_BOOT,
            seed: int = 0, exclusions: bool = True,
            arrival: Sequence[str] | None = None) -> AnalysisResult:
    """Analyse a responses table; deterministic for a given seed.

    With a protocol, its variant order, objects, comparisons, confidence level and
    exclusion rules are used; without one they come from the data and no evaluator
    is excluded. The top-level `count`, `preference`, `tests`, `agreement` and
    `data` describe the evaluators kept by the exclusion rules (all evaluators when
    `exclusions` is False); `unfiltered` holds the same sections for everyone.
    `result.exclusions.excluded` lists the evaluators that break a rule, and
    `applied` says whether the top-level sections leave them out; when the rules
    would leave no one, they are not applied and `not_applied_reason` says so. The
    result is an `AnalysisResult` (see `evalstudy.analysis.result`); its `to_dict()` is
    the strict-JSON document (NaN becomes None).

    With the protocol's primary comparisons, `primary` replays the stopping rule's looks
    on the evaluators in `arrival` order (default: the order of their first row in the
    table) and measures each conclusion's robustness (`analysis.primary`). Where the judge
    (`auto_count`) read the counted images, `prediction_powered` holds the prediction-
    powered intervals beside the human-only ones (`analysis.ppi`); judge-only rows (count
    rows with no evaluator) enter nothing else.
    """
    plan = protocol.analysis if protocol is not None else None
    level = plan.ci_level if plan else DEFAULT_CI_LEVEL
    least = min_resamples(level)
    if n_boot < least:
        raise ValueError(f"n_boot must be at least {least} for {level:.0%} intervals (each tail of "
                         f"a percentile interval needs a resample beyond it), got {n_boot}")
    judge_rows = table["evaluator_id"] == ""
    judge_table = table.subset(judge_rows)
    table = table.subset(~judge_rows)
    arrival = list(arrival) if arrival is not None else arrival_order(table)
    alpha = plan.alpha if plan else DEFAULT_ALPHA
    variants = _variant_order(table, protocol)
    objects = _object_order(table, protocol)
    comparisons = protocol.comparisons() if protocol else default_comparisons(variants)
    comparisons = tuple((a, b) for a, b in comparisons if a in variants and b in variants)
    posthoc = plan.posthoc if plan else DEFAULT_POSTHOC
    pairs = _pairs_design(table, protocol)

    rules = plan.exclusions if plan else Exclusions()
    reliability = evaluator_reliability(table)
    excluded = apply_exclusions(reliability, rules)
    reliability = [dataclasses.replace(rec, excluded=rec.evaluator_id in excluded,
                                       reasons=excluded.get(rec.evaluator_id, []))
                   for rec in reliability]

    ev_order = canonical_evaluator_order(table)
    # A canonical row order too, so that sums are added in the same order whatever the
    # file's order and the evaluators' labels (floating point addition is not associative).
    ev_rank = {e: k for k, e in enumerate(ev_order)}
    table = table.subset(np.lexsort((
        table["variant"], table["repeat_of"],
        np.array([ev_rank[e] for e in table["evaluator_id"].tolist()]),
        table["item_id"], table["task"])))
    # `_sections`' keyword arguments, used twice; Any: their values are of several types.
    settings: dict[str, Any] = dict(variants=variants, objects=objects, comparisons=comparisons, level=level,
                    alpha=alpha, posthoc=posthoc, n_boot=n_boot, seed=seed, ev_order=ev_order,
                    pairs=pairs, allow_ties=protocol.allow_ties if protocol else bool(pairs and _has_ties(table)))
    unfiltered = _sections(table, **settings)
    applied = bool(exclusions and excluded)
    not_applied_reason = None
    main_table = table
    if applied:
        keep = ~np.isin(table["evaluator_id"], list(excluded))
        if keep.any():
            main_table = table.subset(keep)
            main = _sections(main_table, **settings)
        else:
            # Nothing would be left to analyse: show everyone, and say so.
            applied = False
            not_applied_reason = (f"the exclusion rules exclude every evaluator ({len(excluded)} "
                                  "of them); the results shown are the unfiltered ones")
            main = unfiltered
    else:
        main = unfiltered
    primary = None
    if plan is not None and plan.primary is not None:
        primary = primary_section(main_table, plan.primary, variants=variants, objects=objects,
                                  arrival=arrival, ev_order=ev_order, level=level)
    prediction_powered = None
    if np.isfinite(judge_table["auto_count"]).any() and np.isfinite(main_table["auto_count"]).any():
        ev_code, _ = _evaluator_codes(main_table, ev_order)
        ppi = ppi_section(_CountData.build(main_table, ev_code, variants, objects),
                          judge_only_rows(judge_table, variants), comparisons, level)
        if ppi.by_variant:
            prediction_powered = ppi
    return AnalysisResult(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        protocol=ProtocolRef(name=protocol.name, hash=protocol.content_hash()) if protocol else None,
        settings=Settings(n_boot=n_boot, seed=seed, ci_level=level, alpha=alpha,
                          bootstrap=BOOTSTRAP_METHOD, cant_tell=CANT_TELL_POLICY, skips=SKIP_POLICY,
                          exact_wilcoxon_max_n=EXACT_MAX_N, posthoc=posthoc,
                          provenance=_provenance()),
        data=main.data, count=main.count, preference=main.preference, tests=main.tests,
        agreement=main.agreement,
        evaluators=reliability,
        exclusions=ExclusionSummary(
            applied=applied,
            not_applied_reason=not_applied_reason,
            rules={k: getattr(rules, k) for k in Exclusions.__dataclass_fields__},
            n_evaluators=len(reliability),
            n_excluded=len(excluded),
            excluded=[ExcludedEvaluator(evaluator_id=e, reasons=r) for e, r in sorted(excluded.items())]),
        unfiltered=unfiltered,
        primary=primary,
        prediction_powered=prediction_powered,
    )


def _pairs_design(table: ResponseTable, protocol: Protocol | None) -> bool:
    """Whether the rank task is the pairs design: the protocol's, or without one, a table whose
    every ranking shows two of more than two variants. ValueError when a protocol's design and
    the responses disagree (a ranking-design analysis of pairs would misread every ranking)."""
    looks_pairs = is_pairs_table(table)
    if protocol is None:
        return looks_pairs
    if looks_pairs and not protocol.is_pairs:
        raise ValueError("the responses rank two variants at a time, different ones in different rankings, but "
                         "the protocol's preference_task.design is \"ranking\" (every ranking shows every variant)")
    rank = (table["task"] == "rank") & (table["repeat_of"] == "")
    if protocol.is_pairs and rank.any() and not looks_pairs and len(protocol.variants) > 2:
        raise ValueError("the protocol's preference_task.design is \"pairs\" but the responses' rankings do not "
                         "each rank two variants")
    return protocol.is_pairs


def _has_ties(table: ResponseTable) -> bool:
    """Whether some ranking (first showing) ties two images: read for ties allowed without a protocol."""
    rank = (table["task"] == "rank") & (table["repeat_of"] == "") & ~table["skipped"]
    keys = np.char.add(np.char.add(table["evaluator_id"][rank], "\x1f"), table["item_id"][rank])
    pairs = set(zip(keys.tolist(), table["rank"][rank].tolist(), strict=True))
    return len(pairs) < int(rank.sum())


def _sections(t: ResponseTable, *, variants: list[str], objects: list[str],
              comparisons: Sequence[tuple[str, str]], level: float, alpha: float, posthoc: str,
              n_boot: int, seed: int, ev_order: list[str], pairs: bool = False,
              allow_ties: bool = False) -> Sections:

    ev_code, ev_ids = _evaluator_codes(t, ev_order)
    rng = np.random.default_rng(seed)
    v_eval = bs.draw_weights(len(ev_ids), n_boot, rng)
    count = _CountData.build(t, ev_code, variants, objects)
    if pairs:
        # Each ranking shows two of the variants: its own section (analysis.pairdesign), and
        # the ranking design's sections see no rankings.
        rank = _RankData.build(t.subset(t["task"] != "rank"), ev_code[t["task"] != "rank"], variants)
        pair_data = _PairData.build(t, ev_code, variants)
        n_rank_units = pair_data.n_units
    else:
        rank = _RankData.build(t, ev_code, variants)
        n_rank_units = rank.n_units
    w_count = bs.draw_weights(count.n_units, n_boot, rng)
    w_rank = bs.draw_weights(n_rank_units, n_boot, rng)

    count_out, count_reps = _count_section(count, w_count, v_eval, level)
    if pairs:
        pref_reps: dict[str, np.ndarray] = {}  # no score to difference: the win margins are computed apart
        pref_out = pairs_preference_section(pair_data, w_rank, v_eval, level, allow_ties)
        tests = _tests_section(count, rank, comparisons, count_reps, pref_reps, level, alpha, posthoc, seed,
                               rank_paired=pair_comparisons(pair_data, comparisons, w_rank, v_eval, level,
                                                            EXACT_MAX_N),
                               position_bias=pair_position_bias(pair_data, level, seed))
        agreement = dataclasses.replace(_agreement_section(t, count, rank),
                                        rank_alpha_ordinal=pairs_agreement(pair_data))
        n_rankings = pair_data.n_rankings
    else:
        pref_out, pref_reps = _preference_section(rank, w_rank, v_eval, level, allow_ties)
        tests = _tests_section(count, rank, comparisons, count_reps, pref_reps, level, alpha, posthoc,
                               seed)
        agreement = _agreement_section(t, count, rank)
        n_rankings = rank.n_rankings
    data = Data(n_rows=len(t), n_evaluators=len(ev_ids), n_count_responses=count.n_rows,
                n_count_images=count.n_images, n_count_units=count.n_units,
                n_rankings=n_rankings, n_rank_items=n_rank_units, variants=variants,
                objects=objects, counts=count.counts)
    return Sections(data=data, count=count_out, preference=pref_out, tests=tests,
                    agreement=agreement)
