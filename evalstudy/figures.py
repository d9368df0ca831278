"""Figures with intervals, drawn from an `analyze` result, each named by what it shows.

count-error-by-true-count: one small panel per object, average count error by true
    count, the variants as series (a conditioning's early fusion light and dashed, its
    intermediate fusion dark and solid). The paper's Figure 5 (a).
count-by-object: average count error and match ratio per object, one bar per variant
    (Figure 5 (b, c)).
preference: preference score per variant (rank r of m scores m + 1 - r, ties their
    mid-rank) and its strength: Plackett-Luce for full rankings, Bradley-Terry-Davidson
    when rankings tie images (Figure 6).
pairwise-wins: for every pair of variants (a matrix of win shares beyond MAX_PAIR_BARS
pairs, as in a pairs study of 9 variants or more), one bar split into "a better", "about the
    same" and "b better", with the intervals of the two borders; the figure of a pairwise
    (two-variant) study.
position-and-skips: mean rank by screen position (with the position-bias test's p),
    and the skipped rankings by reason when there are any (a skip names no variant, so
    there is no per-variant panel).

Files (and `render_figures`'s bytes, the same) are byte-for-byte reproducible: matplotlib's
object API (no pyplot state), a fixed svg.hashsalt, text as paths, no dates or software tags
in the metadata.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.artist import Artist
    from matplotlib.container import Container
    from matplotlib.figure import Figure

    from .analysis.result import AnalysisResult, PreferenceStat

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


def _shade(k: int, n: int, colour: str) -> tuple[float, float, float]:
    """Light for the first (early) variant of a family, dark for the last."""
    return _lighten(colour, LIGHT * (1 - k / max(n - 1, 1)))


def _yerr(values: Sequence[float | None], cis: Sequence[Sequence[float | None] | None]
          ) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    lo = np.array([np.nan if c is None or c[0] is None else c[0] for c in cis], dtype=float)
    hi = np.array([np.nan if c is None or c[1] is None else c[1] for c in cis], dtype=float)
    err = np.stack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
    return v, np.nan_to_num(err)


# The file formats written, each with the metadata that would otherwise make the bytes
# depend on the day or the matplotlib version.
FORMATS = (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None}))


@dataclass(frozen=True)
class RenderedFigure:
    """One figure in one format, in memory."""

    name: str      # a key of FIGURES
    format: str    # "png" or "svg"
    content: bytes

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.format}"


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _variant_styles(variants: list[str]) -> dict[str, tuple[tuple[float, float, float], str]]:
    """A colour and a line style per variant: one hue per conditioning, early fusion
    light and dashed, intermediate dark and solid; other variants a hue each."""
    styles = {}
    fams = _families(variants)
    hue = 0
    for fam, members in fams:
        if fam == "variants":  # no early/intermediate pairing: a hue per variant
            for v in members:
                styles[v] = (_lighten(OBJECT_COLOURS[hue % len(OBJECT_COLOURS)], 0.0), "-")
                hue += 1
        else:
            for k, v in enumerate(members):
                styles[v] = (_shade(k, len(members), OBJECT_COLOURS[hue % len(OBJECT_COLOURS)]),
                             "--" if k < len(members) - 1 else "-")
            hue += 1
    return styles


def _legend_below(fig: Figure, handles: Sequence[Artist | Container], labels: Sequence[str]) -> None:
    fig.legend(handles, labels,  # type: ignore[call-overload]  # the stub takes Artists only; containers work too
               loc="outside lower center", ncol=min(len(labels), 4), frameon=False, fontsize=7)


def count_error_by_true_count(result: AnalysisResult) -> Figure | None:
    count = result.count
    variants = [v for v in result.data.variants if any(r.variant == v for r in count.by_variant)]
    objects, counts = result.data.objects, result.data.counts
    if not variants or not objects or not count.by_variant_object_count:
        return None
    n_cols = min(len(objects), 4)
    n_rows = math.ceil(len(objects) / n_cols)
    fig, axes = _figure(n_rows, n_cols, 2.4 * n_cols + 0.6, 2.1 * n_rows + 0.6)
    cell = {(r.variant, r.object, r.count): r for r in count.by_variant_object_count}
    styles = _variant_styles(variants)
    top = 0.0
    lines = {}
    for j, obj in enumerate(objects):
        ax = axes[j // n_cols][j % n_cols]
        for k, v in enumerate(variants):
            recs = [cell.get((v, obj, c)) for c in counts]
            y, err = _yerr([r.mean_abs_error if r else None for r in recs],
                           [r.mean_abs_error_ci if r else None for r in recs])
            top = max(top, np.nanmax(y, initial=0.0))
            colour, style = styles[v]
            lines[v] = ax.errorbar(np.array(counts) + (k - (len(variants) - 1) / 2) * 0.07, y,
                                   yerr=err, color=colour, linestyle=style, marker="o",
                                   markersize=2.5, capsize=1.5, linewidth=1, elinewidth=0.7)
        ax.set_title(obj, fontsize=8)
        ax.set_xticks(counts)
        if j % n_cols == 0:
            ax.set_ylabel("average count error")
        if j // n_cols == n_rows - 1:
            ax.set_xlabel("true count")
    # With few images per cell the intervals are long; cut them at the panels' edge
    # rather than squash the estimates (every panel on one scale, to compare objects).
    for j in range(n_rows * n_cols):
        ax = axes[j // n_cols][j % n_cols]
        if j < len(objects):
            ax.set_ylim(0, max(1.0, 1.6 * top))
        else:
            ax.set_axis_off()  # the grid's last row may be short: no empty axes
    _legend_below(fig, [lines[v] for v in variants], variants)
    fig.suptitle("Average count error by true count, 95% CI", fontsize=9)
    return fig


def count_by_object(result: AnalysisResult) -> Figure | None:
    count = result.count
    variants = [v for v in result.data.variants if any(r.variant == v for r in count.by_variant)]
    objects = result.data.objects
    if not variants or not objects:
        return None
    fig, axes = _figure(1, 2, 7.0, 2.9)
    per_obj = {(r.variant, r.object): r for r in count.by_variant_object}
    styles = _variant_styles(variants)
    x = np.arange(len(objects))
    width = 0.8 / len(variants)
    bars: list[Any] = []
    for ax, key, label in ((axes[0][0], "mean_abs_error", "average count error"),
                           (axes[0][1], "match_ratio", "match ratio")):
        bars = []  # the legend's handles: one bar series per variant
        for k, v in enumerate(variants):
            recs = [per_obj.get((v, o)) for o in objects]
            y, err = _yerr([getattr(r, key) if r else None for r in recs],
                           [getattr(r, key + "_ci") if r else None for r in recs])
            bars.append(ax.bar(x + (k - (len(variants) - 1) / 2) * width, y, width, yerr=err,
                               color=styles[v][0], capsize=1.5, error_kw={"elinewidth": 0.7}))
        ax.set_xticks(x, objects)
        ax.set_ylabel(label)
        ax.set_title(f"{label} per object, 95% CI", fontsize=8)
    axes[0][1].set_ylim(0, 1)
    _legend_below(fig, bars, variants)
    return fig


def preference(result: AnalysisResult) -> Figure | None:
    pref = result.preference
    recs = pref.by_variant
    if not recs:
        return None
    fig, axes = _figure(1, 2, 7.0, 2.9)
    names = [r.variant for r in recs]
    styles = _variant_styles(names)
    x = np.arange(len(names))
    davidson = pref.has_ties or pref.design == "pairs"
    strength, strength_label = (("bt_strength", "Bradley-Terry-Davidson strength") if davidson
                                else ("pl_strength", "Plackett-Luce strength"))
    if pref.design == "pairs":
        return _pairs_strengths(recs, strength_label)
    for ax, key, label in ((axes[0][0], "score", "preference score"),
                           (axes[0][1], strength, strength_label)):
        y, err = _yerr([getattr(r, key) for r in recs], [getattr(r, key + "_ci") for r in recs])
        ax.bar(x, y, 0.6, yerr=err, capsize=3, color=[styles[n][0] for n in names])
        ax.set_xticks(x, names, rotation=20 if len(names) > 2 else 0,
                      ha="right" if len(names) > 2 else "center")
        ax.set_ylabel(label)
    m = pref.m or len(names)
    axes[0][0].set_ylim(1, m)
    axes[0][0].set_title(f"preference score, 95% CI\n(rank r of {m} scores {m + 1} - r"
                         + (", ties: mid-rank)" if davidson else ")"), fontsize=8)
    axes[0][1].set_title(f"{strength_label}, 95% CI", fontsize=8)
    return fig


def _pairs_strengths(recs: list[PreferenceStat], label: str) -> Figure:
    """A pairs study's strengths, strongest first, one row per variant (no mean-rank score:
    in pairs it depends on the opponents met)."""
    recs = sorted(recs, key=lambda r: -(r.bt_strength if r.bt_strength is not None else -1.0))
    fig, axes = _figure(1, 1, 5.5, 0.8 + 0.26 * len(recs))
    ax = axes[0][0]
    names = [r.variant for r in recs]
    v, err = _yerr([r.bt_strength for r in recs], [r.bt_strength_ci for r in recs])
    y = np.arange(len(recs))[::-1]
    styles = _variant_styles(names)
    ax.barh(y, v, 0.6, xerr=err, capsize=2, color=[styles[n][0] for n in names])
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlabel(label)
    ax.set_title(f"{label}, 95% CI (pairs design; strengths sum to 1)", fontsize=8)
    return fig


WIN_COLOURS = ("#1f4e79", "#bfbfbf", "#c55a11")  # a better, about the same, b better
MAX_PAIR_BARS = 28  # more pairs than this (8 variants): a matrix of win shares instead of bars


def _win_matrix(result: AnalysisResult) -> Figure:
    """The row variant's share of its rankings against the column variant (a tie half a win),
    for studies with more pairs than bars can show; a blank cell: a pair never shown."""
    pairs = result.preference.pairs
    names = [r.variant for r in result.preference.by_variant]
    index = {v: k for k, v in enumerate(names)}
    share = np.full((len(names), len(names)), np.nan)
    for p in pairs:
        if p.win_rate_ties_half is not None:
            share[index[p.a], index[p.b]] = p.win_rate_ties_half
            share[index[p.b], index[p.a]] = 1 - p.win_rate_ties_half
    side = 1.5 + 0.28 * len(names)
    fig, axes = _figure(1, 1, side + 1.0, side)
    ax = axes[0][0]
    image = ax.imshow(share, vmin=0, vmax=1, cmap="RdBu_r")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=90, fontsize=6)
    ax.set_yticks(ticks, names, fontsize=6)
    fig.colorbar(image, ax=ax, fraction=0.04, label="row's share (a tie half a win)")
    ax.set_title("Every pair shown: the row variant's share against the column's\n"
                 "(the pairs table in the report holds the counts and 95% CIs)", fontsize=8)
    return fig


def pairwise_wins(result: AnalysisResult) -> Figure | None:
    pairs = result.preference.pairs
    if not pairs:
        return None
    if len(pairs) > MAX_PAIR_BARS:
        return _win_matrix(result)
    fig, axes = _figure(1, 1, 6.5, 0.9 + 0.38 * len(pairs))
    ax = axes[0][0]
    y = np.arange(len(pairs))[::-1]
    for k, p in zip(y, pairs, strict=True):
        if not p.n:
            continue
        a, tie = p.a_wins / p.n, p.ties / p.n
        ax.barh(k, a, 0.6, color=WIN_COLOURS[0])
        ax.barh(k, tie, 0.6, left=a, color=WIN_COLOURS[1])
        ax.barh(k, 1 - a - tie, 0.6, left=a + tie, color=WIN_COLOURS[2])
        # The borders' intervals: a's share, and 1 - b's share.
        # (drawn a little above and below the bar's middle, so that they never merge).
        borders = ((p.a_rate, p.a_rate_ci, 0.12),
                   (None if p.b_rate is None else 1 - p.b_rate,
                    [None if c is None else 1 - c for c in p.b_rate_ci[::-1]], -0.12))
        for at, ci, dy in borders:
            if at is not None and ci[0] is not None and ci[1] is not None:
                ax.errorbar(at, k + dy, xerr=[[max(at - ci[0], 0)], [max(ci[1] - at, 0)]],
                            color="black", capsize=2, linewidth=0.8)
        ax.text(-0.01, k, p.a, ha="right", va="center", fontsize=7)
        ax.text(1.01, k, p.b, ha="left", va="center", fontsize=7)
    ax.set_yticks([])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of rankings")
    ax.spines["left"].set_visible(False)
    handles = [ax.bar(0, 0, color=c) for c in WIN_COLOURS]
    _legend_below(fig, handles, ["the variant named left better", "about the same",
                                 "the variant named right better"])
    ax.set_title("Every pair: who was ranked higher, with 95% CIs of the borders", fontsize=8)
    return fig


def position_and_skips(result: AnalysisResult) -> Figure | None:
    pos = result.tests.position_bias
    pref = result.preference
    if not pos or not pref.by_variant:
        return None
    reasons = pref.skip_reasons
    # No skips: one panel, and the title says so (an empty axis would only puzzle).
    fig, axes = _figure(1, 2 if reasons else 1, 7.0 if reasons else 3.8, 2.8)
    mean_rank = [math.nan if v is None else v for v in pos.mean_rank_by_position]
    ax = axes[0][0]
    ax.bar(np.arange(len(mean_rank)), mean_rank, 0.6, color="#7f7f7f")
    ax.set_xticks(np.arange(len(mean_rank)))
    ax.set_xlabel("screen position (0 = left)")
    ax.set_ylabel("mean rank")
    p = pos.p_value
    ax.set_title("mean rank by screen position"
                 + (f"\nposition bias p = {p:.3g}" if p is not None else ""), fontsize=8)
    rate, rate_ci = pref.ranking_skip_rate, pref.ranking_skip_rate_ci
    if not reasons:
        fig.suptitle("no ranking was skipped", fontsize=8)
        return fig
    names = list(reasons)
    ax = axes[0][1]
    ax.barh(np.arange(len(names)), [reasons[n] for n in names], 0.6, color="#7f7f7f")
    ax.set_yticks(np.arange(len(names)), names)
    ax.set_xlabel("skipped rankings")
    title = "skipped rankings by reason"
    if rate is not None:
        title += f"\nrate {rate:.1%}" + (f", 95% CI {rate_ci[0]:.1%}-{rate_ci[1]:.1%}"
                                          if rate_ci[0] is not None else "")
    ax.set_title(title, fontsize=8)
    return fig


# The figures in the order a reader meets them, by file name (a URL slug: letters and
# hyphens), with what each shows; the web app's captions read these.
FIGURES = {
    "count-error-by-true-count": ("Average count error by true count, one panel per object",
                                  count_error_by_true_count),
    "count-by-object": ("Average count error and match ratio per object", count_by_object),
    "preference": ("Preference score and strength (Plackett-Luce, or Bradley-Terry-Davidson "
                   "with ties) per variant", preference),
    "pairwise-wins": ("Every pair of variants: better, about the same, worse", pairwise_wins),
    "position-and-skips": ("Mean rank by screen position, and skipped rankings by reason",
                           position_and_skips),
}
FIGURE_TITLES = {name: title for name, (title, _) in FIGURES.items()}


def render_figures(result: AnalysisResult) -> list[RenderedFigure]:
    """The FIGURES as PNG and SVG bytes, in FIGURES order (each figure's formats in FORMATS
    order). A figure whose data is absent (no count task, say) is left out."""
    import matplotlib

    out: list[RenderedFigure] = []
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]  # keys checked by matplotlib at run time
        for name, (_title, draw) in FIGURES.items():
            fig = draw(result)
            if fig is None:
                continue
            for fmt, meta in FORMATS:
                buffer = io.BytesIO()
                fig.savefig(buffer, format=fmt, metadata=meta, dpi=150)
                out.append(RenderedFigure(name=name, format=fmt, content=buffer.getvalue()))
    return out


def write_figures(result: AnalysisResult, outdir: str | Path) -> list[Path]:
    """Write the FIGURES as PNG and SVG into outdir (created if needed); returns the paths
    written. A figure whose data is absent (no count task, say) is not written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for figure in render_figures(result):
        path = outdir / figure.filename
        path.write_bytes(figure.content)
        paths.append(path)
    return paths
