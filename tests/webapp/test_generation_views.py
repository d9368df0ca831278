"""The admins' generation pages: access, plan, launch, progress JSON, retry, cancel; the commands."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.shortcuts import resolve_url
from django.test import Client

from tests.factories import UserFactory
from tests.narrow import present
from tests.services.helpers import DEMO_PROTOCOL, NEUTRAL_VARIANTS, make_tiny_checkpoint, small_protocol
from webapp.generation import parts, services
from webapp.generation.models import Batch, Part
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import Checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def study():
    """Variants named so that one tiny checkpoint fits them all (these tests are about the pages)."""
    return study_lifecycle.study_create(
        protocol=small_protocol(variants=NEUTRAL_VARIANTS), slug="gen", base_dir=str(DEMO_PROTOCOL.parent)
    )


@pytest.fixture
def ready_study(study, tiny_checkpoint):
    checkpoint = services.checkpoint_register(name="tiny", path=tiny_checkpoint)
    for variant in study.variants.all():
        services.variant_assign_checkpoint(variant=variant, checkpoint=checkpoint)
    return study


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    return client


def test_pages_are_for_staff_only(ready_study, settings):
    batch = services.batch_launch(study=ready_study)
    urls = ["/generation/", f"/generation/study/{ready_study.slug}/"]
    posts = [
        f"/generation/study/{ready_study.slug}/launch/",
        f"/generation/batch/{batch.pk}/cancel/",
        f"/generation/batch/{batch.pk}/retry/",
        "/generation/checkpoints/register/",
        f"/generation/study/{ready_study.slug}/checkpoints/",
    ]
    anonymous = Client()
    for url in urls:
        r = anonymous.get(url)
        assert r.status_code == 302 and r["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")
    assert anonymous.get(f"/generation/batch/{batch.pk}/progress.json").status_code == 403
    researcher = Client()
    researcher.force_login(UserFactory())
    for url in urls:
        assert researcher.get(url).status_code == 404
    for url in posts:
        assert researcher.post(url, {"name": "x", "path": "/"}).status_code == 404
    assert researcher.get(f"/generation/batch/{batch.pk}/progress.json").status_code == 403
    assert Batch.objects.get(pk=batch.pk).status == "queued"
    assert Batch.objects.count() == 1 and not Checkpoint.objects.filter(name="x").exists()


def test_study_page_shows_the_work_before_launch(staff_client, ready_study):
    r = staff_client.get(f"/generation/study/{ready_study.slug}/")
    assert r.status_code == 200
    html = r.content.decode()
    plan = present(re.search(r'<table class="data" id="plan">(.*?)</table>', html, re.S)).group(1)
    for name in NEUTRAL_VARIANTS:
        assert re.search(rf"<td>{name}</td>\s*<td>tiny.*?</td>\s*<td>6</td><td>6</td><td>1</td>", plan, re.S)
    assert '<th id="plan-missing">24</th>' in plan
    assert "CFG scale 1.0, 25 steps" in html and 'name="cfg_scale"' in html
    assert "4 count prompts and 2 captions" in html


def test_launch_from_the_page_with_overrides_then_progress_json(
    staff_client, ready_study, django_capture_on_commit_callbacks
):
    # The tasks are queued on commit; captured here, not sent.
    with django_capture_on_commit_callbacks(execute=False) as queued:
        r = staff_client.post(
            f"/generation/study/{ready_study.slug}/launch/",
            {"cfg_scale": "4.5", "steps": "3", "part_size": "5", "open_when_complete": "on"},
        )
    assert r.status_code == 302
    batch = Batch.objects.get()
    assert (batch.cfg_scale, batch.steps, batch.part_size, batch.open_when_complete) == (4.5, 3, 5, True)
    assert len(queued) == batch.parts.count() == 8
    assert present(batch.created_by).is_staff
    page = staff_client.get(f"/generation/study/{ready_study.slug}/").content.decode()
    assert f'data-progress-url="/generation/batch/{batch.pk}/progress.json"' in page and "batch.js" in page
    p = staff_client.get(f"/generation/batch/{batch.pk}/progress.json").json()
    assert (p["status"], p["done"], p["total"], p["rate"], p["eta_seconds"]) == ("queued", 0, 24, None, None)
    assert [v["total"] for v in p["variants"]] == [6, 6, 6, 6] and p["parts"]["queued"] == 8
    assert p["can_cancel"] and not p["can_retry"]


def test_launch_errors_are_shown_on_the_page(staff_client, study):
    r = staff_client.post(f"/generation/study/{study.slug}/launch/", {"part_size": "50"})
    page = r.content.decode()
    # One message, saying what to do: nothing is registered yet, so register and assign.
    assert r.status_code == 409 and page.count("Register and assign a checkpoint for every variant") == 1
    # With checkpoints registered but not assigned, it says "assign".
    Checkpoint.objects.create(name="c", path="/x", sha256="0" * 64, config={})
    page = staff_client.post(f"/generation/study/{study.slug}/launch/", {"part_size": "50"}).content.decode()
    assert page.count("Assign a checkpoint for every variant before launching") == 1
    # The assignment form comes before the launch button.
    assert page.index("Checkpoints of the variants") < page.index("Launch a batch")
    r = staff_client.post(f"/generation/study/{study.slug}/launch/", {"part_size": "51", "steps": "0"})
    assert r.status_code == 400 and not Batch.objects.exists()


def test_register_and_assign_checkpoints_from_the_page(staff_client, study, tiny_checkpoint):
    r = staff_client.post(
        "/generation/checkpoints/register/", {"name": "tiny", "path": str(tiny_checkpoint), "study": study.slug}
    )
    assert r.status_code == 302
    checkpoint = Checkpoint.objects.get(name="tiny")
    data = {f"variant_{v.pk}": checkpoint.pk for v in study.variants.all()}
    assert staff_client.post(f"/generation/study/{study.slug}/checkpoints/", data).status_code == 302
    assert set(study.variants.values_list("checkpoint_id", flat=True)) == {checkpoint.pk}
    r = staff_client.post(
        "/generation/checkpoints/register/", {"name": "bad", "path": "/nonexistent", "study": study.slug}
    )
    assert r.status_code == 400 and "No checkpoint weights" in r.content.decode()


@pytest.mark.parametrize("slug", ["not a slug", "no-such-study"])
def test_registering_for_a_study_that_does_not_exist_registers_nothing(staff_client, tiny_checkpoint, slug):
    # Probe 7: a study field that was no slug registered the checkpoint, then answered 500
    # (the redirect to its page could not be built).
    r = staff_client.post("/generation/checkpoints/register/",
                          {"name": "tiny", "path": str(tiny_checkpoint), "study": slug})
    assert r.status_code == 404
    assert not Checkpoint.objects.exists()


def test_the_page_refuses_a_checkpoint_that_contradicts_the_variant(staff_client, tiny_checkpoint):
    study = study_lifecycle.study_create(protocol=small_protocol(), slug="paper", base_dir=str(DEMO_PROTOCOL.parent))
    checkpoint = services.checkpoint_register(name="tiny cross-early", path=tiny_checkpoint)
    data = {f"variant_{v.pk}": checkpoint.pk for v in study.variants.all()}
    r = staff_client.post(f"/generation/study/{study.slug}/checkpoints/", data)
    html = r.content.decode()
    assert r.status_code == 409 and "does not fit variant concat-early" in html
    assert "conditioning=&#x27;cross&#x27;, fusion=&#x27;early&#x27;" in html
    assert "conditioning=&#x27;concat&#x27;, fusion=&#x27;early&#x27;" in html
    assert not study.variants.filter(checkpoint__isnull=False).exists()  # not even cross-early's


def test_cancel_and_retry_from_the_page(staff_client, ready_study):
    batch = services.batch_launch(study=ready_study, part_size=6)
    part = present(batch.parts.first())
    parts.part_claim(part_id=part.pk, claim="c", worker="w", stale_after=timedelta(minutes=1))
    parts.part_fail(part_id=part.pk, claim="c", message="CUDA error: out of memory")
    p = staff_client.get(f"/generation/batch/{batch.pk}/progress.json").json()
    assert p["can_retry"] and p["errors"] == [
        {"part": 0, "variant": "model-a", "status": "failed", "message": "CUDA error: out of memory", "attempts": 1}
    ]
    assert staff_client.post(f"/generation/batch/{batch.pk}/retry/").status_code == 302
    part.refresh_from_db()
    assert part.status == "queued" and part.error == ""
    assert staff_client.post(f"/generation/batch/{batch.pk}/cancel/").status_code == 302
    assert set(Part.objects.filter(batch=batch).values_list("status", flat=True)) == {"cancelled"}
    r = staff_client.post(f"/generation/batch/{batch.pk}/cancel/", follow=True)
    assert "Only a queued or running batch can be cancelled" in r.content.decode()


def test_register_checkpoint_names_both_things_a_folder_could_have_been(tmp_path, monkeypatch):
    """A folder with neither model.safetensors nor model_index.json: the refusal says it is
    neither, naming the folder as it was typed (relative here), and stores nothing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notapipe").mkdir()
    (tmp_path / "notapipe" / "x.json").write_text("{}")
    with pytest.raises(CommandError) as refused:
        call_command("register_checkpoint", "sd-tuned v2", "notapipe")
    assert str(refused.value) == (
        "notapipe is neither a checkpoint (no model.safetensors in it) nor a diffusers pipeline "
        "(no model_index.json in it, as save_pretrained writes).")
    with pytest.raises(CommandError, match=r"^No checkpoint weights at missing/model\.safetensors: no such file"):
        call_command("register_checkpoint", "x", "missing/model.safetensors")
    assert not Checkpoint.objects.exists()


def test_commands_register_launch_retry_and_cancel(study, tiny_checkpoint, capsys):
    for variant in study.variants.all():
        call_command(
            "register_checkpoint", "tiny", str(tiny_checkpoint), "--study", study.slug, "--variant", variant.name
        )
    assert "sha256" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no variant"):
        call_command("register_checkpoint", "tiny", str(tiny_checkpoint), "--study", study.slug, "--variant", "nope")
    call_command("launch_batch", study.slug, "--steps", "2", "--part-size", "3")
    assert "24 images in 8 parts" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already"):
        call_command("launch_batch", study.slug)
    with pytest.raises(CommandError, match="no failed part"):
        call_command("launch_batch", study.slug, "--retry-failed")
    call_command("launch_batch", study.slug, "--cancel")
    assert Batch.objects.get().status == "cancelled"
