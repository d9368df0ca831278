"""A researcher creates a study from an uploaded protocol, copies the invite link and opens
the study, all in Chromium."""
import json
from pathlib import Path

import pytest

from tests.factories import UserFactory, fill_study_images
from webapp.studies.models import Study

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "demo.json"


@pytest.fixture
def admin(transactional_db):
    return UserFactory(username="boss", is_staff=True)


def test_create_by_upload_copy_the_invite_link_and_open(page, live_server, admin, tmp_path, settings):
    settings.FUSION_BASE_URL = live_server.url  # the origin invite links are made with
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.goto(f"{live_server.url}/research/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.click("#new-study-link")

    # A protocol with a mistake: the error names the field, and nothing is created.
    doc = json.loads(DEMO.read_text())
    doc["evaluators"]["overlap"] = 99
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    page.set_input_files("#id_protocol", str(bad))
    page.fill("#id_slug", "from-the-web")
    page.click("#create")
    assert page.inner_text("#protocol-error-field") == "evaluators.overlap"
    assert not Study.objects.filter(slug="from-the-web").exists()

    page.set_input_files("#id_protocol", str(DEMO))
    page.fill("#id_slug", "from-the-web")
    page.click("#create")
    page.wait_for_url(f"{live_server.url}/run/from-the-web/")
    study = Study.objects.get(slug="from-the-web")
    assert page.inner_text("#status") == "Draft"

    page.click("#copy-invite")
    page.wait_for_selector("text=Copied.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith(f"/join/{study.invite_token}/") and copied == page.inner_text("#invite-link")

    fill_study_images(study)  # what the generation batch does (tests/webapp cover it)
    page.click("#action-open")
    assert "Participants can join" in page.inner_text("#confirm-form")
    assert Study.objects.get(pk=study.pk).status == "draft"  # not before the confirmation
    page.click("#confirm-yes")
    page.wait_for_selector("#action-pause")
    assert page.inner_text("#status") == "Open"
    assert Study.objects.get(pk=study.pk).status == "open"
    n = study.protocol["evaluators"]["n"]
    assert page.inner_text("#places").startswith(f"{n} of {n} places free")

    # The invite link works: a participant gets the consent page.
    page.context.clear_cookies()
    page.goto(copied)
    page.wait_for_selector("text=Before you start")
