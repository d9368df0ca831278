"""The dashboard's sequential panel: computed by the results task, read from the stored result."""
import dataclasses

import pytest
from django.test import Client

from tests.factories import VARIANTS, build_open_study
from tests.webapp.research_support import researcher_of, update_results
from webapp.research import services
from webapp.research.models import StudyResult
from webapp.research.reports import pvalue

pytestmark = pytest.mark.django_db

LOOKS = [4, 8, 12]


def primary_protocol() -> dict:
    return {
        "name": "sequential", "variants": list(VARIANTS),
        "sampling": {"cfg_scale": 3.0, "steps": 25, "sampler": "ddim", "seed": 0},
        "evaluators": {"n": 40, "overlap": 3},
        "count_task": {"objects": [{"name": "circle", "plural": "circles"},
                                   {"name": "square", "plural": "squares"}],
                       "counts": [2, 3], "images_per_prompt": 1},
        "preference_task": {"captions": ["a red circle and a blue square", "three green triangles"]},
        "analysis": {"primary": {"comparisons": [{"a": "concat-intermediate", "b": "concat-early",
                                                  "measure": "score", "effect": 1.0}],
                                 "looks": LOOKS}},
    }


@pytest.fixture
def study(settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    study = build_open_study(n_slots=40)
    study.protocol = primary_protocol()
    study.save(update_fields=["protocol"])
    return study


def panel(client, study) -> str:
    r = client.get(f"/research/{study.slug}/")
    assert r.status_code == 200
    html = r.content.decode()
    start = html.index('data-table="sequential"')
    return html[start:html.index("</table>", start)]


def simulate(study, n, seed):
    # A real effect: concat-intermediate is almost always ranked above concat-early.
    services.study_simulate_responses(study=study, n_evaluators=n, seed=seed, rank_noise=0.05,
                                      variant_quality={"concat-intermediate": 0.95, "concat-early": 0.05})


def test_the_sequential_panel_moves_from_continue_to_stop_as_evaluators_arrive(study):
    client = Client()
    client.force_login(researcher_of(study))
    simulate(study, 2, seed=1)
    update_results(client, study, data={"include_simulated": "1"})  # a dry run: simulated raters
    first = panel(client, study)
    assert "continue" in first and "before the first" in first
    simulate(study, 10, seed=2)
    update_results(client, study, data={"include_simulated": "1"})  # a dry run: simulated raters
    stored = StudyResult.objects.filter(study=study).latest("computed_at").result["primary"]
    comparison = stored["comparisons"][0]
    assert comparison["decision"] == "stop: difference shown", comparison
    shown = panel(client, study)
    assert "stop: difference shown" in shown
    # Beside the stop, the estimate adjusted for the looks, with its interval, on the
    # estimate's scale; it is the stored one.
    stop = comparison["looks"][-1]
    low, high = stop["adjusted_estimate_ci"]
    assert low < stop["adjusted_estimate"] < high
    assert f"{stop['adjusted_estimate']:.3f} [{low:.3f}, {high:.3f}] (95% interval)" in shown
    # From the second look, the check that the crowd stayed the same, as stored.
    assert stop["look"] == 2 and stop["crowd_drift_p"] is not None
    assert f"p = {pvalue(stop['crowd_drift_p'])}" in shown
    # The report states the rule, the looks taken and what the adjusted estimate is.
    report = client.get(f"/research/{study.slug}/report.md").content.decode()
    assert "O'Brien-Fleming" in report and "looks taken: 4, 8" in report
    assert "median-unbiased" in report and f"{stop['adjusted_estimate']:.3f}" in report
    # The page shows what the task stored; a GET computes nothing.
    n_results = StudyResult.objects.filter(study=study).count()
    panel(client, study)
    assert StudyResult.objects.filter(study=study).count() == n_results


@pytest.mark.parametrize("needed, more, next_look, cell", [
    (3, 0, 8, "none beyond the next look (8)"),  # a small SE: fewer than this look already holds
    (8, 3, 8, "none beyond the next look (8)"),
    (20, 15, 8, "15"),                          # the planned effect needs more than the next look
    (20, 15, None, "15"),                       # past the last look the count is all there is
])
def test_evaluators_still_needed_never_reads_zero_beside_continue(needed, more, next_look, cell):
    from evalstudy.analysis.result import PrimaryComparisonResult
    from webapp.research.reports import _still_needed

    c = PrimaryComparisonResult(a="x", b="y", measure="score", effect=0.5, alpha=0.05, looks=[], current_look=1,
                                next_look=next_look, decision="continue", estimate=0.1, se=0.05,
                                evaluators_needed=needed, evaluators_more=more, robustness=[])
    assert _still_needed(c) == cell
    assert _still_needed(dataclasses.replace(c, decision="stop: difference shown")) == "–"


def test_the_crowd_check_is_flagged_below_the_error_rate_and_absent_before_the_second_look():
    from evalstudy.analysis.result import Look, PrimaryComparisonResult
    from webapp.research.reports import _crowd

    look = Look(look=2, n_evaluators=8, fraction=0.67, estimate=0.4, se=0.1, z=4.0, boundary=3.0,
                conditional_power=0.9, decision="continue", adjusted_estimate=None,
                adjusted_estimate_ci=[None, None], adjusted_p_value=None, crowd_drift_p=0.01)
    c = PrimaryComparisonResult(a="x", b="y", measure="score", effect=0.5, alpha=0.05, looks=[look],
                                current_look=2, next_look=12, decision="continue", estimate=0.4, se=0.1,
                                evaluators_needed=10, evaluators_more=2, robustness=[])
    assert _crowd(c, 0.05) == "p = 0.010: later evaluators judge differently"
    assert _crowd(c, 0.005) == "p = 0.010"
    assert _crowd(dataclasses.replace(c, looks=[dataclasses.replace(look, crowd_drift_p=None)]), 0.05) == "–"
