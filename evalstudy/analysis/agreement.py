"""Agreement: Krippendorff's alpha for counts, count errors and ranks, Kendall's W between the raters of a
caption, humans against the automatic counter.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .. import stats
from ..responses import ResponseTable
from .data import _CountData, _RankData
from .result import Agreement, Alpha, AutoCounter, KendallW


def _agreement_section(t: ResponseTable, c: _CountData, r: _RankData) -> Agreement:
    count_alpha = error_alpha = rank_alpha = kendall = auto = None
    if c.n_rows:
        values = np.where(c.answered > 0, c.answer, np.nan)
        count_alpha = Alpha(
            alpha=stats.krippendorff_alpha_long(c.item, values, "interval"),
            units="count images", values="answered counts ('can't tell' missing)",
            n_pairable_units=_pairable(c.item, values))
        # The counts' alpha grows with the spread of the design's true counts (images of 1 to
        # 10 objects disagree far more between images than within), whatever the raters do;
        # on the errors that spread is gone: do raters agree on which images are miscounted?
        errors = values - np.asarray(c.counts, dtype=float)[c.count]
        error_alpha = Alpha(
            alpha=stats.krippendorff_alpha_long(c.item, errors, "interval"),
            units="count images", values="answered count minus the true count ('can't tell' missing)",
            n_pairable_units=_pairable(c.item, errors))
    if r.n_rankings and r.m >= 2:
        done = ~r.skipped
        unit = r.unit[done] * len(r.variants) + r.variant[done]
        rank_alpha = Alpha(
            alpha=stats.krippendorff_alpha_long(unit, r.rank[done], "ordinal"),
            units="(caption, variant) pairs", values="ranks",
            n_pairable_units=_pairable(unit, r.rank[done]))
        per_item = []
        for u in range(r.n_units):
            rows = (r.ranking_unit == u) & r.done
            if rows.sum() >= 2:
                per_item.append(stats.kendall_w(-r.ranks[rows][:, r.present]))
        all_rankings = r.ranks[r.done][:, r.present]
        kendall = KendallW(
            per_item_mean=float(np.mean(per_item)) if per_item else None,
            per_item_median=float(np.median(per_item)) if per_item else None,
            n_items=len(per_item),
            all_rankings=stats.kendall_w(-all_rankings) if len(all_rankings) >= 2 else None,
            note="per item: agreement among the evaluators of one caption; all rankings: "
                 "concordance of every ranking about the variants' order")
    if c.n_rows and np.isfinite(c.auto).any():
        both = (c.answered > 0) & np.isfinite(c.auto)
        if both.any():
            auto = AutoCounter(
                n=int(both.sum()),
                mean_abs_difference=float(np.abs(c.answer[both] - c.auto[both]).mean()),
                quadratic_weighted_kappa=stats.quadratic_weighted_kappa(c.answer[both], c.auto[both]),
                exact_agreement=float((c.answer[both] == c.auto[both]).mean()))
    return Agreement(count_alpha_interval=count_alpha, count_alpha_errors=error_alpha, rank_alpha_ordinal=rank_alpha,
                     kendall_w=kendall, auto_counter=auto)


def _pairable(unit: ArrayLike, values: np.ndarray) -> int:
    u = np.asarray(unit)[np.isfinite(values)]
    if len(u) == 0:
        return 0
    _, counts = np.unique(u, return_counts=True)
    return int((counts >= 2).sum())
