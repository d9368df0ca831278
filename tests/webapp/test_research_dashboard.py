"""The dashboard: live progress, results cached per state of the responses, the report."""
import json
import random
import re
from datetime import timedelta
from decimal import Decimal
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import scipy
from django.db.models import F
from django.test import Client

from evalstudy import provenance
from evalstudy.analysis.result import AnalysisResult
from tests.narrow import present
from tests.webapp.conftest import demo_protocol
from tests.webapp.research_support import answer_tasks, fill_study, researcher_of, update_results
from webapp.research import reports, selectors, services
from webapp.research.models import ReportDetails, ResultFigure, StudyResult
from webapp.studies import flow as study_flow
from webapp.studies import joining, recruitment
from webapp.studies.models import CountResponse, Evaluator, Item, RankResponse, Study

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


@pytest.fixture
def researcher(study):
    client = Client()
    client.force_login(researcher_of(study))
    return client


@pytest.fixture(autouse=True)
def _quick_bootstrap(settings):
    settings.FUSION_RESULTS_N_BOOT = 100


def progress(client, study) -> dict:
    r = client.get(f"/research/{study.slug}/progress.json")
    assert r.status_code == 200
    return r.json()


def test_progress_counts_evaluators_answers_and_coverage(study, researcher):
    p = progress(researcher, study)
    assert p["responses"] == 0 and p["evaluators"]["started"] == 0 and p["evaluators"]["slots"] == 3
    n_tasks = len(study.slots.first().items)
    assert p["answers_planned"] == 3 * n_tasks and p["items"]["planned"] == n_tasks

    first = joining.evaluator_join(study=study, external_id="w1")
    answer_tasks(first, rng=random.Random(1), limit=4)
    p = progress(researcher, study)
    assert p["evaluators"]["started"] == 1 and p["evaluators"]["finished"] == 0
    assert p["responses"] == p["answers_toward_plan"] == 4 and p["per_evaluator"][0]["answered"] == 4
    assert p["per_evaluator"][0]["status"] == "active" and p["items"]["started"] == 4

    fill_study(study, 2, seed=5)
    answer_tasks(first, rng=random.Random(1))
    p = progress(researcher, study)
    assert p["evaluators"]["finished"] == 3 and p["responses"] == 3 * n_tasks
    # every slot holds every item here: three answers cover an item
    assert p["items"]["covered"] == n_tasks
    assert p["items"]["by_task"]["rank"] == {"items": 2, "covered": 2, "answers": 6, "planned_answers": 6}


def test_progress_counts_a_refilled_places_answers_beyond_the_plan(study, researcher, settings):
    """A place given up and taken again is answered from its first task: the leaver's answers
    are kept but do not count toward the plan, whose progress never passes 100%."""
    n_tasks = len(study.slots.first().items)
    leaver = joining.evaluator_join(study=study, external_id="leaver")
    answer_tasks(leaver, rng=random.Random(1), limit=4)
    Evaluator.objects.filter(pk=leaver.pk).update(
        last_seen_at=leaver.joined_at - timedelta(seconds=settings.FUSION_SLOT_TIMEOUT_SECONDS + 5))
    fill_study(study, 3, seed=7)
    leaver.refresh_from_db()
    assert leaver.abandoned_at is not None
    p = progress(researcher, study)
    assert p["evaluators"]["finished"] == 3 and p["responses"] == 3 * n_tasks + 4
    assert p["answers_toward_plan"] == p["answers_planned"] == 3 * n_tasks


def test_progress_measures_time_skips_and_gold_per_evaluator(study, researcher):
    ev = fill_study(study, 1)[0]
    counts = CountResponse.objects.filter(evaluator=ev)
    ranks = RankResponse.objects.filter(evaluator=ev)
    # Time away (reported by the task page) is left out of the time on task.
    counts.filter(pk=counts.order_by("pk")[0].pk).update(away_seconds=F("seconds") / 2)
    ranks.filter(pk=ranks.order_by("pk")[0].pk).update(away_seconds=F("seconds"))
    row = progress(researcher, study)["per_evaluator"][0]
    gold = counts.get(item__is_gold=True)
    assert row["pseudonym"] == ev.pseudonym and row["status"] == "finished"
    assert row["gold_answered"] == 1 and row["gold_accuracy"] == float(gold.answer == gold.item.true_count)
    skipped = ranks.filter(skipped=True).count()
    assert row["ranking_skip_rate"] == skipped / ranks.count()
    assert row["task_skip_rate"] == skipped / (ranks.count() + counts.count())
    assert row["cant_tell_rate"] == counts.filter(cant_tell=True).count() / counts.count()
    total = sum(r.seconds - r.away_seconds for r in counts) + sum(r.seconds - r.away_seconds for r in ranks)
    assert sum(r.away_seconds for r in counts) > 0 and sum(r.away_seconds for r in ranks) > 0
    assert row["seconds"] == pytest.approx(total)
    assert row["mean_seconds"] == pytest.approx(total / (counts.count() + ranks.count()))
    assert "external_id" not in str(progress(researcher, study)) and "worker-" not in str(progress(researcher, study))


def test_a_cant_tell_on_a_gold_image_is_no_miscount_on_the_dashboard(study, researcher):
    ev = fill_study(study, 1)[0]
    gold = CountResponse.objects.get(evaluator=ev, item__is_gold=True)
    CountResponse.objects.filter(pk=gold.pk).update(cant_tell=True, answer=None)
    row = progress(researcher, study)["per_evaluator"][0]
    assert row["gold_answered"] == 0 and row["gold_accuracy"] is None  # not 0.0: nothing was miscounted
    CountResponse.objects.filter(pk=gold.pk).update(cant_tell=False, answer=present(gold.item.true_count) + 1)
    row = progress(researcher, study)["per_evaluator"][0]
    assert row["gold_answered"] == 1 and row["gold_accuracy"] == 0.0


def test_results_are_computed_once_per_state_of_the_responses(study, researcher, monkeypatch):
    calls = []
    analyze = services.analyze

    def counting(*args, **kwargs):
        calls.append(1)
        return analyze(*args, **kwargs)

    monkeypatch.setattr(services, "analyze", counting)
    fill_study(study, 2)
    missing = researcher.get(f"/research/{study.slug}/results.json")
    assert missing.status_code == 404 and "Update results" in missing.json()["error"] and not calls
    update_results(researcher, study)
    first = researcher.get(f"/research/{study.slug}/results.json")
    again = researcher.get(f"/research/{study.slug}/results.json").json()
    update_results(researcher, study)  # nothing changed: the stored result is reused
    researcher.get(f"/research/{study.slug}/report/")
    assert first.json() == again and len(calls) == 1 and first["X-Results-Stale"] == "no"
    assert progress(researcher, study)["results"]["current"] is True

    fill_study(study, 1, seed=9)  # new answers: a new state
    assert progress(researcher, study)["results"]["current"] is False
    page = researcher.get(f"/research/{study.slug}/").content.decode()
    assert re.search(r'id="results-stale"[^>]*hidden', page) is None
    old = researcher.get(f"/research/{study.slug}/results.json")
    report = researcher.get(f"/research/{study.slug}/report.md").content.decode()
    assert len(calls) == 1, "viewing never starts an analysis"
    assert old.json() == again and old["X-Results-Stale"].startswith("stale:")
    assert "Results stale: computed from" in report and "update the results" in report
    update_results(researcher, study)
    third = researcher.get(f"/research/{study.slug}/results.json").json()
    assert len(calls) == 2 and third["data"]["n_evaluators"] == 3
    assert StudyResult.objects.filter(study=study).count() == 2


def _research_get_urls(study) -> list[str]:
    """Every GET of the research app that names a study, from its URL patterns (a new view is
    covered without editing this list)."""
    from django.urls import reverse

    from webapp.research import urls

    out = []
    for pattern in urls.urlpatterns:
        params = set(pattern.pattern.converters)
        if "slug" not in params or pattern.name in ("results_update", "report_details"):  # the POSTs
            continue
        kwargs = {"slug": study.slug, **({"name": "preference", "fmt": "png"} if "name" in params else {})}
        out.append(reverse(f"research:{pattern.name}", kwargs=kwargs))
    return out


def test_no_research_get_computes_an_analysis(study, researcher, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a GET computed an analysis")

    urls = _research_get_urls(study)
    assert len(urls) >= 11 and f"/research/{study.slug}/report.md" in urls
    fill_study(study, 2)
    for state in ("nothing stored", "current", "stale"):
        if state == "current":
            update_results(researcher, study)
        if state == "stale":
            fill_study(study, 1, seed=4)
        with monkeypatch.context() as m:
            m.setattr(services, "_analyse", forbidden)
            m.setattr(services, "analyze", forbidden)
            m.setattr(services, "study_result_get_or_compute", forbidden)
            for url in urls:
                r = researcher.get(url)
                assert r.status_code in (200, 404), (state, url, r.status_code)
                assert r.status_code == 200 or state == "nothing stored" or url.endswith(".png"), (state, url)
    assert StudyResult.objects.filter(study=study).count() == 1


def test_an_undo_then_a_new_answer_is_a_new_state(study):
    ev = joining.evaluator_join(study=study, external_id="w-undo")
    answer_tasks(ev, rng=random.Random(2), limit=3)  # not finished: a finished evaluator cannot undo
    before, n = selectors.responses_fingerprint(study=study)
    study_flow.response_undo_last(evaluator=Evaluator.objects.get(pk=ev.pk))
    answer_tasks(Evaluator.objects.get(pk=ev.pk), rng=random.Random(3), limit=1)
    after, m = selectors.responses_fingerprint(study=study)
    assert n == m and before != after


def test_the_dashboard_shows_both_analyses_the_figures_and_the_automatic_counter(study, researcher):
    item = present(Item.objects.filter(study=study, task="count", is_gold=False, variant__name="cross-early").first())
    assert item.true_count is not None
    present(item.image).auto_count = item.true_count + 2
    present(item.image).save()
    fill_study(study, 3)
    r = update_results(researcher, study)
    assert r.status_code == 302
    page = researcher.get(f"/research/{study.slug}/").content.decode()
    assert 'data-analysis="main"' in page and 'data-analysis="unfiltered"' in page
    for name in ("count-error-by-true-count", "count-by-object", "preference", "pairwise-wins",
                 "position-and-skips"):
        assert f'data-figure="{name}"' in page
        png = researcher.get(f"/research/{study.slug}/figures/{name}.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        svg = researcher.get(f"/research/{study.slug}/figures/{name}.svg")
        assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    result = StudyResult.objects.get(study=study)
    sections = reports.result_sections(result=selectors.study_result_analysis(result=result),
                                       auto=selectors.auto_counter_by_variant(study=study))
    fig5 = next(t for t in sections[0]["tables"] if t.key == "figure5")
    cross_early = next(row for row in fig5.rows if row[0] == "cross-early")
    assert cross_early[-2] == "2.00" and cross_early[-1] == "0.00"  # the counter's error and match ratio
    assert ResultFigure.objects.filter(result=result).count() == 10


def test_the_hourly_pay_uses_the_time_in_the_study_not_on_tasks(study):
    """Consent, instructions and practice are paid time too: participants who spent half an
    hour in the study, mostly before their first task, earn the pay per half hour."""
    finished = fill_study(study, 2)
    for ev in Evaluator.objects.filter(pk__in=[e.pk for e in finished]):
        assert ev.finished_at is not None
        Evaluator.objects.filter(pk=ev.pk).update(consented_at=ev.finished_at - timedelta(minutes=30))
    selectors._FINISHED_TIMES.clear()  # a finished evaluator's times never change, except here
    summary = selectors.study_evaluator_summary(study=study)
    assert summary["median_minutes_finished"] < 5  # on tasks: seconds per task
    details = ReportDetails(study=study, pay_per_evaluator=Decimal("5.00"), pay_currency="GBP")
    pay = dict(reports._pay_rows(details, summary, None))["pay"]
    assert "\u2248 10.00 GBP per hour at the median time in the study" in pay and "30.0 min" in pay


def test_the_hourly_pay_leaves_out_those_too_fast_for_the_speed_rule(study):
    """Two scripts that finish in a minute at a tenth of a second a task would make the
    median time in the study a minute, and the pay rate thirty times what people get."""
    Study.objects.filter(pk=study.pk).update(protocol=demo_protocol())  # a speed rule of 1 s a task
    study = Study.objects.get(pk=study.pk)
    finished = fill_study(study, 3)
    limit = recruitment.speed_rule(study)
    assert limit is not None and limit > 0.1
    for k, ev in enumerate(Evaluator.objects.filter(pk__in=[e.pk for e in finished]).order_by("pk")):
        fast = k >= 1
        Evaluator.objects.filter(pk=ev.pk).update(
            consented_at=present(ev.finished_at) - timedelta(minutes=1 if fast else 30))
        if fast:
            for model in (CountResponse, RankResponse):
                model.objects.filter(evaluator=ev).update(seconds=0.1)
    selectors._FINISHED_TIMES.clear()  # a finished evaluator's times never change, except here
    summary = selectors.study_evaluator_summary(study=study)
    assert summary["median_minutes_in_study_finished"] == pytest.approx(30.0)
    details = ReportDetails(study=study, pay_per_evaluator=Decimal("5.00"), pay_currency="GBP")
    assert "\u2248 10.00 GBP per hour" in dict(reports._pay_rows(details, summary, None))["pay"]
    # The time on tasks leaves them out too: the one participant's minutes, not the scripts'.
    slow = finished[0]
    on_task = sum(recruitment.active_seconds(recruitment.answer_times(Evaluator.objects.filter(pk=slow.pk))[slow.pk]))
    assert summary["median_minutes_finished"] == summary["min_minutes_finished"] == pytest.approx(on_task / 60)
    assert summary["finished_left_out"] == 2
    assert reports.time_on_task_text(summary).endswith("; 2 finished evaluators left out (simulated, or too fast "
                                                       "for the speed rule)")


def test_the_time_on_task_leaves_out_simulated_evaluators(study):
    """A demo crowd answers in no time: its minutes are no participant's."""
    finished = fill_study(study, 2)
    Evaluator.objects.filter(pk=finished[0].pk).update(is_simulated=True)
    for model in (CountResponse, RankResponse):
        model.objects.filter(evaluator=finished[1]).update(seconds=20, away_seconds=5)
    selectors._FINISHED_TIMES.clear()
    summary = selectors.study_evaluator_summary(study=study)
    answered = sum(model.objects.filter(evaluator=finished[1]).count() for model in (CountResponse, RankResponse))
    assert summary["median_minutes_finished"] == pytest.approx(answered * 15 / 60)
    assert summary["finished_left_out"] == 1
    Evaluator.objects.filter(pk=finished[1].pk).update(is_simulated=True)
    selectors._FINISHED_TIMES.clear()
    summary = selectors.study_evaluator_summary(study=study)
    assert summary["median_minutes_finished"] is None and summary["median_minutes_in_study_finished"] is None
    assert reports.time_on_task_text(summary) == ("no participant has finished; 2 finished evaluators left out "
                                                 "(simulated, or too fast for the speed rule)")


def test_the_report_states_protocol_evaluators_pay_exclusions_and_results(study, researcher):
    fill_study(study, 3)
    update_results(researcher, study)
    r = researcher.post(f"/research/{study.slug}/report-details/", {
        "recruitment": "Prolific, fluent English", "pay_per_evaluator": "2.50", "pay_currency": "gbp",
        "ethics": "Ethics board ref. 42", "expertise": "", "training": "", "notes": "",
    })
    assert r.status_code == 302
    details = ReportDetails.objects.get(study=study)
    assert details.pay_currency == "GBP"
    md = researcher.get(f"/research/{study.slug}/report.md").content.decode()
    html = unescape(researcher.get(f"/research/{study.slug}/report/").content.decode())
    for text in (md, html):
        assert study.protocol_hash in text
        assert "Prolific, fluent English" in text and "2.50 GBP per evaluator" in text and "per hour" in text
        assert "Ethics board ref. 42" in text
        assert "Object counts" in text and "Preference (rank r of m" in text and "95% CI" in text
        assert "Average count error by true count, one panel per object" in text
        assert "With the protocol's exclusions" in text and "Without exclusions" in text
        assert "Krippendorff" in text and "3 (3 consented, 3 finished" in text
        # which code computed the numbers
        commit = provenance.git_commit()
        assert (f"Computed at commit {commit.sha}" if commit else "Computed at an unknown commit") in text
        assert f"numpy {np.__version__}, scipy {scipy.__version__}." in text
    assert "| variant | images | raters | counted answers (n) | average error | 95% CI |" in md
    # 3 raters per variant: both result tables say what their intervals cannot show
    assert md.count("Fewer than 10 raters behind a row") >= 2
    row = next(line for line in md.splitlines() if line.startswith("| concat-early | "))
    assert [cell.strip() for cell in row.split("|")][3] == "3"  # variant, images, raters
    assert "mean_abs_error" not in md and "skip_rate" not in md  # human labels only
    assert "](preference.png)" not in md and "](data:image/png;base64," in md  # links resolve in the file
    assert "data:image/png;base64," in html


def test_report_details_are_checked(study, researcher):
    r = researcher.post(f"/research/{study.slug}/report-details/", {"pay_per_evaluator": "3", "pay_currency": ""})
    assert r.status_code == 302
    assert not ReportDetails.objects.filter(study=study).exists()
    r = researcher.post(f"/research/{study.slug}/report-details/", {"pay_per_evaluator": "3", "pay_currency": "pounds"})
    assert not ReportDetails.objects.filter(study=study).exists()


def test_no_responses_means_no_results(study, researcher):
    assert researcher.get(f"/research/{study.slug}/results.json").status_code == 404
    assert services.study_result_get_or_compute(study=study) is None
    assert researcher.get(f"/research/{study.slug}/export/aggregates.json").status_code == 404
    page = researcher.get(f"/research/{study.slug}/")
    assert page.status_code == 200 and "No results yet" in page.content.decode()
    report = researcher.get(f"/research/{study.slug}/report.md").content.decode()
    assert "No responses have been collected yet" in report


def test_the_home_page_lists_the_researchers_studies(study, researcher):
    page = researcher.get("/research/").content.decode()
    assert study.title in page and f"/research/{study.slug}/" in page


def test_rules_that_exclude_everyone_leave_the_unfiltered_results_shown(study, researcher):
    protocol = json.loads(DEMO.read_text())
    protocol["analysis"]["exclusions"]["min_median_seconds"] = 1000.0
    study.protocol = protocol
    study.save(update_fields=["protocol"])
    fill_study(study, 2)
    update_results(researcher, study)
    r = researcher.get(f"/research/{study.slug}/results.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["exclusions"]["applied"] is False and doc["exclusions"]["n_excluded"] == 2
    assert "exclude every evaluator" in doc["exclusions"]["not_applied_reason"]
    assert doc["count"]["by_variant"] == doc["unfiltered"]["count"]["by_variant"]
    assert doc["count"]["by_variant"][0]["mean_abs_error"] is not None
    aggregates = researcher.get(f"/research/{study.slug}/export/aggregates.json")
    assert aggregates.status_code == 200
    page = researcher.get(f"/research/{study.slug}/").content.decode()
    assert "exclude every evaluator" in page and 'data-table="figure5"' in page
    report = researcher.get(f"/research/{study.slug}/report.md").content.decode()
    assert "exclude every evaluator" in report and "average error" in report
    assert StudyResult.objects.filter(study=study).exists()


def test_a_stored_result_is_built_once_per_process_and_a_new_one_is_shown(study, researcher, monkeypatch):
    fill_study(study, 2)
    update_results(researcher, study)
    first = StudyResult.objects.get(study=study)
    built = []

    class Counting:
        @staticmethod
        def from_dict(doc):
            built.append(doc["data"]["n_evaluators"])
            return AnalysisResult.from_dict(doc)

    monkeypatch.setattr(selectors, "AnalysisResult", Counting)
    for _ in range(2):
        assert researcher.get(f"/research/{study.slug}/").status_code == 200
        assert researcher.get(f"/research/{study.slug}/report.md").status_code == 200
    assert selectors.study_result_analysis(result=first) is selectors.study_result_analysis(result=first)
    assert built in ([], [2])  # once, or never when an earlier request of this process built it
    fill_study(study, 1, seed=3)
    update_results(researcher, study)
    researcher.get(f"/research/{study.slug}/")
    newest = selectors.study_result_latest(study=study)
    assert newest is not None and newest.pk != first.pk and built[-1] == 3
    assert selectors.study_result_analysis(result=newest).data.n_evaluators == 3
