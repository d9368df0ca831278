"""An image set uploaded on the generation page, end to end through real processes: a web
server process keeps the upload and sends the task to the real Redis server, a real Celery
worker process (queue ``default``) imports it, and Chromium follows the page until it shows
what was stored.

tests/webapp/test_import_runner.py checks the same steps in the test process; this one
checks that the request returns before any import, and that the task and the upload really
reach a worker that is not the web server. It needs FUSION_TEST_REDIS_URL, as the service
tests do.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_dashboard_worker import web_server
from tests.factories import UserFactory
from tests.services.conftest import media_root, redis_flushed, requires_redis, service_env, workers
from tests.webapp.test_imagesets import draft_study, make_rows, write_folder, zip_folder
from webapp.generation.models import ImageSetImport
from webapp.studies.models import Image

pytestmark = [requires_redis, pytest.mark.services, pytest.mark.django_db(transaction=True)]

__all__ = ["media_root", "redis_flushed", "service_env", "web_server", "workers"]  # fixtures used by name


def test_an_image_set_uploaded_on_the_page_is_imported_by_a_worker_process(page, web_server, workers, media_root,
                                                                            tmp_path):
    study = draft_study()
    UserFactory(username="boss", is_staff=True)
    archive = zip_folder(write_folder(tmp_path / "set", make_rows(study)), tmp_path / "sd-base.zip")

    page.goto(f"{web_server}/research/login/?next=/generation/study/{study.slug}/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_selector("#imageset-import")

    # No worker runs yet: the request keeps the file, queues the task in Redis and returns.
    page.set_input_files("#id_upload", str(archive))
    started = time.monotonic()
    page.click("#imageset-import")
    page.wait_for_selector("#imageset-job[data-status=queued]")
    assert time.monotonic() - started < 10
    job = ImageSetImport.objects.get(study=study)
    assert job.status == "queued" and job.upload_name == "sd-base.zip"
    assert (media_root / "uploads" / job.upload_file).is_file()
    assert not Image.objects.filter(study=study, source="model").exists()

    # A worker process on the default queue takes it; the page loads the outcome itself.
    workers.start("default", queues="default")
    page.wait_for_selector("#imageset-job[data-status=done]", timeout=120000)
    assert page.inner_text("#imageset-summary") == "Imported 12 images for model-c, model-d."
    job.refresh_from_db()
    assert job.status == "done" and job.attempts == 1
    stored = Image.objects.filter(study=study, source="model")
    assert stored.count() == 12
    assert all((media_root / image.file).is_file() for image in stored)
    assert not (media_root / "uploads" / job.upload_file).exists()
    log = "\n".join(p.read_text(errors="replace") for p in workers.logs.glob("*.log"))
    assert "webapp.generation.tasks.import_image_set" in log  # the worker process ran it
