"""A diffusers pipeline folder as a variant's model, beside our own checkpoints.

Parts run in this process (``part_runner.part_run``) with the tiny pipeline of
tests/tiny_pipeline.py and a tiny U-ViT checkpoint: real sampling, real PNG files.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.narrow import present
from tests.services.helpers import DEMO_PROTOCOL, NEUTRAL_VARIANTS, make_tiny_checkpoint, small_protocol
from tests.tiny_pipeline import save_tiny_pipeline
from tests.webapp import test_blinding
from webapp.generation import part_runner, services
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import Checkpoint, Image, Study

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("pipe") / "sd-finetune-x")


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-cross-early")


@pytest.fixture(autouse=True)
def _worker_settings(settings, monkeypatch):
    settings.FUSION_GENERATION_CHUNK = 3
    settings.FUSION_TORCH_THREADS = 1
    monkeypatch.setattr(part_runner, "_SAMPLERS", type(part_runner._SAMPLERS)())


def mixed_study(pipeline_dir: Path, checkpoint_dir: Path, *, slug: str = "mixed", evaluators: int = 4,
                **sampling) -> Study:
    """model-a and model-b from our checkpoint, model-c and model-d from the pipeline, 32 px images."""
    protocol = small_protocol(variants=NEUTRAL_VARIANTS)
    protocol["evaluators"]["n"] = evaluators
    for section in ("recruitment", "practice"):  # the blinding walk: a made-up id, straight to the tasks
        protocol.pop(section, None)
    protocol["sampling"].update({"size": 32, **sampling})
    study = study_lifecycle.study_create(protocol=protocol, slug=slug, base_dir=str(DEMO_PROTOCOL.parent))
    ours = services.checkpoint_register(name="in-house-uvit", path=checkpoint_dir)
    theirs = services.checkpoint_register(name="sd-finetune", path=pipeline_dir)
    variants = list(study.variants.order_by("index"))
    services.variants_assign_checkpoints(
        assignments=[(variants[0], ours), (variants[1], ours), (variants[2], theirs), (variants[3], theirs)]
    )
    return study


def run_all(batch) -> list[str]:
    return [part_runner.part_run(part_id=p.pk, claim=f"c{p.pk}", worker="test") for p in batch.parts.order_by("number")]


def test_a_pipeline_folder_registers_with_its_file_hashes_and_class(pipeline_dir):
    checkpoint = services.checkpoint_register(name="sd-finetune", path=pipeline_dir)
    config = checkpoint.config
    assert config["source"] == "diffusers" and config["pipeline_class"] == "StableDiffusionPipeline"
    assert config["scheduler"] == "DPMSolverMultistepScheduler"
    assert "unet/diffusion_pytorch_model.safetensors" in config["files"] and len(checkpoint.sha256) == 64
    # The same folder again is the same checkpoint.
    assert services.checkpoint_register(name="sd-finetune", path=pipeline_dir).pk == checkpoint.pk


def test_a_folder_that_is_not_a_loadable_pipeline_is_refused_and_nothing_is_stored(pipeline_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(pipeline_dir, broken)
    (broken / "vae" / "config.json").write_text("{not json")
    with pytest.raises(services.GenerationError, match="not a loadable diffusers pipeline") as caught:
        services.checkpoint_register(name="broken", path=broken)
    assert str(tmp_path) not in str(caught.value)
    assert not Checkpoint.objects.exists()


def test_a_mixed_study_generates_every_image_with_complete_provenance(pipeline_dir, checkpoint_dir, settings):
    study = mixed_study(pipeline_dir, checkpoint_dir)
    batch = services.batch_launch(study=study, steps=2, part_size=4, open_when_complete=True)
    assert set(run_all(batch)) == {"done"}
    batch.refresh_from_db()
    study.refresh_from_db()
    assert batch.status == "complete" and study.status == "open", [p.error for p in batch.parts.all()]
    images = list(Image.objects.filter(study=study, source="model").select_related("variant__checkpoint", "prompt"))
    assert len(images) == 4 * 6
    sizes = set()
    for image in images:
        checkpoint = present(present(image.variant).checkpoint)
        p = image.provenance
        assert p["checkpoint_sha256"] == checkpoint.sha256
        assert (p["prompt"], p["seed"]) == (image.prompt.text, image.seed)
        if checkpoint.name == "sd-finetune":
            g = p["generator"]
            assert g["pipeline_class"] == "StableDiffusionPipeline" and g["scheduler"] == "DPMSolverMultistepScheduler"
            assert g["files"] == checkpoint.config["files"] and g["diffusers_version"]
            assert p["sampler"] == "DPMSolverMultistepScheduler"
            assert (p["cfg_scale"], p["steps"], p["size"]) == (1.0, 2, 32)
        data = (Path(settings.MEDIA_ROOT) / image.file).read_bytes()
        with PILImage.open(io.BytesIO(data)) as pil:
            assert pil.size == (32, 32) and not pil.info
        sizes.add(len(data))
    # Both sources' images have one byte count: the size tells nothing of the model.
    assert len(sizes) == 1


def test_the_protocol_scheduler_replaces_the_folders(pipeline_dir, checkpoint_dir):
    study = mixed_study(pipeline_dir, checkpoint_dir, scheduler="DDIMScheduler")
    batch = services.batch_launch(study=study, steps=2)
    assert set(run_all(batch)) == {"done"}
    schedulers = {i.provenance["sampler"] for i in Image.objects.filter(study=study, variant__name="model-c")}
    assert schedulers == {"DDIMScheduler"}


def test_an_evaluator_of_a_mixed_study_meets_nothing_that_names_a_model(pipeline_dir, checkpoint_dir):
    study = mixed_study(pipeline_dir, checkpoint_dir, evaluators=1)  # one slot: every image
    batch = services.batch_launch(study=study, steps=2, open_when_complete=True)
    assert set(run_all(batch)) == {"done"}
    study.refresh_from_db()
    assert study.status == "open"
    words = {"diffusers", "stablediffusion", "sd-finetune", "dpmsolver", "pipeline", "unet", "safetensors",
             "model-a", "model-b", "model-c", "model-d"}
    for checkpoint in Checkpoint.objects.all():
        words |= {checkpoint.sha256, checkpoint.sha256[:12], checkpoint.path.lower(), checkpoint.name}
    test_blinding.test_an_evaluator_can_reach_nothing_that_names_a_model(study, {w.lower() for w in words})


def test_a_study_takes_each_variant_from_any_of_the_three_sources(pipeline_dir, checkpoint_dir, tmp_path, settings):
    """model-a: our checkpoint; model-b: the diffusers pipeline; model-c and model-d: an image set."""
    from tests.webapp.test_imagesets import make_rows, write_folder
    from webapp.generation.imagesets import imageset_import

    protocol = small_protocol(variants=NEUTRAL_VARIANTS)
    protocol["sampling"]["size"] = 32
    study = study_lifecycle.study_create(protocol=protocol, slug="three", base_dir=str(DEMO_PROTOCOL.parent))
    imageset_import(study=study, path=write_folder(tmp_path / "set", make_rows(study)))
    variants = list(study.variants.order_by("index"))
    services.checkpoint_register(name="ours", path=checkpoint_dir, variant=variants[0])
    services.checkpoint_register(name="sd-finetune", path=pipeline_dir, variant=variants[1])
    batch = services.batch_launch(study=study, steps=2, open_when_complete=True)
    assert set(batch.parts.values_list("variant__name", flat=True)) == {"model-a", "model-b"}
    assert set(run_all(batch)) == {"done"}
    study.refresh_from_db()
    assert study.status == "open"
    sources = {
        name: {(i.provenance.get("source") or "checkpoint") if i.checkpoint is None or i.checkpoint.config.get(
            "source") != "diffusers" else "diffusers" for i in Image.objects.filter(variant__name=name)}
        for name in NEUTRAL_VARIANTS
    }
    assert sources == {"model-a": {"checkpoint"}, "model-b": {"diffusers"}, "model-c": {"image-set"},
                       "model-d": {"image-set"}}
    sizes = {(Path(settings.MEDIA_ROOT) / i.file).stat().st_size for i in Image.objects.filter(source="model")}
    assert len(sizes) == 1


def test_the_generation_page_registers_a_pipeline_folder_or_says_why_not(pipeline_dir, tmp_path):
    from django.test import Client

    from tests.factories import UserFactory

    admin = Client()
    admin.force_login(UserFactory(username="boss", is_staff=True))
    (tmp_path / "empty").mkdir()
    r = admin.post("/generation/checkpoints/register/", {"name": "nothing", "path": str(tmp_path / "empty")})
    assert r.status_code == 400 and not Checkpoint.objects.exists()
    r = admin.post("/generation/checkpoints/register/", {"name": "sd-finetune", "path": str(pipeline_dir)})
    assert r.status_code == 302
    assert Checkpoint.objects.get(name="sd-finetune").config["pipeline_class"] == "StableDiffusionPipeline"
