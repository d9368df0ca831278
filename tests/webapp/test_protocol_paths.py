"""Files named in a protocol are read only from inside FUSION_PROTOCOL_FILES_DIR."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from evalstudy.protocol import Protocol
from tests.factories import UserFactory
from webapp.studies import lifecycle
from webapp.studies.models import Study

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEMO = FIXTURES / "protocols" / "demo.json"
FIELD = "preference_task.captions.path"


def _demo_with_captions(path: str) -> dict:
    doc = json.loads(DEMO.read_text())
    doc["preference_task"]["captions"]["path"] = path
    return doc


def _upload(doc: dict):
    client = Client()
    client.force_login(UserFactory(username="boss", is_staff=True))
    data = SimpleUploadedFile("protocol.json", json.dumps(doc).encode(), content_type="application/json")
    return client.post("/run/new/", {"protocol": data, "slug": "uploaded"})


@pytest.fixture
def files_dir(tmp_path, settings):
    """A protocol files folder laid out like fixtures/, with a secret file beside it."""
    root = tmp_path / "protocol-files"
    (root / "protocols").mkdir(parents=True)
    (root / "captions").mkdir()
    shutil.copy(FIXTURES / "captions" / "demo_captions.json", root / "captions" / "demo_captions.json")
    (tmp_path / "secret.json").write_text(json.dumps({"annotations": [{"id": 1, "caption": "secret"}]}))
    settings.FUSION_PROTOCOL_FILES_DIR = root
    return root


def _refused(response, *, secret_words=()) -> str:
    """The page refuses, names the field, shows no server path, and nothing is stored."""
    text = response.content.decode()
    assert response.status_code == 400
    assert FIELD in text
    for path in (str(settings.BASE_DIR), str(settings.FUSION_PROTOCOL_FILES_DIR), "/etc", *secret_words):
        assert path not in text
    assert not Study.objects.exists()
    return text


@pytest.mark.parametrize("path", ["/etc/passwd", str(FIXTURES / "captions" / "demo_captions.json")])
def test_an_absolute_path_is_refused(path):
    text = _refused(_upload(_demo_with_captions(path)))
    assert "not an absolute one" in text and "not valid JSON" not in text


@pytest.mark.parametrize("path", [
    "../../var/demo_passwords.json", "../../webapp/settings.py", "../../../../etc/passwd"])
def test_a_path_past_the_folder_is_refused_whether_or_not_the_file_exists(path):
    text = _refused(_upload(_demo_with_captions(path)))
    assert "must be inside the protocol files folder" in text
    assert "cannot read" not in text and "not an MS-COCO" not in text  # nothing said about the file


def test_a_symbolic_link_out_of_the_folder_is_refused(files_dir):
    (files_dir / "captions" / "out.json").symlink_to(files_dir.parent / "secret.json")
    text = _refused(_upload(_demo_with_captions("../captions/out.json")), secret_words=["secret"])
    assert "must be inside the protocol files folder" in text


def test_a_link_and_a_dotdot_that_stay_inside_are_fine(files_dir):
    (files_dir / "captions" / "alias.json").symlink_to(files_dir / "captions" / "demo_captions.json")
    r = _upload(_demo_with_captions("../protocols/../captions/alias.json"))
    assert r.status_code == 302
    assert Study.objects.get(slug="uploaded").items.filter(task="rank").count() == 10


def test_a_missing_file_inside_is_named_by_its_field_and_the_path_the_protocol_wrote(files_dir):
    # The protocol's own relative path, as written (it names nothing of the server: _refused
    # checks that no server folder appears), so that its author sees which file to put there.
    text = _refused(_upload(_demo_with_captions("../captions/nowhere.json")))
    assert "cannot read captions file" in text and "&#x27;../captions/nowhere.json&#x27;" in text


@pytest.mark.parametrize("name", ["demo.json"])
def test_the_shipped_protocols_still_work_and_keep_their_hashes(name):
    doc = json.loads((FIXTURES / "protocols" / name).read_text())
    study = lifecycle.study_create(protocol=doc, slug="shipped", base_dir=str(FIXTURES / "protocols"))
    assert study.protocol_hash == Protocol.from_dict(doc).content_hash()
    assert study.items.filter(task="rank").count() == 10
    r = _upload(doc)
    assert r.status_code == 302 and Study.objects.get(slug="uploaded").protocol_hash == study.protocol_hash
