"""The upload cap (webapp/uploads.py): a file past a view's cap is stopped while it streams
in, never kept whole on disk, and the page says why; the CSRF check still holds."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test import Client

from tests.factories import UserFactory
from tests.webapp.test_imagesets import draft_study, staff_client
from webapp.generation import import_runner
from webapp.generation.models import ImageSetImport
from webapp.research.run_forms import MAX_PROTOCOL_BYTES
from webapp.studies.models import Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def spooled(settings, tmp_path, monkeypatch) -> dict[str, Any]:
    """Every upload spooled to a temporary file of its own folder (as a large one is); what
    reaches the temporary file is counted."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1_000
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "spool")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    seen: dict[str, Any] = {"bytes": 0, "folder": Path(settings.FILE_UPLOAD_TEMP_DIR)}
    real = TemporaryFileUploadHandler.receive_data_chunk

    def counted(self, raw_data, start):
        seen["bytes"] += len(raw_data)
        return real(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", counted)
    return seen


def _big(n: int, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"x" * n, content_type="application/octet-stream")


def test_an_image_set_past_the_cap_is_stopped_as_it_streams_and_nothing_is_kept(settings, spooled):
    study = draft_study()
    settings.FUSION_IMPORT_MAX_BYTES = 200_000
    r = staff_client().post(f"/generation/study/{study.slug}/images/", {"upload": _big(2_000_000, "set.zip")})
    assert r.status_code == 413
    assert "The upload is larger than the 200,000 bytes allowed" in r.content.decode()
    # At most the cap reached the disk (chunk by chunk), and that was deleted.
    assert 0 < spooled["bytes"] <= 200_000 and list(spooled["folder"].iterdir()) == []
    assert not ImageSetImport.objects.exists()
    assert not import_runner.upload_dir().exists() or list(import_runner.upload_dir().iterdir()) == []


def test_an_image_set_under_the_cap_still_arrives(settings, spooled):
    """The cap is on the upload, not the request: a small file reaches the form (a zip that
    is not one is then refused for what it is, by the worker)."""
    study = draft_study()
    settings.FUSION_IMPORT_MAX_BYTES = 200_000
    r = staff_client().post(f"/generation/study/{study.slug}/images/", {"upload": _big(150_000, "set.zip")})
    assert r.status_code == 302 and ImageSetImport.objects.filter(study=study).count() == 1
    assert spooled["bytes"] == 150_000


def test_a_protocol_past_its_cap_is_stopped_and_no_study_is_made(spooled):
    admin = Client()
    admin.force_login(UserFactory(is_staff=True))
    n = Study.objects.count()
    r = admin.post("/run/new/", {"slug": "too-big", "protocol": _big(MAX_PROTOCOL_BYTES * 3, "protocol.json")})
    page = r.content.decode()
    assert r.status_code == 413 and f"larger than the {MAX_PROTOCOL_BYTES:,} bytes allowed" in page
    assert 'value="too-big"' in page  # what was typed is kept
    assert Study.objects.count() == n and spooled["bytes"] <= MAX_PROTOCOL_BYTES
    assert list(spooled["folder"].iterdir()) == []


@pytest.mark.parametrize("url", ["/run/new/", "/generation/study/{slug}/images/"])
def test_a_capped_view_still_checks_the_csrf_token(url):
    study = draft_study()
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True))
    r = client.post(url.format(slug=study.slug), {"slug": "x", "upload": _big(10, "a.zip"),
                                                  "protocol": _big(10, "p.json")})
    assert r.status_code == 403 and Study.objects.count() == 1 and not ImageSetImport.objects.exists()


# A file sent to a view that takes none, or to an upload view by someone it refuses, must not
# reach the disk: the probe spooled 300 MB to /tmp through the login page, anonymously, with a
# csrftoken cookie of its own making, before the 403.
FORGED_CSRF = "a" * 32  # any 32 characters: the cookie is the visitor's own


def _with_forged_cookie(client: Client) -> Client:
    client.cookies["csrftoken"] = FORGED_CSRF
    return client


def test_a_file_posted_to_a_view_that_takes_none_is_never_spooled(spooled):
    study = draft_study()
    anonymous = _with_forged_cookie(Client(enforce_csrf_checks=True))
    for url in ("/research/login/", f"/join/{study.invite_token}/continue/", "/admin/login/"):
        r = anonymous.post(url, {"username": "x", "f": _big(50_000, "big.bin")})
        assert r.status_code in (400, 403), (url, r.status_code)
    assert spooled["bytes"] == 0 and list(spooled["folder"].iterdir()) == []


def test_the_fields_beside_a_dropped_file_still_arrive(spooled):
    """Only the files are dropped: a form that happens to be multipart (the login page sent
    with a file before its fields) still reads its fields, the CSRF token among them."""
    client = Client(enforce_csrf_checks=True)
    client.get("/research/login/")
    token = client.cookies["csrftoken"].value
    r = client.post("/research/login/", {"f": _big(50_000, "big.bin"), "csrfmiddlewaretoken": token,
                                          "username": "nobody", "password": "x"})
    assert r.status_code == 200 and "username" in r.content.decode()  # the form again, not a CSRF 403
    assert spooled["bytes"] == 0


@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
def test_an_image_set_from_someone_the_import_view_refuses_is_never_spooled(spooled, who):
    study = draft_study()
    client = _with_forged_cookie(Client(enforce_csrf_checks=True))
    if who == "non-staff":
        client.force_login(UserFactory())
    r = client.post(f"/generation/study/{study.slug}/images/",
                    {"csrfmiddlewaretoken": FORGED_CSRF, "upload": _big(150_000, "set.zip")})
    assert r.status_code == (302 if who == "anonymous" else 404)  # refused as before: log in / no such page
    assert spooled["bytes"] == 0 and not ImageSetImport.objects.exists()


def test_a_protocol_from_an_account_that_may_not_create_studies_is_never_spooled(spooled):
    client = _with_forged_cookie(Client(enforce_csrf_checks=True))
    client.force_login(UserFactory())
    r = client.post("/run/new/", {"csrfmiddlewaretoken": FORGED_CSRF, "slug": "nope",
                                  "protocol": _big(50_000, "protocol.json")})
    assert r.status_code == 403 and spooled["bytes"] == 0
