"""Agreement: Krippendorff's alpha for counts and ranks, Kendall's W between the raters of a
caption, humans against the automatic counter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import stats
from ..responses import ResponseTable
from .data import _CountData, _RankData

def _agreement_section(t: ResponseTable, c: _CountData, r: _RankData) -> dict[str, Any]:
    out: dict[str, dict[str, Any] | None] = {"count_alpha_interval": None, "rank_alpha_ordinal": None, "kendall_w": None,
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
