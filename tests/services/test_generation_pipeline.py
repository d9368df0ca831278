"""A diffusers pipeline's images made by a real Celery worker process, beside our checkpoint's.

The batch is launched with ``manage.py launch_batch`` (sent through Redis) and run by a
``celery -A webapp worker`` process against the test's database; each stored image is
compared with the same (prompt, seed) drawn alone in this process.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.services.conftest import manage, requires_redis, wait_for
from tests.services.helpers import DEMO_PROTOCOL, NEUTRAL_VARIANTS, make_tiny_checkpoint, small_protocol
from tests.tiny_pipeline import save_tiny_pipeline
from webapp.generation import services
from webapp.generation.models import Batch
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import Image

pytestmark = [requires_redis, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_worker_makes_a_pipelines_images_as_it_would_alone(service_env, workers, media_root, tmp_path):
    pipeline_dir = save_tiny_pipeline(tmp_path / "outside-model")
    protocol = small_protocol(variants=NEUTRAL_VARIANTS)
    protocol["sampling"]["size"] = 32
    study = study_lifecycle.study_create(protocol=protocol, slug="svc-pipeline", base_dir=str(DEMO_PROTOCOL.parent))
    ours = services.checkpoint_register(name="ours", path=make_tiny_checkpoint(tmp_path / "ours"))
    theirs = services.checkpoint_register(name="theirs", path=pipeline_dir)
    variants = list(study.variants.order_by("index"))
    services.variants_assign_checkpoints(
        assignments=[(v, theirs if v.index >= 2 else ours) for v in variants]
    )
    manage(service_env, "launch_batch", study.slug, "--steps", "2", "--part-size", "5", "--open")
    workers.start("w1")  # FUSION_GENERATION_CHUNK=2: the worker samples 2 images per call
    batch = wait_for(lambda: Batch.objects.filter(study=study).exclude(status__in=Batch.ACTIVE).first(),
                     timeout=240, what="the batch to end", workers=workers)
    assert batch.status == "complete", workers.logs_tail()
    study.refresh_from_db()
    assert study.status == "open"

    from generator.pipeline import load_pipeline_sampler

    alone = load_pipeline_sampler(pipeline_dir, sha256=theirs.sha256)
    theirs_images = Image.objects.filter(study=study, checkpoint=theirs).select_related("prompt")
    assert theirs_images.count() == 2 * 6
    sizes = {(media_root / i.file).stat().st_size for i in Image.objects.filter(study=study, source="model")}
    assert len(sizes) == 1  # one byte count for both sources
    for image in theirs_images:
        assert image.cfg_scale is not None  # a generated image records its guidance
        p = image.provenance
        assert p["worker"].split("@")[0] == "w1" and p["checkpoint_sha256"] == theirs.sha256
        assert p["generator"]["files"] == theirs.config["files"]
        assert p["generator"]["pipeline_class"] == "StableDiffusionPipeline"
        (expected,) = alone.generate([image.prompt.text], [image.seed], cfg_scale=image.cfg_scale, steps=2,
                                     batch_size=1, size=32)
        with PILImage.open(io.BytesIO((media_root / image.file).read_bytes())) as stored:
            diff = np.abs(np.asarray(stored.convert("RGB"), int) - np.asarray(expected, int)).max()
        assert diff <= 1, f"{image.prompt.text!r} seed {image.seed}: differs by {diff} from the image drawn alone"
