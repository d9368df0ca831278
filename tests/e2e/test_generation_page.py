"""The generation page follows its batch to the end: status and counts without a reload."""
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import UserFactory, fill_study_images
from tests.services.helpers import DEMO_PROTOCOL, small_protocol
from webapp.generation.models import Batch
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import Study


@pytest.fixture
def staff(transactional_db):
    return UserFactory(username="boss", is_staff=True)


def test_the_page_shows_the_end_of_its_batch_without_a_reload(page, live_server, staff):
    study = study_lifecycle.study_create(protocol=small_protocol(), slug="gen-live", base_dir=str(DEMO_PROTOCOL.parent))
    batch = Batch.objects.create(study=study, status=Batch.Status.RUNNING, cfg_scale=3.0, steps=5, sampler="dpm_solver",
                                 total_images=10, started_at=timezone.now())
    page.goto(f"{live_server.url}/research/login/?next=/generation/study/{study.slug}/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_selector("#batch")
    assert "Draft" in page.inner_text("h1") and page.inner_text("#plan-missing") != "0"
    # The batch's worker finishes: every image exists, the batch is done, the study opens.
    fill_study_images(study)
    study_lifecycle.study_open(study=study)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETE, finished_at=timezone.now())
    expect(page.locator("#plan-missing")).to_have_text("0", timeout=10000)
    assert "Open" in page.inner_text("h1")
    assert page.inner_text('[data-field="status_label"]') == Batch.Status.COMPLETE.label
    assert Study.objects.get(pk=study.pk).status == "open"


def test_the_checkpoint_selects_keep_the_saved_assignment_after_saving_and_reloading(page, live_server, staff,
                                                                                     tmp_path):
    from tests.services.helpers import NEUTRAL_VARIANTS, make_tiny_checkpoint
    from webapp.generation import services

    study = study_lifecycle.study_create(protocol=small_protocol(variants=NEUTRAL_VARIANTS), slug="gen-assign",
                                        base_dir=str(DEMO_PROTOCOL.parent))
    first = services.checkpoint_register(name="first", path=make_tiny_checkpoint(tmp_path / "first"))
    page.goto(f"{live_server.url}/research/login/?next=/generation/study/{study.slug}/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    selects = page.locator('form[action$="/checkpoints/"] select')
    expect(selects).to_have_count(study.variants.count())
    for i in range(selects.count()):
        selects.nth(i).select_option(str(first.pk))
    page.click('form[action$="/checkpoints/"] button[type=submit]')
    page.wait_for_selector("text=Checkpoints saved.")
    for i in range(selects.count()):
        assert selects.nth(i).input_value() == str(first.pk)
    # Assigned elsewhere (the command line) meanwhile: a reload shows the database's choice,
    # not the values the browser kept from before.
    second = services.checkpoint_register(name="second", path=make_tiny_checkpoint(tmp_path / "second"))
    for variant in study.variants.all():
        services.variant_assign_checkpoint(variant=variant, checkpoint=second)
    page.reload()
    for i in range(selects.count()):
        assert selects.nth(i).input_value() == str(second.pk)
