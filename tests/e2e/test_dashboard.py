"""A researcher watches a study in Chromium: live progress, figures, an update, a download."""
import random

import pytest

from evalstudy.responses import RESPONSE_COLUMNS
from tests.factories import build_open_study
from tests.webapp.research_support import answer_tasks, fill_study, researcher_of
from webapp.research import services
from webapp.studies import services as study_services
from webapp.studies.models import CountResponse, RankResponse


@pytest.fixture
def study(transactional_db, settings):
    settings.FUSION_RESULTS_N_BOOT = 100
    study = build_open_study(n_slots=3)
    fill_study(study, 1)
    services.study_result_get_or_compute(study=study)
    researcher_of(study)
    return study


def _log_in(page, live_server, study):
    page.goto(f"{live_server.url}/research/{study.slug}/")
    page.wait_for_selector("text=Researchers")  # sent to log in first
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/research/{study.slug}/")


def _answers(study) -> int:
    return (CountResponse.objects.filter(evaluator__study=study).count()
            + RankResponse.objects.filter(evaluator__study=study).count())


def test_progress_moves_figures_render_and_an_export_downloads(page, live_server, study):
    _log_in(page, live_server, study)
    before = _answers(study)
    page.wait_for_function("n => document.getElementById('p-responses').textContent === String(n)", arg=before)
    assert page.locator("#evaluators-body tr").count() == 1
    assert page.locator("#results-stale").is_hidden()

    # every figure of the stored results has loaded as an image
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('img.figure')];"
        " return imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 100); }")

    # a simulated evaluator answers three tasks: the page follows without a reload
    evaluator = study_services.evaluator_join(study=study, simulated=True)
    answer_tasks(evaluator, rng=random.Random(2), limit=3)
    page.wait_for_function("n => document.getElementById('p-responses').textContent === String(n)", arg=before + 3)
    page.wait_for_function("() => document.querySelectorAll('#evaluators-body tr').length === 2")
    assert "(simulated)" in page.inner_text("#evaluators-body")
    assert page.locator("#results-stale").is_visible()

    # updating the results takes in the new answers
    page.click("#update-results")
    page.wait_for_selector("#results-n")
    assert page.inner_text("#results-n") == str(before + 3)
    assert page.locator("#results-stale").is_hidden()

    with page.expect_download() as download:
        page.click("a[data-export=csv]")
    file = download.value
    assert file.suggested_filename.startswith(f"{study.slug}-responses-") and file.suggested_filename.endswith(".csv")
    with open(file.path(), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0] == ",".join(RESPONSE_COLUMNS)
    n_count = CountResponse.objects.filter(evaluator__study=study).count()
    n_rank = RankResponse.objects.filter(evaluator__study=study).count()
    assert len(lines) - 1 == n_count + 4 * n_rank
