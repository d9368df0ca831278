"""Prediction-powered intervals for the count metrics (Angelopoulos, Bates, Fannjiang,
Jordan and Zrnic, "Prediction-powered inference", Science 2023; the power-tuned form of
Angelopoulos, Duchi and Zrnic 2023, "PPI++").

For a variant and a per-answer metric g (eq. 9's |answer - true count| or eq. 10's
answer == true count), with Y the people's g on the images they counted, F the judge's g
(`auto_count`) on the same images, and F~ the judge's g on the extra images only the judge
read (generated for it: the protocol's `analysis.judge_images_per_cell`),

    theta = lambda mean(F~) + mean(Y - lambda F),

whose expectation is the people's metric whatever the judge's bias (the rectifier
mean(Y - lambda F) takes it back out), for any fixed lambda. lambda = Cov(Y, F) /
((1 + n / N) Var(F)), clipped to [0, 1], is the variance-minimising weight (n images people
counted, N judge-only images): near 1 for a judge that agrees with people, near 0 for a judge that is
noise, where theta falls back to the human-only mean.

Variance: the rectifier's is the crossed (items and evaluators) variance of the
analysis (`bootstrap.ratio_corrections`, its paired differences `tests._difference_spread`);
the judge-only mean's is clustered by prompt and seed (the variants' images of one seed
form a pair); the two sets of images are disjoint, so the variances add. Interval: theta
+- t(df) sqrt(variance), df by Satterthwaite from the two parts. The human-only row beside
it is the same interval with lambda = 0, so widths compare like for like.

Judge-only rows are count rows with no evaluator (evaluator_id empty) and an auto_count;
they enter nothing else in the analysis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import bootstrap as bs
from .. import confidence
from ..responses import ResponseTable
from .data import _cluster_key, _codes, _CountData
from .result import Interval, JudgeAgreement, PPIDifference, PPIStat, PredictionPowered
from .significance import _difference_spread

METHOD = ("prediction-powered (Angelopoulos et al. 2023, power-tuned): lambda x judge mean on "
          "judge-only images + mean(people - lambda x judge) on the images people counted; "
          "interval: estimate +- t(df) x standard error (crossed variance of the rectifier, "
          "judge-only images clustered by prompt and seed); human_* is the same with lambda = 0")
MEASURES = {"mean_abs_error": (0.0, math.inf), "match_ratio": (0.0, 1.0)}


def _metric(measure: str, answer: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs(answer - truth) if measure == "mean_abs_error" else (answer == truth).astype(float)


class _JudgeOnly:
    """The judge-only images: variant code, prompt-and-seed unit code, truth, judge's count."""

    def __init__(self, variant: np.ndarray, unit: np.ndarray, truth: np.ndarray, auto: np.ndarray):
        self.variant, self.unit, self.truth, self.auto = variant, unit, truth, auto


def judge_only_rows(t: ResponseTable, variants: list[str]) -> _JudgeOnly:
    mask = (t["task"] == "count") & (t["evaluator_id"] == "") & np.isfinite(t["auto_count"])
    mask &= np.isin(t["variant"], variants)
    variant, _ = _codes(t["variant"][mask], variants)
    unit, _ = _codes(_cluster_key(t, mask).astype(str)) if mask.any() else (np.zeros(0, np.int64), [])
    return _JudgeOnly(variant, unit, t["true_count"][mask], t["auto_count"][mask])


def _unit_variance(unit: np.ndarray, z: np.ndarray) -> tuple[float, int]:
    """Clustered variance sum_u s_u^2 U / (U - 1) of a mean with contributions z, and U."""
    if len(z) == 0:
        return 0.0, 0
    s = np.bincount(unit, weights=z)
    present = np.bincount(unit) > 0
    n_u = int(present.sum())
    if n_u < 2:
        return math.nan, n_u
    return float((s[present] ** 2).sum() * n_u / (n_u - 1)), n_u


def _interval(est: float, var: float, df: float, low: float, high: float, level: float) -> Interval:
    return confidence.t_intervals(np.array([est]), np.array([var]), np.array([df]), level, low, high)[0].tolist()


def _combine_df(v_r: float, df_r: float, v_j: float, df_j: float) -> float:
    total = v_r + v_j
    denom = (v_r ** 2 / max(df_r, 1.0) if v_r > 0 else 0.0) + (v_j ** 2 / max(df_j, 1.0) if v_j > 0 else 0.0)
    return total ** 2 / denom if denom > 0 else max(df_r, 1.0)


@dataclass(frozen=True)
class _MeasureFit:
    """One count metric's pieces, shared by the per-variant and the difference rows: the
    counted rows' units, evaluators and variants; the judge's metric on the judge-only
    images and its mean per variant; the weight per variant (0 = human only); and, per
    label ("ppi", "human"), the rectified metric y - weight * f of each row with its spread."""
    unit: np.ndarray
    evaluator: np.ndarray
    variant: np.ndarray
    judge: _JudgeOnly
    f_unl: np.ndarray
    mean_unl: np.ndarray
    n_unl: np.ndarray
    lam: np.ndarray
    fits: dict[str, tuple[np.ndarray, bs.Spread]]


def _judge_agreement(c: _CountData, var: np.ndarray, auto: np.ndarray, answer: np.ndarray) -> list[JudgeAgreement]:
    """Per variant: how often the judge's count equals the person's, and their mean difference."""
    out = []
    for v in range(len(c.variants)):
        rows = var == v
        if rows.any():
            out.append(JudgeAgreement(
                variant=c.variants[v], n=int(rows.sum()),
                exact_agreement=float((auto[rows] == answer[rows]).mean()),
                mean_difference=float((auto[rows] - answer[rows]).mean())))
    return out


def _weights(y: np.ndarray, f: np.ndarray, var: np.ndarray, n_lab: np.ndarray, n_unl: np.ndarray) -> np.ndarray:
    """The power-tuning weight per variant (in [0, 1]; 0 where the judge cannot help)."""
    nv = len(n_lab)
    lam = np.zeros(nv)
    for v in range(nv):
        rows = var == v
        if rows.sum() >= 2 and n_unl[v] > 0 and f[rows].var() > 0:
            cov = np.mean((y[rows] - y[rows].mean()) * (f[rows] - f[rows].mean()))
            lam[v] = np.clip(cov / ((1 + n_lab[v] / n_unl[v]) * f[rows].var()), 0.0, 1.0)
    return lam


def _variant_rows(m: _MeasureFit, c: _CountData, measure: str, low: float, high: float,
                  level: float) -> list[PPIStat]:
    """The prediction-powered and the human-only estimate of ``measure`` per variant."""
    out = []
    for v in range(len(c.variants)):
        rows = m.variant == v
        if not rows.any():
            continue
        found: dict[str, tuple[float, Interval]] = {}  # "ppi" / "human": (estimate, ci)
        for label, (rect, spread) in m.fits.items():
            w = m.lam[v] if label == "ppi" else 0.0
            est = float(rect[rows].mean() + w * m.mean_unl[v])
            v_r, df_r = float(spread.var[v]), float(spread.df[v])
            v_j, df_j = 0.0, 1.0
            if w > 0:
                sel = m.judge.variant == v
                zj = (m.f_unl[sel] - m.mean_unl[v]) / m.n_unl[v]
                v_j, n_u = _unit_variance(m.judge.unit[sel], zj)
                v_j, df_j = w ** 2 * v_j, n_u - 1
            total, df = v_r + v_j, _combine_df(v_r, df_r, v_j, df_j)
            found[label] = est, _interval(est, total, df, low, high, level)
        out.append(PPIStat(
            variant=c.variants[v], measure=measure, n_answers=int(rows.sum()),
            n_judge_only=int(m.n_unl[v]), weight=float(m.lam[v]),
            estimate=found["ppi"][0], ci=found["ppi"][1],
            human_estimate=found["human"][0], human_ci=found["human"][1]))
    return out


def _difference_rows(m: _MeasureFit, c: _CountData, comparisons: Sequence[tuple[str, str]], measure: str, high: float,
                     level: float) -> list[PPIDifference]:
    """The prediction-powered and the human-only difference a - b of ``measure`` per planned
    comparison whose two variants were both counted."""
    nv = len(c.variants)
    var = m.variant
    ones = np.ones(len(var))
    index = {name: k for k, name in enumerate(c.variants)}
    out = []
    for a, b in comparisons:
        ia, ib = index[a], index[b]
        if not ((var == ia).any() and (var == ib).any()):
            continue
        found = {}
        for label, (rect, spread) in m.fits.items():
            w = m.lam if label == "ppi" else np.zeros(nv)
            est = float(rect[var == ia].mean() + w[ia] * m.mean_unl[ia]
                        - rect[var == ib].mean() - w[ib] * m.mean_unl[ib])
            d_spread = _difference_spread(m.unit, m.evaluator, var, rect, ones, ia, ib, level, spread.var)
            v_r, df_r = float(d_spread.var[0]), float(d_spread.df[0])
            v_j, df_j = 0.0, 1.0
            if w[ia] > 0 or w[ib] > 0:
                zj = np.zeros(len(m.f_unl))
                for vv, sign in ((ia, 1.0), (ib, -1.0)):
                    sel = m.judge.variant == vv
                    if m.n_unl[vv] > 0:
                        zj[sel] = sign * w[vv] * (m.f_unl[sel] - m.mean_unl[vv]) / m.n_unl[vv]
                both = (m.judge.variant == ia) | (m.judge.variant == ib)
                v_j, n_u = _unit_variance(m.judge.unit[both], zj[both])
                df_j = n_u - 1
            total, df = v_r + v_j, _combine_df(v_r, df_r, v_j, df_j)
            found[label] = est, _interval(est, total, df, -high, high, level)
        out.append(PPIDifference(
            a=a, b=b, measure=measure, n_judge_only=int(m.n_unl[ia] + m.n_unl[ib]),
            estimate=found["ppi"][0], ci=found["ppi"][1],
            human_estimate=found["human"][0], human_ci=found["human"][1]))
    return out


def ppi_section(c: _CountData, judge: _JudgeOnly, comparisons: Sequence[tuple[str, str]],
                level: float) -> PredictionPowered:
    """Per variant and per planned comparison, for both count metrics: the prediction-
    powered estimate and interval beside the human-only one; and the judge's agreement with
    people per variant. Empty when the judge read none of the counted images."""
    nv = len(c.variants)
    has = (c.answered > 0) & np.isfinite(c.auto)
    by_variant: list[PPIStat] = []
    differences: list[PPIDifference] = []
    if not has.any():
        return PredictionPowered(method=METHOD, by_variant=by_variant, differences=differences,
                                 judge_agreement=[])
    unit, ev, var = c.unit[has], c.evaluator[has], c.variant[has]
    answer, auto, truth = c.answer[has], c.auto[has], _truth(c)[has]
    # The judge reads an image once whoever counted it: its labelled sample is the images.
    items = c.item[has]
    n_lab = np.array([len(set(items[var == v].tolist())) for v in range(nv)], dtype=float)
    n_unl = np.bincount(judge.variant, minlength=nv).astype(float)
    agreement = _judge_agreement(c, var, auto, answer)
    for measure, (low, high) in MEASURES.items():
        y = _metric(measure, answer, truth)
        f = _metric(measure, auto, truth)
        f_unl = _metric(measure, judge.auto, judge.truth)
        lam = _weights(y, f, var, n_lab, n_unl)
        ones = np.ones(len(y))
        fits = {}
        for label, weight in (("ppi", lam), ("human", np.zeros(nv))):
            rect = y - weight[var] * f
            fits[label] = (rect, bs.ratio_corrections(unit, ev, var, rect, ones, nv, level))
        mean_unl = np.bincount(judge.variant, weights=f_unl, minlength=nv) / np.maximum(n_unl, 1)
        m = _MeasureFit(unit=unit, evaluator=ev, variant=var, judge=judge, f_unl=f_unl, mean_unl=mean_unl,
                        n_unl=n_unl, lam=lam, fits=fits)
        by_variant += _variant_rows(m, c, measure, low, high, level)
        differences += _difference_rows(m, c, comparisons, measure, high, level)
    return PredictionPowered(method=METHOD, by_variant=by_variant, differences=differences,
                             judge_agreement=agreement)


def _truth(c: _CountData) -> np.ndarray:
    """The true count per row (the codes' values)."""
    return np.asarray(c.counts, dtype=float)[c.count]
