"""Generation batches through real Celery worker processes and the real Redis server.

Each test launches a batch with ``manage.py launch_batch`` (a separate process, sending to
Redis) and lets ``celery -A webapp worker -Q gpu,default`` processes run it against the
test's own database.
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.services.conftest import manage, requires_redis, wait_for
from tests.services.helpers import DEMO_PROTOCOL, NEUTRAL_VARIANTS, make_tiny_checkpoint, small_protocol
from webapp.generation import services
from webapp.generation.models import Batch, Part
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import Image, Study

pytestmark = [requires_redis, pytest.mark.services, pytest.mark.django_db(transaction=True)]

VARIANTS = NEUTRAL_VARIANTS  # one checkpoint serves every variant in these tests


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "good": make_tiny_checkpoint(root / "good", "tiny-cross-early", seed=0),
        "fragile": make_tiny_checkpoint(root / "fragile", "tiny-concat-early", seed=1),
    }


def make_study(slug: str, checkpoint: Path, name: str) -> Study:
    """6 images per variant: 4 count prompts and 2 captions (see helpers.small_protocol)."""
    study = study_lifecycle.study_create(protocol=small_protocol(variants=VARIANTS), slug=slug,
                                        base_dir=str(DEMO_PROTOCOL.parent))
    registered = services.checkpoint_register(name=name, path=checkpoint)
    for variant in study.variants.all():
        services.variant_assign_checkpoint(variant=variant, checkpoint=registered)
    return study


def batch_of(study: Study) -> Batch:
    return Batch.objects.get(study=study)


def ended(study: Study):
    batch = batch_of(study)
    return batch if batch.status not in Batch.ACTIVE else None


def media_files(media_root: Path) -> list[str]:
    return sorted(p.stem for p in (media_root / "images").rglob("*.png"))


def test_a_batch_completes_with_every_image_of_every_variant(service_env, workers, checkpoints, media_root):
    study = make_study("svc-complete", checkpoints["good"], "good")
    manage(service_env, "launch_batch", study.slug, "--steps", "2", "--part-size", "4", "--open")
    assert Part.objects.filter(batch__study=study).count() == 8  # 6 images per variant in parts of 4 and 2
    workers.start("w1")
    batch = wait_for(lambda: ended(study), timeout=180, what="the batch to end", workers=workers)
    assert batch.status == "complete", workers.logs_tail()
    counts = Counter(Image.objects.filter(study=study, source="model").values_list("variant__name", flat=True))
    assert counts == dict.fromkeys(VARIANTS, 6)
    assert set(Part.objects.filter(batch=batch).values_list("status", "attempts")) == {("done", 1)}
    assert {i.provenance["worker"].split("@")[0] for i in Image.objects.filter(study=study, source="model")} == {"w1"}
    public_ids = set(Image.objects.filter(study=study, source="model").values_list("public_id", flat=True))
    assert public_ids <= set(media_files(media_root))
    study.refresh_from_db()
    assert study.status == "open"


def test_a_killed_worker_is_replaced_and_every_image_exists_once(service_env, workers, checkpoints, media_root):
    study = make_study("svc-kill", checkpoints["good"], "good")
    manage(service_env, "launch_batch", study.slug, "--steps", "6", "--part-size", "6")
    first = workers.start("doomed")
    wait_for(lambda: Image.objects.filter(study=study).filter(source="model").count() >= 4
             and Part.objects.filter(batch__study=study, status="running").exists(),
             timeout=180, what="the first images", workers=workers, interval=0.1)
    workers.kill(first)  # SIGKILL, in the middle of a part
    victim = Part.objects.get(batch__study=study, status="running")
    made_before = Image.objects.filter(study=study, source="model").count()
    assert made_before < 24
    # A new worker, with beat: the sweep sends the dead worker's part again once its
    # heartbeat is FUSION_PART_STALE_SECONDS old.
    workers.start("rescuer", beat=True)
    batch = wait_for(lambda: ended(study), timeout=240, what="the batch to end", workers=workers)
    assert batch.status == "complete", workers.logs_tail()
    victim.refresh_from_db()
    assert victim.status == "done" and victim.requeues >= 1 and victim.attempts >= 2
    rows = list(Image.objects.filter(study=study, source="model").values_list("variant__name", "prompt_id", "seed"))
    assert len(rows) == len(set(rows)) == 24
    assert Counter(v for v, _, _ in rows) == dict.fromkeys(VARIANTS, 6)
    # Exactly one file per image: nothing written twice, no orphan from the killed run.
    mine = set(Image.objects.filter(study=study, source="model").values_list("public_id", flat=True))
    ours = [f for f in media_files(media_root) if f in mine or f.startswith(".tmp")]
    assert sorted(ours) == sorted(mine)
    assert Part.objects.filter(batch=batch).exclude(status="done").count() == 0


def test_a_failing_part_is_reported_then_retried_to_completion(service_env, workers, checkpoints, tmp_path):
    folder = shutil.copytree(checkpoints["fragile"], tmp_path / "fragile")
    study = make_study("svc-fail", folder, "fragile")
    hidden = shutil.move(folder, tmp_path / "elsewhere")  # the weights are not on the worker's path
    manage(service_env, "launch_batch", study.slug, "--steps", "2")
    workers.start("w2")
    batch = wait_for(lambda: ended(study), timeout=180, what="the parts to fail", workers=workers)
    assert batch.status == "failed"
    failed = list(Part.objects.filter(batch=batch, status="failed"))
    assert len(failed) == 4 and all("no weights at" in p.error for p in failed)
    shutil.move(hidden, folder)
    manage(service_env, "launch_batch", study.slug, "--retry-failed")
    batch = wait_for(lambda: ended(study), timeout=180, what="the retried batch", workers=workers)
    assert batch.status == "complete", workers.logs_tail()
    assert Image.objects.filter(study=study, source="model").count() == 24
    assert set(Part.objects.filter(batch=batch).values_list("status", "error")) == {("done", "")}
