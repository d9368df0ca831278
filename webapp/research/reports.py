"""Results as tables, and the study report (HTML and Markdown) built from them.

One function turns evalstudy's analysis into rows of formatted cells; the dashboard, the
HTML report and the Markdown report all show those rows, so the three never disagree.
The report follows the spirit of the checklists for reporting human evaluations (what was
evaluated and how, who the evaluators were, how they were paid, what was excluded and why,
how much they agreed, and every result with its uncertainty).
"""
from __future__ import annotations

import base64
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.template.loader import render_to_string
from django.utils import timezone

from evalstudy.analysis.result import AnalysisResult, Fragility, PrimaryComparisonResult, Sections, few_raters_warning
from evalstudy.figures import FIGURE_TITLES
from evalstudy.protocol import Protocol
from webapp.studies.models import Study

from . import selectors
from .models import ReportDetails, StudyResult

MEASURE_LABELS = {"mean_abs_error": "average error", "match_ratio": "match ratio", "score": "preference score"}
FIGURE_LABELS = FIGURE_TITLES  # figure file name -> what it shows
SECTION_LABELS = (("main", "With the protocol's exclusions"), ("unfiltered", "Without exclusions (every evaluator)"))


# --------------------------------------------------------------------------- cells


def num(x: float | Decimal | None, digits: int = 2) -> str:
    """A number for a table: fixed digits, an en dash for a missing value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "\u2013"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return f"{x:.{digits}f}"


def ci(interval: Sequence[float | None] | None, digits: int = 2) -> str:
    if not interval or interval[0] is None or interval[1] is None:
        return "\u2013"
    return f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def pvalue(p: float | None) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "\u2013"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def percent(x: float | None) -> str:
    return "\u2013" if x is None else f"{100 * x:.0f}%"


@dataclass(frozen=True)
class Table:
    """A table of formatted cells; ``key`` names it for tests and the page's anchors."""

    key: str
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


# --------------------------------------------------------------------------- result tables


def _count_table(section: Sections | AnalysisResult, auto: dict[str, dict], ci_label: str) -> Table:
    rows = []
    for r in section.count.by_variant:
        a = auto.get(r.variant, {})
        rows.append((
            r.variant, num(r.n_images), num(r.n_raters), num(r.n_answered),
            num(r.mean_abs_error), ci(r.mean_abs_error_ci),
            num(r.match_ratio), ci(r.match_ratio_ci),
            percent(r.cant_tell_rate), ci(r.cant_tell_rate_ci),
            num(r.match_ratio_cant_tell_as_miss), ci(r.match_ratio_cant_tell_as_miss_ci),
            num(a.get("mean_abs_error")), num(a.get("match_ratio")),
        ))
    return Table(
        key="figure5", title="Object counts: average error and match ratio per variant",
        header=("variant", "images", "raters", "counted answers (n)", "average error", ci_label, "match ratio",
                ci_label, "can't tell", ci_label, "sensitivity: match ratio, can't tell as a miss", ci_label,
                "auto counter: error", "auto counter: match"),
        rows=tuple(rows),
        note="As in the paper (eq. 9 and 10), average error = mean |answer \u2212 requested count| and match "
             "ratio = share of answers equal to the requested count, both over the same n, the answers that gave "
             "a count. \u201cCan't tell\u201d answers enter neither; their share of all answers is shown beside, "
             "and the sensitivity column counts them as misses. The automatic counter read every image of the "
             "variant once." + few_raters_warning(section.count.by_variant)
             + (" " + section.count.rater_note if section.count.rater_note else "")
             + (" " + section.count.edge_note if section.count.edge_note else ""),
    )


def _count_object_table(section: Sections | AnalysisResult, ci_label: str) -> Table:
    rows = tuple(
        (r.variant, r.object or "", num(r.n_answered), num(r.mean_abs_error), ci(r.mean_abs_error_ci),
         num(r.match_ratio), ci(r.match_ratio_ci), percent(r.cant_tell_rate))
        for r in section.count.by_variant_object
    )
    return Table(key="figure5-objects", title="Object counts per object",
                 header=("variant", "object", "counted answers (n)", "average error", ci_label, "match ratio",
                         ci_label, "can't tell"),
                 rows=rows)


def _preference_table(section: Sections | AnalysisResult, ci_label: str) -> Table:
    pref = section.preference
    if pref.design == "pairs":
        return _pairs_preference_table(section, ci_label)
    # Plackett-Luce for full rankings; with ties, Bradley-Terry-Davidson (evalstudy.analysis.pairs).
    strength, strength_label = (("bt_strength", "Bradley-Terry-Davidson strength") if pref.has_ties
                                else ("pl_strength", "Plackett-Luce strength"))
    rows = tuple(
        (r.variant, num(r.n), num(r.n_raters), num(r.score), ci(r.score_ci), num(r.mean_rank),
         num(getattr(r, strength), 3), ci(getattr(r, strength + "_ci"), 3),
         " / ".join(str(c) for c in r.rank_counts))
        for r in pref.by_variant
    )
    reasons = ", ".join(f"{k}: {v}" for k, v in pref.skip_reasons.items()) or "none"
    return Table(
        key="figure6", title="Preference (rank r of m scores m + 1 \u2212 r)",
        header=("variant", "rankings", "raters", "preference score", ci_label, "mean rank", strength_label,
                ci_label, "ranked 1st / \u2026 / last"),
        rows=rows,
        note=f"m = {pref.m or 4} images per ranking; ranking skip rate (skipped rankings of all rankings shown; "
             f"a skip names no variant): {percent(pref.ranking_skip_rate)} {ci(pref.ranking_skip_rate_ci)} "
             f"({reasons})." + few_raters_warning(pref.by_variant)
             + (" " + pref.strength_note if pref.strength_note else "")
             + (" " + pref.edge_note if pref.edge_note else ""),
    )


def _pairs_preference_table(section: Sections | AnalysisResult, ci_label: str) -> Table:
    """A pairs study's variants (evalstudy.analysis.pairdesign): strengths, strongest first."""
    pref = section.preference
    rows = tuple(
        (r.variant, num(r.n), num(r.n_raters), num(r.bt_strength, 3), ci(r.bt_strength_ci, 3),
         " / ".join(str(c) for c in r.rank_counts), percent(r.tie_rate))
        for r in sorted(pref.by_variant, key=lambda r: -(r.bt_strength if r.bt_strength is not None else -1.0)))
    reasons = ", ".join(f"{k}: {v}" for k, v in pref.skip_reasons.items()) or "none"
    nu = (f"; tie parameter {num(pref.bt_tie_parameter, 3)} {ci(pref.bt_tie_parameter_ci, 3)}"
          if pref.bt_tie_parameter is not None else "")
    return Table(
        key="figure6", title="Preference, pairs design (Bradley-Terry strengths over every variant)",
        header=("variant", "rankings", "raters", "strength", ci_label, "better / worse (a tie: better)", "tied"),
        rows=rows,
        note=f"Each ranking shows two of the variants; model: {pref.strength_model}{nu}. Strengths sum to 1; the "
             "ratio of two is the odds that one is preferred to the other. No mean-rank score: in pairs it "
             "depends on the opponents a variant met. Ranking skip rate: "
             f"{percent(pref.ranking_skip_rate)} {ci(pref.ranking_skip_rate_ci)} ({reasons})."
             + few_raters_warning(pref.by_variant)
             + (" " + pref.strength_note if pref.strength_note else "")
             + (" " + pref.edge_note if pref.edge_note else ""),
    )


def _tests_table(section: Sections | AnalysisResult, ci_label: str) -> Table:
    rows = tuple(
        (MEASURE_LABELS.get(t.measure, t.measure), f"{t.a} \u2212 {t.b}", num(t.difference, 3),
         ci(t.difference_ci, 3), num(t.statistic), num(t.df), pvalue(t.p_value),
         pvalue(t.p_holm), "yes" if t.significant else "no", num(t.n_pairs), pvalue(t.p_wilcoxon_items))
        for t in section.tests.paired
    )
    notes = sorted({t.method for t in section.tests.paired if t.p_value is None})
    return Table(key="tests", title="Planned comparisons (crossed t over items and raters, Holm-adjusted)",
                 header=("measure", "difference", "estimate", ci_label, "t", "df", "p", "p (Holm)",
                         "significant", "items", "p (Wilcoxon over items)"),
                 rows=rows,
                 note="t = difference / the crossed-bootstrap standard error of its interval, on t with "
                      "Satterthwaite's df. The Wilcoxon signed-rank test over the items' mean differences is "
                      "secondary: it treats items as independent although raters judge several, and is "
                      "liberal when raters share a taste across their items." + "".join(" " + n for n in notes))


def _ranking_tests_table(section: Sections | AnalysisResult) -> Table | None:
    tests = section.tests
    fr, post, bias = tests.friedman, tests.posthoc, tests.position_bias
    if fr is None and bias is not None and bias.left_win_rate is not None:  # the pairs design
        return Table(key="ranking-tests", title="Ranking tests", header=("test", "statistic", "p", "note"),
                     rows=(("Position bias (sides swapped within each pair)",
                            f"left image won {percent(bias.left_win_rate)} {ci(bias.left_win_rate_ci)} of the "
                            f"untied rankings", pvalue(bias.p_value), f"{bias.n_permutations} permutations"),),
                     note="Friedman, Nemenyi and Kendall's W need full rankings; a pairs study has none.")
    if fr is None:
        return None
    rows = [("Friedman (captions as independent blocks)", f"\u03c7\u00b2 = {num(fr.statistic)}, df = {fr.df}",
             pvalue(fr.p_value),
             f"Kendall's W between captions (how consistently captions order the variants) = "
             f"{num(fr.w_between_captions)}, {fr.n_blocks} captions")]
    if post is not None:
        for h in post.holm_wilcoxon:
            rows.append((f"{h.a} vs {h.b} (Wilcoxon)", f"W = {num(h.statistic)}, n = {h.n_pairs}",
                         pvalue(h.p_holm), "Holm-adjusted"))
        for n in post.nemenyi.pairs:
            rows.append((f"{n.a} vs {n.b} (Nemenyi)", f"\u0394 mean rank = {num(n.mean_rank_difference)}",
                         pvalue(n.p_value), f"critical difference {num(post.nemenyi.critical_difference)}"))
    if bias is not None:
        rows.append(("Position bias (permutation test within captions)",
                     f"S = {num(bias.statistic)}, {bias.n_permutations} permutations", pvalue(bias.p_value),
                     "mean rank by position " + ", ".join(num(x) for x in bias.mean_rank_by_position)))
    return Table(key="ranking-tests", title="Ranking tests", header=("test", "statistic", "p", "note"),
                 rows=tuple(rows), note=("Friedman, post hoc Wilcoxon and Nemenyi: " + fr.note) if fr.note else "")


def _agreement_table(section: Sections | AnalysisResult) -> Table:
    ag = section.agreement
    rows = []
    if ag.count_alpha_interval is not None:
        a = ag.count_alpha_interval
        rows.append(("Krippendorff's \u03b1 (interval), counts", num(a.alpha, 3),
                     f"{a.n_pairable_units} images answered twice or more"))
    if ag.count_alpha_errors is not None:
        a = ag.count_alpha_errors
        rows.append(("Krippendorff's \u03b1 (interval), count errors", num(a.alpha, 3),
                     "answer minus true count: agreement on which images are miscounted, "
                     "free of the spread of the study's true counts"))
    if ag.rank_alpha_ordinal is not None:
        a = ag.rank_alpha_ordinal
        rows.append(("Krippendorff's \u03b1 (ordinal), ranks", num(a.alpha, 3),
                     f"{a.n_pairable_units} (caption, variant) pairs ranked twice or more"
                     if a.units.startswith("(caption, variant)") else f"{a.n_pairable_units} {a.units}"))
    if ag.kendall_w is not None:
        w = ag.kendall_w
        rows.append(("Kendall's W between raters, per caption (mean)", num(w.per_item_mean, 3),
                     f"{w.n_items} captions ranked by two or more raters"))
        rows.append(("Kendall's W over all rankings", num(w.all_rankings, 3),
                     "every ranking as a judge: raters and captions together"))
    if ag.auto_counter is not None:
        c = ag.auto_counter
        rows.append(("Humans vs automatic counter: exact agreement", num(c.exact_agreement, 3),
                     f"{c.n} answers; mean |difference| {num(c.mean_abs_difference)}; "
                     f"quadratic-weighted \u03ba {num(c.quadratic_weighted_kappa, 3)}"))
    return Table(key="agreement", title="Agreement", header=("measure", "value", "on"), rows=tuple(rows))


def _sequential_table(result: AnalysisResult) -> Table | None:
    """The pre-registered primary comparisons under the stopping rule, as the results task
    stored them: the current look, its boundary, where the data stand, what the planned
    effect still needs."""
    primary = result.primary
    if primary is None:
        return None
    rows = []
    for c in primary.comparisons:
        last = c.looks[-1] if c.looks else None
        look = (f"{c.current_look} of {len(primary.looks_planned)} ({last.n_evaluators} evaluators)" if last
                else f"before the first ({primary.n_evaluators} of {primary.looks_planned[0]} evaluators)")
        rows.append((f"{c.a} − {c.b}", MEASURE_LABELS.get(c.measure, c.measure), num(c.effect, 3), look,
                     num(last.estimate if last else c.estimate, 3), num(last.z if last else None),
                     f"±{num(last.boundary)}" if last else "–", c.decision, _adjusted(c), _crowd(c, primary.alpha),
                     _still_needed(c)))
    taken = ", ".join(str(n) for n in primary.looks_planned[:primary.looks_taken]) or "none yet"
    return Table(
        key="sequential", title="Primary comparisons: when to stop",
        header=("comparison", "measure", "planned effect", "look", "estimate", "Z", "boundary", "decision",
                "adjusted for the looks", "same crowd across looks", "evaluators still needed"),
        rows=tuple(rows),
        note=f"Rule: {primary.rule}. Looks planned at {', '.join(map(str, primary.looks_planned))} evaluators "
             f"(in order of arrival); looks taken: {taken}; {primary.n_evaluators} evaluators so far; overall "
             f"error rate {num(primary.alpha)}. “Adjusted for the looks”: once a comparison has stopped for a "
             f"difference (or reached the last look), the estimate beside it leans away from zero, since a study "
             f"stops early when its estimate happens to be large; the adjusted one is the median-unbiased "
             f"estimate, with its interval and p-value, under the stage-wise ordering (Jennison and Turnbull "
             f"2000, ch. 8; efficacy boundaries only). “Same crowd across looks”: from the second look, the "
             f"p-value of Cochran's Q that the evaluators who arrived between looks estimate one difference; "
             f"the looks' error rate assumes they do, so a small p-value (later evaluators judging "
             f"differently) weakens every decision above (the check is conservative and sees only large "
             f"changes with few evaluators: docs/statistics.md). “Evaluators still needed”: how many more the planned "
             f"effect would need for power {num(primary.power)} at the variance seen so far.",
    )


def _adjusted(c: PrimaryComparisonResult) -> str:
    """The "adjusted for the looks" cell: the stopping look's median-unbiased estimate, its
    interval at the comparison's 1 - alpha and the stage-wise p-value; a dash until the
    comparison has ended where the ordering gives it an outcome."""
    last = c.looks[-1] if c.looks else None
    if last is None or last.adjusted_estimate is None:
        return "–"
    p = pvalue(last.adjusted_p_value)
    return (f"{num(last.adjusted_estimate, 3)} {ci(last.adjusted_estimate_ci, 3)} "
            f"({100 * (1 - c.alpha):.4g}% interval), p {p if p.startswith('<') else '= ' + p}")


def _crowd(c: PrimaryComparisonResult, flag: float) -> str:
    """The "same crowd across looks" cell: the last look's crowd-drift p-value, flagged
    below `flag` (the study's overall error rate); a dash at the first look and in results
    stored before the check."""
    last = c.looks[-1] if c.looks else None
    if last is None or last.crowd_drift_p is None:
        return "–"
    p = pvalue(last.crowd_drift_p)
    text = f"p {p if p.startswith('<') else '= ' + p}"
    return text + ": later evaluators judge differently" if last.crowd_drift_p < flag else text


def _still_needed(c: PrimaryComparisonResult) -> str:
    """The "evaluators still needed" cell. While the rule says continue, the study goes on to
    its next planned look whatever the variance: none needed beyond the look's own evaluators
    (the estimate is below them when the standard error is small) reads as that, not as 0
    beside "continue"."""
    if c.decision != "continue" or c.evaluators_more is None:
        return "–"
    if c.next_look is not None and c.evaluators_needed is not None and c.evaluators_needed <= c.next_look:
        return f"none beyond the next look ({c.next_look})"
    return num(c.evaluators_more)


def _robustness_table(result: AnalysisResult) -> Table | None:
    primary = result.primary
    if primary is None or not any(c.robustness for c in primary.comparisons):
        return None

    def cell(f: Fragility) -> str:
        greedy = f.search == "greedy"
        if f.confirmed is None:
            return f"none found up to half of {f.n_total} (greedy)" if greedy else f"more than half of {f.n_total}"
        approx = "" if f.approximate == f.confirmed else f" (approximation: {num(f.approximate)})"
        bound = "at most " if greedy else ""
        return f"{bound}{f.confirmed} of {f.n_total}{approx}"

    rows = []
    for c in primary.comparisons:
        by = {(f.by, f.criterion): f for f in c.robustness}
        rows.append((f"{c.a} − {c.b}", MEASURE_LABELS.get(c.measure, c.measure), num(c.estimate, 3),
                     *(cell(by[(who, crit)]) for who in ("evaluators", "items") for crit in ("sign", "significance"))))
    return Table(
        key="robustness", title="Robustness: how many would have to go to change a conclusion",
        header=("comparison", "measure", "estimate", "evaluators: sign", "evaluators: interval and zero",
                "items: sign", "items: interval and zero"),
        rows=tuple(rows),
        note=f"Method: {primary.robustness_method}. A count is the fewest evaluators (items) whose removal flips "
             "the sign of the difference, or changes whether its interval excludes zero, found by refitting every "
             "subset up to half; \"at most k\" where there were too many to try every subset: k found by refitting "
             "along the influence order, and a smaller set may exist.",
    )


def _ppi_table(result: AnalysisResult, ci_label: str) -> Table | None:
    ppi = result.prediction_powered
    if ppi is None:
        return None
    rows = [(r.variant, MEASURE_LABELS.get(r.measure, r.measure), num(r.n_answers), num(r.human_estimate, 3),
             ci(r.human_ci, 3), num(r.n_judge_only), num(r.weight), num(r.estimate, 3), ci(r.ci, 3))
            for r in ppi.by_variant]
    rows += [(f"{d.a} − {d.b}", MEASURE_LABELS.get(d.measure, d.measure), "", num(d.human_estimate, 3),
              ci(d.human_ci, 3), num(d.n_judge_only), "", num(d.estimate, 3), ci(d.ci, 3)) for d in ppi.differences]
    agreement = "; ".join(f"{a.variant}: exact agreement {num(a.exact_agreement)}, mean difference (judge − "
                          f"people) {num(a.mean_difference)} over {a.n} answers" for a in ppi.judge_agreement)
    return Table(
        key="prediction-powered", title="With the automatic judge: prediction-powered intervals (beside the "
                                        "human-only ones, not replacing them)",
        header=("variant", "measure", "counted answers", "people only", ci_label, "judge-only images",
                "judge weight", "people + judge", ci_label),
        rows=tuple(rows),
        note=f"Method: {ppi.method}. The people-only column is the figure to report; the judge's readings narrow "
             f"it without moving its target whatever the judge's bias. The judge against people: {agreement}.",
    )


def _pairs_table(section: Sections | AnalysisResult, ci_label: str) -> Table:
    pref = section.preference
    rows = tuple(
        (f"{p.a} vs {p.b}", num(p.n), f"{p.a_wins} / {p.ties} / {p.b_wins}", percent(p.win_rate),
         ci(p.win_rate_ci), percent(p.tie_rate), ci(p.tie_rate_ci), percent(p.win_rate_ties_half),
         ci(p.win_rate_ties_half_ci))
        for p in pref.pairs
    )
    return Table(
        key="pairs", title="Every pair of variants: better, about the same, worse",
        header=("a vs b", "rankings", "a better / tied / b better", "a over b (ties left out)", ci_label,
                "tied", ci_label, "sensitivity: a tie as half a win", ci_label),
        rows=rows,
        note=pref.pairs_note,
    )


def result_sections(*, result: AnalysisResult, auto: dict[str, dict]) -> list[dict]:
    """Both analyses, with and without exclusions: their tables, ready to show. When the rules
    would exclude every evaluator, the one section shown is the unfiltered one, labelled so."""
    ci_label = f"{round(100 * result.settings.ci_level)}% CI"
    out = []
    reason = result.exclusions.not_applied_reason
    labels = (("unfiltered", f"Without exclusions: {reason}"),) if reason else SECTION_LABELS
    for key, label in labels:
        section: Sections | AnalysisResult = result if key == "main" else result.unfiltered
        tables = [
            _count_table(section, auto, ci_label), _count_object_table(section, ci_label),
            _preference_table(section, ci_label), _pairs_table(section, ci_label), _tests_table(section, ci_label),
            _ranking_tests_table(section), _agreement_table(section),
        ]
        if key == "main" or reason:  # the stopping rule and the judge read the analysed evaluators
            tables = [_sequential_table(result), _robustness_table(result), *tables, _ppi_table(result, ci_label)]
        out.append({"key": key, "label": label, "data": section.data,
                    "tables": [t for t in tables if t is not None and t.rows]})
    return out


def exclusion_rules_text(result: AnalysisResult) -> str:
    rules = [f"{k.replace('_', ' ')} {v:g}" for k, v in result.exclusions.rules.items() if v is not None]
    return "; ".join(rules) or "none"


def exclusion_rows(result: AnalysisResult) -> list[tuple[str, str]]:
    return [(e.evaluator_id, "; ".join(e.reasons)) for e in result.exclusions.excluded]


def evaluator_reliability_table(result: AnalysisResult) -> Table:
    rows = tuple(
        (e.evaluator_id, num(e.n_count), num(e.n_rank), num(e.gold_accuracy), percent(e.cant_tell_rate),
         percent(e.task_skip_rate), percent(e.ranking_skip_rate), num(e.median_seconds, 1), num(e.consistency),
         "; ".join(e.reasons) if e.excluded else "")
        for e in result.evaluators
    )
    return Table(key="evaluators", title="Evaluators (quality control)",
                 header=("evaluator", "count answers", "rankings", "gold accuracy", "can't tell", "task skip rate",
                         "ranking skip rate", "median s/item", "consistency", "excluded because"),
                 rows=rows)


# --------------------------------------------------------------------------- the protocol


def protocol_rows(protocol: Protocol | None) -> list[tuple[str, str]]:
    """What the protocol fixed, as (label, value) pairs."""
    if protocol is None:
        return [("protocol", "none that evalstudy can read; results use evalstudy's defaults")]
    rows = [("variants", ", ".join(protocol.variants)),
            ("sampling", f"{protocol.sampling.sampler}, {protocol.sampling.steps} steps, "
                         f"guidance scale {protocol.sampling.cfg_scale:g}, seeds from {protocol.sampling.seed}")]
    ct = protocol.count_task
    if ct is not None:
        colours = ", ".join(c.name for c in ct.colours) or "none"
        rows.append(("count task", f"objects {', '.join(o.name for o in ct.objects)}; counts "
                                   f"{', '.join(map(str, ct.counts))}; colours {colours}; "
                                   f"{ct.images_per_prompt} images per prompt and variant"))
        rows.append(("count question", ct.question_template))
    pt = protocol.preference_task
    if pt is not None:
        src = pt.captions
        where = f"{src.n} drawn (seed {src.seed}) from {src.path}" if src.path else f"{len(src.inline)} listed"
        rows.append(("preference task", f"captions: {where}; {pt.images_per_caption} image(s) per caption and "
                                        f"variant; every ranking shows all {len(protocol.variants)} variants"))
    qc = protocol.quality_control
    rows.append(("quality control", f"{len(qc.gold)} gold image(s) with known counts; {qc.repeats} repeated item(s) "
                                    "per evaluator"))
    rows.append(("evaluators", f"{protocol.evaluators.n} planned; every item seen by {protocol.evaluators.overlap}"))
    plan = protocol.analysis
    rules = [f"{k.replace('_', ' ')} {v:g}" for k, v in vars(plan.exclusions).items() if v is not None]
    rows.append(("exclusion rules", "; ".join(rules) or "none"))
    rows.append(("planned comparisons", "; ".join(f"{a} vs {b}" for a, b in protocol.comparisons()) or "none"))
    rows.append(("analysis", f"\u03b1 = {plan.alpha:g}, {round(100 * plan.ci_level)}% intervals, "
                             f"{plan.n_boot} bootstrap resamples (seed {plan.seed}), post hoc: {plan.posthoc}"))
    return rows


# --------------------------------------------------------------------------- the report


def details_from_consent(protocol: Protocol | None) -> dict[str, str]:
    """The report details a protocol's consent section already states, to start the form with."""
    consent = protocol.consent if protocol is not None else None
    if consent is None or not consent.ethics_ref:
        return {}
    return {"ethics": consent.ethics_ref[:ReportDetails._meta.get_field("ethics").max_length]}


def time_on_task_text(evaluators: dict) -> str:
    """The report's "time on task" line: the finished participants' active minutes on tasks
    (time away left out), and how many finished evaluators it leaves out (simulated, or too
    fast for the protocol's speed rule), as the minutes in the study leave them out."""
    median = evaluators.get("median_minutes_finished")
    left_out = evaluators.get("finished_left_out") or 0
    aside = (f"; {left_out} finished evaluator{'s' if left_out != 1 else ''} left out (simulated, "
             f"or too fast for the speed rule)") if left_out else ""
    if median is None:
        return f"no participant has finished{aside}"
    return (f"median {median:.1f} min per finished participant (range {evaluators['min_minutes_finished']:.1f}"
            f"\u2013{evaluators['max_minutes_finished']:.1f}), {evaluators['median_tasks_per_evaluator']} tasks "
            f"each{aside}")


def _pay_rows(details: ReportDetails | None, evaluators: dict, protocol: Protocol | None) -> list[tuple[str, str]]:
    """Recruitment, pay and ethics as the researcher gave them on the dashboard; where they
    gave none, what the protocol's consent section told the participants (pay, ethics)."""
    consent = protocol.consent if protocol is not None else None
    told_pay = consent.pay if consent is not None and consent.pay else ""
    told_ethics = consent.ethics_ref if consent is not None and consent.ethics_ref else ""
    rows = [("recruitment", details.recruitment if details and details.recruitment else "not given"),
            ("expertise", details.expertise if details and details.expertise else "not given"),
            ("training", details.training if details and details.training else "not given")]
    if details is not None and details.pay_per_evaluator is not None:
        pay = f"{details.pay_per_evaluator} {details.pay_currency} per evaluator"
        # The rate a panel shows its participants: pay over the whole time in the study
        # (consent, instructions and practice included), not over the time on tasks alone.
        minutes = evaluators.get("median_minutes_in_study_finished")
        if minutes:
            hourly = details.pay_per_evaluator / Decimal(str(minutes)) * 60
            pay += (f" (\u2248 {hourly:.2f} {details.pay_currency} per hour at the median time in the study of "
                    f"the finished participants, {minutes:.1f} min from consent to the last answer)")
        rows.append(("pay", pay))
    else:
        rows.append(("pay", f"{told_pay} (as the consent page stated it)" if told_pay else "not given"))
    if details is not None and details.ethics:
        rows.append(("ethics", details.ethics))
    else:
        rows.append(("ethics", f"{told_ethics} (as the consent page stated it)" if told_ethics else "not given"))
    if details is not None and details.notes:
        rows.append(("notes", details.notes))
    return rows


def provenance_text(result: AnalysisResult) -> str:
    """Which code computed the numbers: "Computed at commit <sha> with numpy 2.4.6, scipy
    1.17.1." ("" for results stored before this was recorded)."""
    prov = result.settings.provenance
    if prov is None:
        return ""
    commit = prov.commit
    where = f"commit {commit}" + (" with uncommitted changes" if prov.dirty else "") if commit \
        else "an unknown commit (no git checkout)"
    packages = ", ".join(f"{name} {version or 'not installed'}" for name, version in prov.packages.items())
    return f"Computed at {where}, with {packages}." if packages else f"Computed at {where}."


def report_context(*, study: Study, result: StudyResult | None, analysis_error: str = "") -> dict:
    """Everything the report states, for either template; ``analysis_error`` says why there
    are no results when evalstudy could not analyse the responses. What the stored result
    alone decides (exclusions, figures, tables) is rendered by report_html / report_markdown,
    once per result and process (``_analysis_parts``)."""
    protocol = study.parsed_protocol
    evaluators = selectors.study_evaluator_summary(study=study)
    details = ReportDetails.objects.filter(study=study).first()
    return {
        "study": study,
        "generated_at": timezone.now(),
        "protocol": protocol,
        "protocol_rows": protocol_rows(protocol),
        "evaluators": evaluators,
        "pay_rows": _pay_rows(details, evaluators, protocol),
        "time_on_task": time_on_task_text(evaluators),
        "result": result,
        # The automatic counter's scores are read now (a judge may read images after the result).
        "auto": selectors.auto_counter_by_variant(study=study) if result is not None else {},
        "analysis_error": analysis_error,
    }


def _analysis_context(result: StudyResult, auto: dict) -> dict:
    """What the report's exclusions and results sections show of one stored result."""
    data = selectors.study_result_analysis(result=result)
    figures = []
    for fig in result.figures.filter(format="png").order_by("name"):
        png_data_uri = "data:image/png;base64," + base64.b64encode(bytes(fig.content)).decode()
        figures.append({"name": fig.name, "label": FIGURE_LABELS.get(fig.name, fig.name),
                        "png_data_uri": png_data_uri})
    return {
        "result": result,
        "data": data,
        "sections": result_sections(result=data, auto=auto),
        "exclusions": exclusion_rows(data),
        "exclusion_rules": exclusion_rules_text(data),
        "reliability": evaluator_reliability_table(data),
        "provenance": provenance_text(data),
        "figures": figures,
    }


# A stored result never changes (a new state of the responses is a new row): its report
# sections, with the figures inlined and a row per evaluator, are rendered once per process
# and result; at 100,000 responses that was most of a report's time.
_PARTS: OrderedDict[tuple, dict[str, str]] = OrderedDict()
_PARTS_LOCK = threading.Lock()


def _cached_parts(key: tuple, build: Callable[[], dict[str, str]]) -> dict[str, str]:
    """The parts ``build()`` renders, once per ``key`` (a stored result's identity) and process."""
    with _PARTS_LOCK:
        parts = _PARTS.get(key)
        if parts is not None:
            _PARTS.move_to_end(key)
            return parts
    parts = build()
    with _PARTS_LOCK:
        _PARTS[key] = parts
        while len(_PARTS) > selectors.ANALYSES_KEPT:
            _PARTS.popitem(last=False)
    return parts


def _result_key(result: StudyResult, auto: dict) -> tuple:
    return (result.pk, result.fingerprint, result.n_boot, result.seed, result.computed_at,
            tuple(sorted((v, tuple(sorted(a.items()))) for v, a in auto.items())))


def _analysis_parts(context: dict, fmt: str) -> dict[str, str]:
    """``exclusions_part`` and ``analysis_part`` of the report in ``fmt`` ("html" or "md")."""
    result = context["result"]
    if result is None:
        return {}

    def build() -> dict[str, str]:
        inner = _analysis_context(result, context["auto"])
        return {"exclusions_part": render_to_string(f"research/_report_exclusions.{fmt}", inner),
                "analysis_part": render_to_string(f"research/_report_analysis.{fmt}", inner)}

    return _cached_parts(("report", fmt, *_result_key(result, context["auto"])), build)


def dashboard_analysis_part(*, study: Study, result: StudyResult) -> str:
    """The dashboard's figures, result tables, exclusions and quality control of a stored
    result (rendered once per result and process, as the report's)."""
    auto = selectors.auto_counter_by_variant(study=study)

    def build() -> dict[str, str]:
        analysis = selectors.study_result_analysis(result=result)
        inner = {"study": study, "analysis": analysis, "sections": result_sections(result=analysis, auto=auto),
                 "exclusions": exclusion_rows(analysis), "reliability": evaluator_reliability_table(analysis),
                 "figures": selectors.result_figure_names(result=result)}
        return {"analysis_part": render_to_string("research/_dashboard_analysis.html", inner)}

    return _cached_parts(("dashboard", study.slug, *_result_key(result, auto)), build)["analysis_part"]


def report_html(context: dict) -> str:
    return render_to_string("research/report.html", {**context, **_analysis_parts(context, "html")})


def report_markdown(context: dict) -> str:
    return render_to_string("research/report.md", {**context, **_analysis_parts(context, "md")})
