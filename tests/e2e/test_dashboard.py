"""A researcher watches a study in Chromium: live progress, figures, an update, a download."""
import random
import threading
import time

import pytest

from evalstudy.responses import RESPONSE_COLUMNS
from tests.factories import build_open_study
from tests.webapp.research_support import answer_tasks, answers_stored, fill_study, researcher_of
from webapp.research import services
from webapp.research.models import ResultFigure
from webapp.studies import joining
from webapp.studies.models import CountResponse, RankResponse

WORKER_PICKUP_SECONDS = 1.5  # long enough for the page to show the queued update


@pytest.fixture(autouse=True)
def thread_worker(monkeypatch, django_db_blocker):
    """A worker in a thread of this process stands in for Celery's: "Update results" queues
    the task once the request commits; the thread picks it up a moment later and runs it."""
    from django.db import connection, transaction

    from webapp.research import tasks

    def run(update_id, test_database):
        time.sleep(WORKER_PICKUP_SECONDS)
        # A new thread opens its own connection: point it at the test database, and let it
        # past pytest-django's blocker, which guards every thread but the test's.
        connection.settings_dict["NAME"] = test_database
        with django_db_blocker.unblock():
            try:
                tasks.results_update(update_id)
            finally:
                connection.close()

    def delay_on_commit(update_id):
        name = connection.settings_dict["NAME"]  # the request's: the test database
        transaction.on_commit(lambda: threading.Thread(target=run, args=(update_id, name), daemon=True).start())

    monkeypatch.setattr(tasks.results_update, "delay_on_commit", delay_on_commit)


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


def test_progress_moves_figures_render_and_an_export_downloads(page, live_server, study):
    _log_in(page, live_server, study)
    before = answers_stored(study)
    page.wait_for_function("n => document.getElementById('p-responses').textContent === String(n)", arg=before)
    assert page.locator("#evaluators-body tr").count() == 1
    assert page.locator("#results-stale").is_hidden()

    # every figure of the stored results has loaded as an image
    n_figures = ResultFigure.objects.filter(result__study=study, format="png").count()
    assert n_figures >= 3
    page.wait_for_function(
        "n => { const imgs = [...document.querySelectorAll('img.figure')];"
        " return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 100); }", arg=n_figures)

    # a second participant answers three tasks: the page follows without a reload
    evaluator = joining.evaluator_join(study=study)
    answer_tasks(evaluator, rng=random.Random(2), limit=3)
    page.wait_for_function("n => document.getElementById('p-responses').textContent === String(n)", arg=before + 3)
    page.wait_for_function("() => document.querySelectorAll('#evaluators-body tr').length === 2")
    assert page.locator("#results-stale").is_visible()

    # updating the results takes in the new answers (the page loads them when the task is done)
    page.click("#update-results")
    page.wait_for_function("n => document.getElementById('results-n').textContent === String(n)",
                           arg=before + 3, timeout=60000)
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


def test_update_results_returns_at_once_shows_progress_then_the_new_numbers(page, live_server, study):
    _log_in(page, live_server, study)
    before = answers_stored(study)
    evaluator = joining.evaluator_join(study=study)
    answer_tasks(evaluator, rng=random.Random(5), limit=4)
    page.wait_for_function("() => !document.getElementById('results-stale').hidden")

    started = time.monotonic()
    page.click("#update-results")
    page.wait_for_selector("#results-update[data-state=queued]")
    # the page came back before the worker even picked the task up
    assert time.monotonic() - started < WORKER_PICKUP_SECONDS
    assert page.inner_text("#results-n") == str(before)
    assert page.locator("#update-results").is_disabled()
    # the dashboard follows the task, then loads the new numbers by itself
    page.wait_for_function(
        "n => document.getElementById('results-n') && document.getElementById('results-n').textContent === String(n)",
        arg=before + 4, timeout=60000)
    assert page.locator("#results-stale").is_hidden()
    assert page.inner_text("#results-update").startswith("Results of")
    assert page.locator("#update-results").is_enabled()
