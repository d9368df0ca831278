"""Image sets uploaded on the generation page are imported by a Celery task, not the request.

The request keeps the upload and queues the task; the task (run here as a worker runs it,
in the eager mode the demo may use too) imports it and records how it went on the
``ImageSetImport`` row, which the page reads. tests/e2e/test_imageset_worker.py does the
same through a real worker process and Redis.
"""
from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction

from tests.narrow import present
from tests.webapp.test_imagesets import (
    IMPORTED,
    draft_study,
    make_rows,
    media_files,
    staff_client,
    study_page,
    web_import,
    write_folder,
    zip_folder,
)
from webapp.generation import imagesets, import_runner, services, tasks
from webapp.generation.models import ImageSetImport
from webapp.studies.models import Image, Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Study:
    return draft_study()


@pytest.fixture
def admin():
    return staff_client()


@pytest.fixture
def good_zip(study, tmp_path) -> Path:
    return zip_folder(write_folder(tmp_path / "good", make_rows(study)), tmp_path / "good.zip")


def uploads() -> list[Path]:
    folder = import_runner.upload_dir()
    return sorted(folder.iterdir()) if folder.exists() else []


def model_images(study: Study) -> int:
    return Image.objects.filter(study=study, source="model").count()


def test_the_request_keeps_the_upload_and_queues_the_task_without_importing(
        study, admin, good_zip, monkeypatch, django_capture_on_commit_callbacks):
    def not_in_the_request(**kwargs):
        raise AssertionError("imported inside the request")

    monkeypatch.setattr(imagesets, "imageset_import", not_in_the_request)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = web_import(admin, study, good_zip, name="../../good.zip", run=False)
    assert r.status_code == 302 and r["Location"] == f"/generation/study/{study.slug}/"
    job = ImageSetImport.objects.get(study=study)
    assert job.status == "queued" and job.attempts == 0 and present(job.created_by).username == "boss"
    assert len(callbacks) == 1 and model_images(study) == 0
    # Kept under a random name of ours, whatever the browser called it.
    [kept] = uploads()
    assert kept.name == job.upload_file and kept.name.startswith("imageset-") and "good" not in kept.name
    assert kept.read_bytes() == good_zip.read_bytes() and job.upload_name == "good.zip"
    page = study_page(admin, study)
    assert 'data-status="queued"' in page and "waiting for a worker" in page
    assert 'id="imageset-import"' not in page  # no second upload while one waits


def test_the_task_imports_it_and_the_page_shows_the_summary(study, admin, good_zip, settings):
    assert web_import(admin, study, good_zip).status_code == 302
    job = ImageSetImport.objects.get(study=study)
    assert job.status == "done" and job.attempts == 1 and job.finished_at is not None and job.problems == []
    assert job.summary == "Imported 12 images for model-c, model-d"
    assert model_images(study) == 12 and len(media_files(settings)) == 12
    assert uploads() == []  # the upload is deleted once imported
    page = study_page(admin, study)
    assert 'data-status="done"' in page and "Imported 12 images for model-c, model-d." in page
    status = admin.get(f"/generation/import/{job.pk}/status.json").json()
    assert status["status"] == "done" and status["summary"] == job.summary and status["problems"] == []


def test_a_refused_set_lists_every_problem_and_stores_nothing(study, admin, tmp_path, settings):
    rows = make_rows(study)
    rows[3]["seed"] = "three"
    folder = write_folder(tmp_path / "bad", rows[:-1])
    (folder / rows[5]["file"]).write_bytes(b"not an image")
    assert web_import(admin, study, zip_folder(folder, tmp_path / "bad.zip")).status_code == 302
    job = ImageSetImport.objects.get(study=study)
    assert job.status == "failed" and job.summary == ""
    assert len(job.problems) >= 3, job.problems
    page = study_page(admin, study)
    assert 'data-status="failed"' in page
    for problem in job.problems:
        assert f"<li>{problem}</li>" in page
    assert any("is not a whole number" in p for p in job.problems)
    assert any("not a PNG" in p for p in job.problems)
    assert any("no row for" in p for p in job.problems)
    assert model_images(study) == 0 and media_files(settings) == [] and uploads() == []
    assert 'id="imageset-import"' in page  # another set can be uploaded


def test_a_crash_inside_the_task_marks_the_import_failed_without_showing_a_path(
        study, admin, good_zip, settings, monkeypatch, caplog):
    real, calls = imagesets.write_png_atomic, []
    secret = f"{settings.MEDIA_ROOT}/images/ab/secret-name.png"

    def disk_full_on_fifth(**kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(f"[Errno 28] No space left on device: {secret!r}")
        return real(**kwargs)

    monkeypatch.setattr(imagesets, "write_png_atomic", disk_full_on_fifth)
    with caplog.at_level(logging.ERROR, logger="webapp.generation.import_runner"):
        assert web_import(admin, study, good_zip).status_code == 302  # the task did not raise
    job = ImageSetImport.objects.get(study=study)
    assert job.status == "failed" and job.problems == [import_runner.UNEXPECTED]
    page = study_page(admin, study)
    assert import_runner.UNEXPECTED in page
    for leak in (secret, str(settings.MEDIA_ROOT), "OSError", "No space left", "Traceback"):
        assert leak not in page
    [record] = [r for r in caplog.records if r.name == "webapp.generation.import_runner"]
    assert record.exc_info is not None and "No space left" in str(record.exc_info[1])  # logged for the admins
    assert model_images(study) == 0 and media_files(settings) == [] and uploads() == []


def test_running_the_task_twice_imports_once(study, admin, good_zip, settings):
    web_import(admin, study, good_zip)
    job = ImageSetImport.objects.get(study=study)
    files = media_files(settings)
    assert tasks.import_image_set(job.pk) == "done"  # the message delivered again (acks_late)
    job.refresh_from_db()
    assert job.status == "done" and job.attempts == 1
    assert model_images(study) == 12 and media_files(settings) == files


class Killed(BaseException):
    """The worker's process dying (SIGKILL, the machine lost): no except clause of ours runs."""


def test_a_run_killed_while_storing_is_run_again_once_and_leaves_no_orphan_file(
        study, admin, good_zip, settings, monkeypatch):
    web_import(admin, study, good_zip, run=False)
    job = ImageSetImport.objects.get(study=study)
    with monkeypatch.context() as m:
        def killed(**kwargs):
            raise Killed

        m.setattr(imagesets, "study_attach_images", killed)  # after every file is written, before the commit
        m.setattr(Path, "unlink", lambda self, missing_ok=False: None)  # a killed process removes nothing
        with pytest.raises(Killed):
            tasks.import_image_set(job.pk)
    job.refresh_from_db()
    assert job.status == "running" and model_images(study) == 0
    orphans = media_files(settings)
    assert len(orphans) == 12  # written, their rows rolled back
    assert tasks.import_image_set(job.pk) == "done"  # the message comes back
    job.refresh_from_db()
    assert job.status == "done" and job.attempts == 2 and model_images(study) == 12
    # The same ids again: the first run's files were overwritten, not left beside new ones.
    stored = sorted(Path(settings.MEDIA_ROOT) / f for f in Image.objects.filter(study=study).values_list("file",
                                                                                                          flat=True))
    assert media_files(settings) == orphans == stored
    assert uploads() == []


def test_a_second_upload_while_one_waits_is_refused(study, admin, good_zip, monkeypatch):
    assert web_import(admin, study, good_zip, name="good.zip", run=False).status_code == 302
    first = ImageSetImport.objects.get(study=study)
    refused = f"The image set good.zip (import {first.pk}) is still queued for this study"

    def second_upload() -> str:
        r = web_import(admin, study, good_zip, name="again.zip", run=False)
        assert r.status_code == 409
        assert ImageSetImport.objects.filter(study=study).count() == 1
        assert [p.name for p in uploads()] == [first.upload_file]  # nothing of the refused one is kept
        return r.content.decode()

    assert refused in second_upload()  # refused before its file is copied
    # Another request queues its import while this one copies its file: refused under the
    # study's lock, and the copy removed.
    real, calls = services._import_refusal, []

    def refusal_after_the_copy(study):
        calls.append(study)
        if len(calls) > 1:
            real(study)

    monkeypatch.setattr(services, "_import_refusal", refusal_after_the_copy)
    assert refused in second_upload() and len(calls) == 2
    # Past both checks, the database refuses it (one active import per study), the same way.
    monkeypatch.setattr(services, "_import_refusal", lambda study: None)
    assert refused in second_upload()
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageSetImport.objects.create(study=study, upload_name="x.zip", upload_file="imageset-x.zip")


def test_an_upload_for_a_study_that_is_not_a_draft_is_refused_at_once(study, admin, good_zip):
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    r = web_import(admin, study, good_zip)
    assert r.status_code == 409
    assert "Images are imported into draft studies only; this one is closed." in r.content.decode()
    assert not ImageSetImport.objects.exists() and uploads() == []


def test_an_import_whose_worker_was_lost_is_marked_failed_and_its_late_run_stores_nothing(
        study, admin, good_zip, settings, django_capture_on_commit_callbacks):
    web_import(admin, study, good_zip, run=False)
    job = ImageSetImport.objects.get(study=study)
    import_runner._claim(job.pk)  # a worker took it, then vanished with its message
    with django_capture_on_commit_callbacks(execute=True):
        services.imageset_import_abandon(job=job)
    job.refresh_from_db()
    assert job.status == "failed" and "Marked failed by an administrator" in job.problems[0]
    assert uploads() == []
    with pytest.raises(services.GenerationError, match="Only a queued or running import"):
        services.imageset_import_abandon(job=job)
    assert tasks.import_image_set(job.pk) == "failed"
    assert model_images(study) == 0 and media_files(settings) == []


def test_the_status_json_is_for_staff_only(study, admin, good_zip):
    from django.test import Client

    from tests.factories import UserFactory

    web_import(admin, study, good_zip, run=False)
    job = ImageSetImport.objects.get(study=study)
    assert admin.get(f"/generation/import/{job.pk}/status.json").json()["status"] == "queued"
    someone = Client()
    someone.force_login(UserFactory(username="someone"))
    assert someone.get(f"/generation/import/{job.pk}/status.json").status_code == 403
    assert set(IMPORTED) <= {v.name for v in study.variants.all()}


def test_the_admin_lists_imports_read_only_and_its_action_releases_a_lost_one(
        study, admin, good_zip, django_capture_on_commit_callbacks):
    from django.test import Client

    from tests.factories import UserFactory

    web_import(admin, study, good_zip, name="good.zip", run=False)
    job = ImageSetImport.objects.get(study=study)
    boss = Client()
    boss.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    listing = boss.get("/admin/generation/imagesetimport/")
    assert listing.status_code == 200 and "good.zip" in listing.content.decode()
    page = boss.get(f"/admin/generation/imagesetimport/{job.pk}/change/")
    assert page.status_code == 200 and job.id_key not in page.content.decode()
    assert boss.get(f"/admin/generation/imagesetimport/{job.pk}/delete/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        r = boss.post("/admin/generation/imagesetimport/", {"action": "mark_failed", "_selected_action": [job.pk]},
                      follow=True)
    assert f"Import {job.pk} marked failed." in r.content.decode()
    job.refresh_from_db()
    assert job.status == "failed" and uploads() == []
    r = boss.post("/admin/generation/imagesetimport/", {"action": "mark_failed", "_selected_action": [job.pk]},
                  follow=True)
    assert "Only a queued or running import can be marked failed" in r.content.decode()


def test_an_import_past_its_time_limit_is_marked_failed_and_stores_nothing(
        study, admin, good_zip, settings, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    from webapp.celery import app

    app.loader.import_default_modules()
    assert app.tasks["webapp.generation.tasks.import_image_set"].soft_time_limit == settings.FUSION_IMPORT_TIME_LIMIT_S
    real, calls = imagesets.write_png_atomic, []

    def limit_on_fifth(**kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise SoftTimeLimitExceeded()
        return real(**kwargs)

    monkeypatch.setattr(imagesets, "write_png_atomic", limit_on_fifth)
    web_import(admin, study, good_zip)
    job = ImageSetImport.objects.get(study=study)
    assert job.status == "failed"
    assert job.problems == [import_runner.TIME_LIMIT.format(seconds=settings.FUSION_IMPORT_TIME_LIMIT_S)]
    assert model_images(study) == 0 and media_files(settings) == [] and uploads() == []


def test_a_killed_run_marked_failed_leaves_no_file_and_other_imports_files_stay(
        study, admin, good_zip, settings, monkeypatch, django_capture_on_commit_callbacks):
    other = Path(settings.MEDIA_ROOT) / "images" / "ab" / "another-import.png"
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(b"someone else's")
    web_import(admin, study, good_zip, run=False)
    job = ImageSetImport.objects.get(study=study)
    with monkeypatch.context() as m:
        def killed(**kwargs):
            raise Killed

        m.setattr(imagesets, "study_attach_images", killed)
        m.setattr(Path, "unlink", lambda self, missing_ok=False: None)  # a killed process removes nothing
        with pytest.raises(Killed):
            tasks.import_image_set(job.pk)
    assert len(media_files(settings)) == 12 + 1
    with django_capture_on_commit_callbacks(execute=True):
        services.imageset_import_abandon(job=job)
    assert media_files(settings) == [other] and uploads() == []
    assert tasks.import_image_set(job.pk) == "failed"
    assert media_files(settings) == [other]


def test_a_failed_import_found_again_by_its_run_removes_what_a_killed_run_left(
        study, admin, good_zip, settings, monkeypatch):
    web_import(admin, study, good_zip, run=False)
    job = ImageSetImport.objects.get(study=study)
    with monkeypatch.context() as m:
        m.setattr(imagesets, "study_attach_images", lambda **kw: (_ for _ in ()).throw(Killed()))
        m.setattr(Path, "unlink", lambda self, missing_ok=False: None)
        with pytest.raises(Killed):
            tasks.import_image_set(job.pk)
    ImageSetImport.objects.filter(pk=job.pk).update(status="failed")  # marked failed, its upload still there
    assert len(media_files(settings)) == 12
    assert tasks.import_image_set(job.pk) == "failed"
    assert media_files(settings) == [] and uploads() == []


def test_an_upload_that_is_not_a_zip_is_named_as_uploaded_and_the_uploads_folder_is_private(
        study, admin, tmp_path, settings):
    settings.FUSION_IMPORT_UPLOAD_DIR = str(tmp_path / "fresh" / "uploads")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a zip at all")
    web_import(admin, study, junk, name="my-set.zip", run=False)
    assert stat.S_IMODE(import_runner.upload_dir().stat().st_mode) == 0o700
    job = ImageSetImport.objects.get(study=study)
    assert tasks.import_image_set(job.pk) == "failed"
    job.refresh_from_db()
    assert job.problems[0] == "The upload my-set.zip is neither a folder nor a zip file."
    assert not any(job.upload_file in p for p in job.problems)
    assert job.upload_file not in study_page(admin, study)


def test_a_running_import_marked_failed_while_it_decodes_stops_there(
        study, admin, good_zip, settings, monkeypatch, django_capture_on_commit_callbacks):
    """The administrator's "mark failed" while the run checks the files: the run stops at the
    next file (it decodes no more) and stores nothing."""
    web_import(admin, study, good_zip, run=False)
    job = ImageSetImport.objects.get(study=study)
    real, decoded = imagesets._decode, []

    def decode_then_marked(*args, **kwargs):
        decoded.append(1)
        if len(decoded) == 2:
            with django_capture_on_commit_callbacks(execute=True):
                services.imageset_import_abandon(job=job)
        return real(*args, **kwargs)

    monkeypatch.setattr(imagesets, "_decode", decode_then_marked)
    assert tasks.import_image_set(job.pk) == "failed"
    assert len(decoded) == 2  # the files after the mark were not read
    job.refresh_from_db()
    assert "Marked failed by an administrator" in job.problems[0]
    assert model_images(study) == 0 and media_files(settings) == [] and uploads() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a second connection writing meanwhile: PostgreSQL")
def test_a_running_import_marked_failed_while_it_stores_stops_and_removes_its_files(
        admin, tmp_path, settings, monkeypatch):
    """The mark comes from another connection (the admin's request) while the run's storing
    transaction is open and has written files: the run stops at its next file, its rows roll
    back and its files go; nothing is stored."""
    study = draft_study()
    good = zip_folder(write_folder(tmp_path / "good", make_rows(study)), tmp_path / "good.zip")
    with monkeypatch.context() as m:  # no test transaction holds the queued task back: queue nothing
        m.setattr(tasks.import_image_set, "delay_on_commit", lambda *args: None)
        web_import(admin, study, good, run=False)
    job = ImageSetImport.objects.get(study=study)
    real, written = imagesets.write_png_atomic, []

    def write_then_marked(**kwargs):
        path = real(**kwargs)
        written.append(path)
        if len(written) == 3:
            def admin_marks() -> None:
                services.imageset_import_abandon(job=job)
                connection.close()

            other = threading.Thread(target=admin_marks)
            other.start()
            other.join(timeout=30)
        return path

    monkeypatch.setattr(imagesets, "write_png_atomic", write_then_marked)
    assert tasks.import_image_set(job.pk) == "failed"
    assert len(written) == 3  # stopped at the next file
    assert model_images(study) == 0 and media_files(settings) == [] and uploads() == []
