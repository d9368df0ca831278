"""The "Update results" button end to end through real processes: a web server process sends the task to
the real Redis server, a real Celery worker process (queue ``default``) computes the
results, and Chromium follows the dashboard until the new numbers appear.

test_dashboard.py checks the same page with a worker thread in the test process (fast, and
on every database); this one checks that the task really travels through the broker to a
worker that is not the web server. It needs FUSION_TEST_REDIS_URL, as the service tests do.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.factories import build_open_study
from tests.services.conftest import ROOT, media_root, redis_flushed, requires_redis, service_env, wait_for, workers
from tests.services.helpers import free_port
from tests.webapp.research_support import answer_tasks, answers_stored, fill_study, researcher_of
from webapp.research import services
from webapp.research.models import ResultsUpdate
from webapp.studies import joining

pytestmark = [requires_redis, pytest.mark.services, pytest.mark.django_db(transaction=True)]

__all__ = ["media_root", "redis_flushed", "service_env", "workers"]  # fixtures used by name


@pytest.fixture
def web_server(service_env, tmp_path):
    """``manage.py runserver`` in its own process, on the test database, DEBUG off."""
    port = free_port()
    env = {**service_env, "DEBUG": "0", "FUSION_RESULTS_N_BOOT": "100", "FUSION_RATELIMITS": "0"}
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            urllib.request.urlopen(f"{url}/research/login/", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True  # it answers
        except OSError:
            return proc.poll() is not None  # stop waiting if it died

    wait_for(up, timeout=60, what="the web server to answer")
    if proc.poll() is not None:
        raise AssertionError((tmp_path / "web.log").read_text())
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_update_results_runs_on_a_celery_worker_process_and_the_dashboard_shows_it(page, web_server, workers):
    study = build_open_study(n_slots=3)
    fill_study(study, 1)
    services.study_result_get_or_compute(study=study)
    researcher_of(study)
    before = answers_stored(study)
    evaluator = joining.evaluator_join(study=study)
    answer_tasks(evaluator, rng=random.Random(5), limit=4)

    page.goto(f"{web_server}/research/{study.slug}/")
    page.wait_for_selector("text=Researchers")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/research/{study.slug}/")
    page.wait_for_function("() => !document.getElementById('results-stale').hidden")

    # No worker runs yet: the request returns and the update waits in Redis, queued.
    started = time.monotonic()
    page.click("#update-results")
    page.wait_for_selector("#results-update[data-state=queued]")
    assert time.monotonic() - started < 5
    assert page.inner_text("#results-n") == str(before)
    time.sleep(1.0)
    assert ResultsUpdate.objects.get(study=study).state == ResultsUpdate.State.QUEUED

    # A worker process on the default queue takes it; the page loads the new numbers itself.
    workers.start("default", queues="default")
    page.wait_for_function(
        "n => document.getElementById('results-n') && document.getElementById('results-n').textContent === String(n)",
        arg=before + 4,
        timeout=90000,
    )
    assert page.locator("#results-stale").is_hidden()
    assert page.inner_text("#results-update").startswith("Results of")
    update = ResultsUpdate.objects.get(study=study)
    assert update.state == ResultsUpdate.State.DONE and update.started_at is not None
    log = "\n".join(p.read_text(errors="replace") for p in workers.logs.glob("*.log"))
    assert "webapp.research.tasks.results_update" in log  # the worker process ran it
