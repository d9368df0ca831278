""""Update results" as a Celery task: the request queues it and returns, one runs per study,
the dashboard's progress follows it, a failure is reported, a redelivered message is harmless."""
import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from tests.webapp.research_support import celery_eager, fill_study, researcher_of
from webapp.research import services, tasks
from webapp.research.models import ResultsUpdate, StudyResult

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quick_bootstrap(settings):
    settings.FUSION_RESULTS_N_BOOT = 60


@pytest.fixture
def researcher(study):
    client = Client()
    client.force_login(researcher_of(study))
    return client


def _post(client, study):
    return client.post(f"/research/{study.slug}/results/update/")


def test_the_request_queues_the_task_and_returns_without_computing(study, researcher,
                                                                   django_capture_on_commit_callbacks):
    fill_study(study, 2)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        r = _post(researcher, study)
    assert r.status_code == 302
    update = ResultsUpdate.objects.get(study=study)
    assert update.state == ResultsUpdate.State.QUEUED and len(queued) == 1
    assert not StudyResult.objects.filter(study=study).exists()
    shown = researcher.get(f"/research/{study.slug}/progress.json").json()["results"]["update"]
    assert shown["state"] == "queued"
    page = researcher.get(f"/research/{study.slug}/").content.decode()
    assert "Update queued" in page and 'id="update-results" disabled' in page

    with celery_eager():
        queued[0]()  # the worker receives the message
    update.refresh_from_db()
    assert update.state == ResultsUpdate.State.DONE and update.result is not None
    assert "Results of" in update.message
    results = researcher.get(f"/research/{study.slug}/progress.json").json()["results"]
    assert results["update"]["state"] == "done" and results["id"] == update.result.pk and results["current"]


def test_a_second_press_joins_the_update_under_way(study, researcher, django_capture_on_commit_callbacks):
    fill_study(study, 1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        _post(researcher, study)
        _post(researcher, study)
    assert ResultsUpdate.objects.filter(study=study).count() == 1 and len(queued) == 1


def test_the_database_holds_at_most_one_active_update_per_study(study):
    ResultsUpdate.objects.create(study=study)
    with pytest.raises(IntegrityError), transaction.atomic():
        ResultsUpdate.objects.create(study=study, state=ResultsUpdate.State.RUNNING)
    ResultsUpdate.objects.create(study=study, state=ResultsUpdate.State.DONE)  # finished ones may pile up


def test_a_failure_is_recorded_with_its_reason(study, monkeypatch):
    fill_study(study, 1)

    def broken(**kwargs):
        raise services.ResearchError("The responses cannot be analysed yet: a reason")

    monkeypatch.setattr(services, "_analyse", broken)
    update = ResultsUpdate.objects.create(study=study)
    assert tasks.results_update(update.pk) == "failed"
    update.refresh_from_db()
    assert update.state == "failed" and "a reason" in update.message and update.finished_at


def test_a_redelivered_message_changes_nothing(study):
    fill_study(study, 1)
    update = ResultsUpdate.objects.create(study=study)
    assert tasks.results_update(update.pk) == "done"
    first = StudyResult.objects.get(study=study)
    assert tasks.results_update(update.pk) == "done"
    assert list(StudyResult.objects.filter(study=study)) == [first]


def test_the_task_is_on_the_default_queue():
    from django.conf import settings

    assert tasks.results_update.name not in settings.CELERY_TASK_ROUTES
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"
