"""The research GETs at scale: a fixed number of queries whatever the number of evaluators and
answers, and the per-process reuse of what a stored result or a finished evaluator decides."""
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.narrow import present
from tests.webapp.research_support import answer_tasks, fill_study, researcher_of, update_results
from tests.webapp.test_research_dashboard import _research_get_urls
from webapp.research import progress, reports, selectors
from webapp.studies import joining

pytestmark = pytest.mark.django_db

# Queries of each research GET (URL name -> at most), with a stored result, once the
# process has built what it keeps per result; the same at every size of the study.
QUERY_BUDGET = {
    "dashboard": 11, "progress_json": 15, "results_json": 9, "figure": 6, "export_csv": 9, "export_jsonl": 9,
    "export_aggregates": 9, "export_figures": 9, "export_protocol": 4, "report_html": 11, "report_md": 11,
}


@pytest.fixture(autouse=True)
def _quick_bootstrap(settings):
    settings.FUSION_RESULTS_N_BOOT = 100


def _queries(client, url: str) -> int:
    client.get(url)  # what a process keeps per stored result or finished evaluator is built once
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
        assert response.status_code == 200, url
        if response.streaming:
            b"".join(response.streaming_content)
    return len(ctx.captured_queries)


def _name(study, url: str) -> str:
    from django.urls import resolve

    return present(resolve(url.split("?")[0]).url_name)


def test_research_gets_run_a_fixed_number_of_queries(study):
    client = Client()
    client.force_login(researcher_of(study))
    urls = _research_get_urls(study)
    fill_study(study, 1)
    update_results(client, study)
    small = {_name(study, url): _queries(client, url) for url in urls}
    fill_study(study, 2, seed=5)  # more evaluators and answers, and a new result
    update_results(client, study)
    large = {_name(study, url): _queries(client, url) for url in urls}
    assert large == small  # no query per evaluator, per answer or per item
    over = {name: n for name, n in large.items() if n > QUERY_BUDGET[name]}
    assert not over, f"over the budget {QUERY_BUDGET}: {over}"


def test_time_on_task_in_the_report_follows_each_evaluator_who_finishes(study):
    import random

    fill_study(study, 1)
    first = selectors.study_evaluator_summary(study=study)
    assert first["finished"] == 1 and first["median_tasks_per_evaluator"] is not None
    half = joining.evaluator_join(study=study, external_id="w-half")
    answer_tasks(half, rng=random.Random(3), limit=2)  # not finished: not in the time on task
    assert selectors.study_evaluator_summary(study=study) == {**first, "joined": 2, "consented": 2,
                                                               "with_external_id": 2}
    answer_tasks(half, rng=random.Random(4), cant_tell_every=2)  # finishes, slower than the first
    now = selectors.study_evaluator_summary(study=study)
    assert now["finished"] == 2
    assert {k: now[k] for k in now if "minutes" in k or "tasks" in k or "left_out" in k} == \
        selectors._finished_time_on_task(study)
    assert now["median_minutes_finished"] != first["median_minutes_finished"]  # the mean of two times now


def test_a_report_shows_the_newest_result_not_the_one_it_rendered_before(study):
    client = Client()
    client.force_login(researcher_of(study))
    fill_study(study, 1)
    update_results(client, study)
    before = client.get(f"/research/{study.slug}/report.md").content.decode()
    fill_study(study, 1, seed=7)
    update_results(client, study)
    after = client.get(f"/research/{study.slug}/report.md").content.decode()
    n = selectors.study_result_latest(study=study).n_responses  # type: ignore[union-attr]  # stored just above
    assert f"{n} answers, analysed" in after and f"{n} answers, analysed" not in before
    assert "1 of 2 evaluators" in after or "of 2 evaluators" in after
    assert len(reports._PARTS) >= 2


def test_progress_json_fingerprint_is_the_responses_fingerprint(study):
    """progress.json reads the responses' state from its own per-evaluator counts: the same
    fingerprint as counting the answers apart, with and without simulated evaluators."""
    import random

    from webapp.research import services

    fill_study(study, 2)
    services.study_simulate_responses(study=study, n_evaluators=1, seed=2)
    half = joining.evaluator_join(study=study, external_id="w-half")
    answer_tasks(half, rng=random.Random(3), limit=2)
    for include_simulated in (False, True):
        now, fingerprint = progress.study_progress_and_fingerprint(study=study, include_simulated=include_simulated)
        assert fingerprint == selectors.responses_fingerprint(study=study, include_simulated=include_simulated)[0]
        assert now == progress.study_progress(study=study)
    assert (progress.study_progress_and_fingerprint(study=study)[1]
            != progress.study_progress_and_fingerprint(study=study, include_simulated=True)[1])
