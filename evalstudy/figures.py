"""The paper's Figures 5 and 6, with intervals, drawn from an `analyze` result.

figure5: per conditioning (a row), (a) average count error by true count, one
line per object, early fusion light and dashed, intermediate fusion dark and
solid; (b) average error per object; (c) match ratio per object.
figure6: preference score and Plackett-Luce strength per variant.
figure7: mean rank by screen position (with the position-bias test's p), and the
skipped rankings by reason with the ranking skip rate (a skip names no variant, so
there is no per-variant panel).

Files are byte-for-byte reproducible: matplotlib's object API (no pyplot state),
a fixed svg.hashsalt, text as paths, no dates or software tags in the metadata.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .analysis.result import AnalysisResult

RC: dict[str, Any] = {
    "svg.hashsalt": "evalstudy",
    "svg.fonttype": "path",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
OBJECT_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                  "#17becf")
LIGHT = 0.55  # how far towards white the early-fusion shade of a colour is


def _lighten(hex_colour: str, amount: float) -> tuple[float, float, float]:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    return tuple(rgb + (1.0 - rgb) * amount)


def _families(variants: list[str]) -> list[tuple[str, list[str]]]:
    """[(conditioning, [early, intermediate])], leftovers in one last family."""
    fams, used = [], set()
    for v in variants:
        if v.endswith("-early") and v[:-6] + "-intermediate" in variants:
            fams.append((v[:-6], [v, v[:-6] + "-intermediate"]))
            used.update(fams[-1][1])
    rest = [v for v in variants if v not in used]
    if rest:
        fams.append(("variants", rest))
    return fams


def _shade(k: int, n: int, colour: str):
    """Light for the first (early) variant of a family, dark for the last."""
    return _lighten(colour, LIGHT * (1 - k / max(n - 1, 1)))


def _yerr(values, cis):
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    lo = np.array([np.nan if c is None or c[0] is None else c[0] for c in cis], dtype=float)
    hi = np.array([np.nan if c is None or c[1] is None else c[1] for c in cis], dtype=float)
    err = np.stack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
    return v, np.nan_to_num(err)


def _save(fig, outdir: Path, stem: str) -> list[Path]:
    paths = []
    for ext, meta in (("png", {"Software": None}),
                      ("svg", {"Date": None, "Creator": None})):
        path = outdir / f"{stem}.{ext}"
        fig.savefig(path, format=ext, metadata=meta, dpi=150)
        paths.append(path)
    return paths


def _figure(rows: int, cols: int, width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def figure5(result: AnalysisResult, outdir: Path) -> list[Path]:
    count = result.count
    variants = result.data.variants
    objects = result.data.objects
    counts = result.data.counts
    fams = _families([v for v in variants if any(r.variant == v for r in count.by_variant)])
    if not fams or not objects:
        return []
    fig, axes = _figure(len(fams), 3, 9.0, 2.8 * len(fams))
    cell = {(r.variant, r.object, r.count): r for r in count.by_variant_object_count}
    per_obj = {(r.variant, r.object): r for r in count.by_variant_object}
    x = np.arange(len(objects))
    for row, (fam, members) in enumerate(fams):
        ax_a, ax_b, ax_c = axes[row]
        width = 0.8 / len(members)
        top = 0.0
        for k, v in enumerate(members):
            style = "--" if k < len(members) - 1 else "-"
            for j, obj in enumerate(objects):
                recs = [cell.get((v, obj, c)) for c in counts]
                vals = [r.mean_abs_error if r else None for r in recs]
                cis = [r.mean_abs_error_ci if r else None for r in recs]
                y, err = _yerr(vals, cis)
                top = max(top, np.nanmax(y, initial=0.0))
                colour = _shade(k, len(members), OBJECT_COLOURS[j % len(OBJECT_COLOURS)])
                ax_a.errorbar(np.array(counts) + (k - (len(members) - 1) / 2) * 0.08, y,
                              yerr=err, color=colour, linestyle=style, marker="o",
                              markersize=3, capsize=2, linewidth=1,
                              label=f"{obj}, {v}")
            for ax, key in ((ax_b, "mean_abs_error"), (ax_c, "match_ratio")):
                recs = [per_obj.get((v, o)) for o in objects]
                y, err = _yerr([getattr(r, key) if r else None for r in recs],
                               [getattr(r, key + "_ci") if r else None for r in recs])
                ax.bar(x + (k - (len(members) - 1) / 2) * width, y, width, yerr=err,
                       color=_shade(k, len(members), "#1f4e79"), capsize=2, label=v)
        # With few images per cell the intervals are long; cut them at the panel's edge
        # rather than squash the estimates.
        ax_a.set_ylim(0, max(1.0, 1.6 * top))
        ax_a.set_xlabel("true count")
        ax_a.set_ylabel("average count error")
        ax_a.set_xticks(counts)
        ax_a.set_title(f"{fam}: error by true count")
        ax_a.legend(fontsize=5, ncol=2, frameon=False)
        for ax, label in ((ax_b, "average count error"), (ax_c, "match ratio")):
            ax.set_xticks(x, objects)
            ax.set_ylabel(label)
            ax.set_title(f"{fam}: {label} per object")
        ax_b.legend(fontsize=6, frameon=False)
        ax_c.set_ylim(0, 1)
    return _save(fig, outdir, "figure5")


def figure6(result: AnalysisResult, outdir: Path) -> list[Path]:
    recs = result.preference.by_variant
    if not recs:
        return []
    fig, axes = _figure(1, 2, 7.0, 2.8)
    names = [r.variant for r in recs]
    x = np.arange(len(names))
    for ax, key, label in ((axes[0][0], "score", "preference score"),
                           (axes[0][1], "pl_strength", "Plackett-Luce strength")):
        y, err = _yerr([getattr(r, key) for r in recs], [getattr(r, key + "_ci") for r in recs])
        ax.bar(x, y, 0.6, yerr=err, capsize=3, color=[
            _shade(0 if n.endswith("-early") else 1, 2, "#1f4e79") for n in names])
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel(label)
    axes[0][0].set_ylim(1, result.preference.m or 4)
    axes[0][0].set_title("preference score (rank 1..m scores m..1), 95% CI")
    axes[0][1].set_title("Plackett-Luce strength, 95% CI")
    return _save(fig, outdir, "figure6")


def figure7(result: AnalysisResult, outdir: Path) -> list[Path]:
    pos = result.tests.position_bias
    recs = result.preference.by_variant
    if not pos or not recs:
        return []
    fig, axes = _figure(1, 2, 7.0, 2.6)
    mean_rank = [math.nan if v is None else v for v in pos.mean_rank_by_position]
    axes[0][0].bar(np.arange(len(mean_rank)), mean_rank, 0.6, color="#7f7f7f")
    axes[0][0].set_xticks(np.arange(len(mean_rank)))
    axes[0][0].set_xlabel("screen position (0 = left)")
    axes[0][0].set_ylabel("mean rank")
    p = pos.p_value
    axes[0][0].set_title("mean rank by screen position"
                         + (f" (position bias p = {p:.3g})" if p is not None else ""))
    # A skip covers a whole ranking and names no variant: one rate, and why people skipped.
    pref = result.preference
    reasons = pref.skip_reasons
    names = list(reasons) or ["(no skips)"]
    axes[0][1].barh(np.arange(len(names)), [reasons.get(n, 0) for n in names], 0.6,
                    color="#7f7f7f")
    axes[0][1].set_yticks(np.arange(len(names)), names)
    axes[0][1].set_xlabel("skipped rankings")
    rate, rate_ci = pref.ranking_skip_rate, pref.ranking_skip_rate_ci
    title = "skipped rankings by reason"
    if rate is not None:
        title += f" (rate {rate:.1%}" + (f", 95% CI {rate_ci[0]:.1%}-{rate_ci[1]:.1%})"
                                         if rate_ci[0] is not None else ")")
    axes[0][1].set_title(title)
    return _save(fig, outdir, "figure7")


def write_figures(result: AnalysisResult, outdir: str | Path) -> list[Path]:
    """Write figure5/6/7 as PNG and SVG into outdir (created if needed); returns the paths
    written. A figure whose data is absent (no count task, say) is not written."""
    import matplotlib

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]  # keys checked by matplotlib at run time
        for draw in (figure5, figure6, figure7):
            paths += draw(result, outdir)
    return paths
