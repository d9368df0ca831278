"""Generation batches without a broker: planning, the worker's part run, failures, recovery.

Parts run in this process through ``part_runner.part_run`` (or the task's own ``apply``) with
an untrained tiny checkpoint and two sampling steps: real sampling, real PNG files.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.db import OperationalError
from django.utils import timezone
from PIL import Image as PILImage

from generator.judge import judge
from tests.narrow import present
from tests.services.helpers import (
    DEMO_PROTOCOL,
    NEUTRAL_VARIANTS,
    VARIANTS,
    make_tiny_checkpoint,
    make_tiny_checkpoints,
    small_protocol,
)
from webapp.generation import part_runner, parts, selectors, services, tasks
from webapp.generation.models import Batch, Part
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.models import Checkpoint, Image, Item, Prompt, Study

pytestmark = pytest.mark.django_db

PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-cross-early")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One per paper variant, each fitting its variant's name."""
    return make_tiny_checkpoints(tmp_path_factory.mktemp("ckpts"))


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "tiny-concat-intermediate", "tiny-concat-intermediate", 1
    )


@pytest.fixture(autouse=True)
def _worker_settings(settings):
    settings.FUSION_GENERATION_CHUNK = 4
    settings.FUSION_TORCH_THREADS = 1  # tests share two cores with other processes


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sent_by_sweep(monkeypatch):
    """Run the beat's stale-part sweep; return the part ids it sent messages for."""

    def sweep() -> list[int]:
        sent: list[int] = []
        monkeypatch.setattr(tasks.generate_part, "delay", sent.append)
        assert tasks.requeue_stale_parts() == sent
        return sent

    return sweep


def make_study(slug="gen", **protocol_kwargs) -> Study:
    return study_lifecycle.study_create(
        protocol=small_protocol(**protocol_kwargs), slug=slug, base_dir=str(DEMO_PROTOCOL.parent)
    )


def assign_all(study: Study, paths: dict[str, Path]) -> Study:
    """Register each variant's checkpoint and assign it."""
    for variant in study.variants.all():
        services.checkpoint_register(name=f"tiny {variant.name}", path=paths[variant.name], variant=variant)
    return study


def assign_one(study: Study, path: Path, name: str) -> Study:
    """One checkpoint for every variant (a study made with NEUTRAL_VARIANTS)."""
    checkpoint = services.checkpoint_register(name=name, path=path)
    services.variants_assign_checkpoints(assignments=[(v, checkpoint) for v in study.variants.all()])
    return study


@pytest.fixture
def study(tiny_checkpoints) -> Study:
    """24 images to make: 4 count prompts and 2 captions, for each of 4 variants."""
    return assign_all(make_study(), tiny_checkpoints)


@pytest.fixture
def small_study(tiny_checkpoints) -> Study:
    """8 images to make: 1 count prompt and 1 caption, for each of 4 variants."""
    return assign_all(make_study(slug="small", counts=(1,), objects=("circle",), captions=1), tiny_checkpoints)


def run_all(batch: Batch) -> list[str]:
    return [part_runner.part_run(part_id=p.pk, claim=f"c{p.pk}", worker="test") for p in batch.parts.order_by("number")]


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


# --------------------------------------------------------------------------- checkpoints


def test_register_records_sha256_and_config(tiny_checkpoint):
    from generator.checkpoint import checkpoint_sha256

    checkpoint = services.checkpoint_register(name="tiny", path=tiny_checkpoint)
    assert checkpoint.sha256 == checkpoint_sha256(tiny_checkpoint)
    assert (
        checkpoint.config["model"]["conditioning"] == "cross" and checkpoint.config["text_encoder"]["name"] == "minilm"
    )
    assert checkpoint.config["prediction_type"] == "epsilon" and checkpoint.config["step"] == 0
    assert services.checkpoint_register(name="tiny", path=tiny_checkpoint).pk == checkpoint.pk


def test_register_refuses_other_weights_under_a_taken_name(tiny_checkpoint, other_checkpoint):
    services.checkpoint_register(name="tiny", path=tiny_checkpoint)
    with pytest.raises(services.GenerationError, match="other weights"):
        services.checkpoint_register(name="tiny", path=other_checkpoint)


def test_register_refuses_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(services.GenerationError, match="No checkpoint weights"):
        services.checkpoint_register(name="x", path=tmp_path / "nothing")
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(services.GenerationError, match="not a readable"):
        services.checkpoint_register(name="x", path=tmp_path)


def test_register_refuses_a_checkpoint_whose_metadata_lost_a_field_and_stores_nothing(tmp_path, tiny_checkpoint):
    # A file of the checkpoint format whose "config" field was renamed: a GenerationError naming
    # the field (it was a KeyError's bare 'config'), and no Checkpoint row.
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from generator.checkpoint import weights_path

    src = weights_path(tiny_checkpoint)
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    meta["model_config"] = meta.pop("config")
    save_file(load_file(str(src)), str(tmp_path / "model.safetensors"), metadata=meta)
    with pytest.raises(services.GenerationError, match="metadata lacks config"):
        services.checkpoint_register(name="renamed", path=tmp_path)
    assert not Checkpoint.objects.filter(name="renamed").exists()


def test_a_checkpoint_that_contradicts_its_variant_is_refused_with_both_configs(tiny_checkpoints):
    study = make_study()
    variant = study.variants.get(name="cross-intermediate")
    concat_early = services.checkpoint_register(name="ce", path=tiny_checkpoints["concat-early"])
    with pytest.raises(services.GenerationError) as exc:
        services.variant_assign_checkpoint(variant=variant, checkpoint=concat_early)
    message = str(exc.value)
    assert (
        "conditioning='concat', fusion='early'" in message and "conditioning='cross', fusion='intermediate'" in message
    )
    variant.refresh_from_db()
    assert variant.checkpoint_id is None
    # Registering for the variant refuses too, and registers nothing.
    with pytest.raises(services.GenerationError, match="does not fit variant cross-intermediate"):
        services.checkpoint_register(name="ce again", path=tiny_checkpoints["concat-early"], variant=variant)
    assert not Checkpoint.objects.filter(name="ce again").exists()
    # Several at once: all or none.
    fits = services.checkpoint_register(name="ci", path=tiny_checkpoints["cross-intermediate"])
    early = study.variants.get(name="concat-early")
    with pytest.raises(services.GenerationError):
        services.variants_assign_checkpoints(assignments=[(early, concat_early), (variant, concat_early)])
    assert not study.variants.filter(checkpoint__isnull=False).exists()
    services.variants_assign_checkpoints(assignments=[(early, concat_early), (variant, fits)])
    assert dict(study.variants.filter(checkpoint__isnull=False).values_list("name", "checkpoint__name")) == {
        "concat-early": "ce",
        "cross-intermediate": "ci",
    }


def test_a_variant_name_that_promises_no_model_takes_any_checkpoint(tiny_checkpoint):
    study = make_study(variants=NEUTRAL_VARIANTS)
    assert services.variant_expected_model("model-a") is None
    assign_one(study, tiny_checkpoint, "tiny")
    assert study.variants.filter(checkpoint__name="tiny").count() == 4


# --------------------------------------------------------------------------- launching


def test_launch_plans_every_missing_image_in_parts_of_one_variant(study, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        batch = services.batch_launch(study=study, part_size=4)
    parts = list(batch.parts.all())
    # 2 objects x 2 counts count prompts + 2 captions, per variant: 6 images, parts of 4 and 2.
    assert batch.total_images == 24 and len(parts) == 8 and len(callbacks) == 8
    assert all(1 <= p.size <= 4 and p.size == len(p.work) for p in parts)
    assert (batch.cfg_scale, batch.steps, batch.sampler) == (1.0, 25, "dpm_solver")  # the protocol's
    needed = selectors.study_needed_work(study=study)
    for variant in study.variants.all():
        planned = [tuple(pair) for p in parts if p.variant_id == variant.pk for pair in p.work]
        assert sorted(planned) == sorted(needed[variant.pk]) and len(set(planned)) == len(planned)


def test_demo_protocol_needs_forty_images_per_variant():
    study = study_lifecycle.study_create(
        protocol=json.loads(DEMO_PROTOCOL.read_text()), slug="demo", base_dir=str(DEMO_PROTOCOL.parent)
    )
    plan = selectors.study_plan(study=study)
    assert [v.missing for v in plan.variants] == [40, 40, 40, 40] and plan.parts == 4


def test_launch_refuses_a_variant_without_checkpoint():
    study = make_study()
    with pytest.raises(services.GenerationError, match="without either: concat-early"):
        services.batch_launch(study=study)
    assert not Batch.objects.exists()


def test_launch_refuses_a_second_active_batch_and_oversized_parts(study):
    services.batch_launch(study=study)
    with pytest.raises(services.GenerationError, match="already"):
        services.batch_launch(study=study)
    Batch.objects.update(status=Batch.Status.CANCELLED)
    with pytest.raises(services.GenerationError, match="1 to 50"):
        services.batch_launch(study=study, part_size=51)


def test_only_one_active_batch_per_study_in_the_database(study):
    from django.db import IntegrityError, transaction

    batch = services.batch_launch(study=study)
    with pytest.raises(IntegrityError), transaction.atomic():
        Batch.objects.create(study=study, cfg_scale=1, steps=1, sampler="x", total_images=1)
    assert Batch.objects.filter(study=study).count() == 1 and batch.is_active


# --------------------------------------------------------------------------- running parts


def test_batch_makes_every_image_once_with_provenance_and_opens_the_study(study, settings, monkeypatch):
    import generator.sample

    loads = []
    real = generator.sample.load_sampler

    def load_spy(path, **kw):
        loads.append(path)
        return real(path, **kw)

    monkeypatch.setattr(generator.sample, "load_sampler", load_spy)
    monkeypatch.setattr(part_runner, "_SAMPLERS", type(part_runner._SAMPLERS)())
    batch = services.batch_launch(study=study, steps=2, part_size=4, open_when_complete=True)
    assert run_all(batch) == ["done"] * 8
    # Each checkpoint was loaded once, for both parts that use it.
    assert sorted(Path(p).name for p in loads) == sorted(VARIANTS)
    batch.refresh_from_db()
    study.refresh_from_db()
    assert batch.status == "complete" and study.status == "open"
    images = Image.objects.filter(study=study, source="model")
    assert images.count() == 24
    assert selectors.study_image_counts(study=study) == dict.fromkeys(
        ("concat-early", "concat-intermediate", "cross-early", "cross-intermediate"), 6
    )
    for image in images.select_related("prompt", "variant__checkpoint"):
        checkpoint = present(present(image.variant).checkpoint)
        path = Path(settings.MEDIA_ROOT) / image.file
        assert path.name == f"{image.public_id}.png" and present(image.variant).name not in image.file
        data = path.read_bytes()
        assert not set(png_chunks(data)) & set(PNG_TEXT_CHUNKS)
        with PILImage.open(io.BytesIO(data)) as pil:
            assert pil.size == (32, 32) and not pil.info
            if image.prompt.kind == "count":  # the shape-aware judge read the stored pixels
                assert image.auto_count == judge(pil.convert("RGB")).count
        p = image.provenance
        assert p["checkpoint_sha256"] == checkpoint.sha256 and p["config"] == checkpoint.config
        assert (p["prompt"], p["seed"], p["cfg_scale"], p["steps"]) == (image.prompt.text, image.seed, 1.0, 2)
        assert p["sampler"].startswith("DPM-Solver++") and p["code_version"]
        assert p["variant"] == present(image.variant).name
        assert (image.cfg_scale, image.steps, image.sampler, image.checkpoint_id) == (
            1.0,
            2,
            "dpm_solver",
            checkpoint.pk,
        )
        assert (image.auto_count is not None) == (image.prompt.kind == "count")
    assert not Item.objects.filter(study=study, task="count", image__isnull=True).exists()
    # Every image, whichever model made it, has the same byte count (no size channel).
    assert len({(Path(settings.MEDIA_ROOT) / image.file).stat().st_size for image in images}) == 1
    progress = selectors.batch_progress(batch=batch)
    assert (progress["done"], progress["total"], progress["percent"], progress["eta_seconds"]) == (24, 24, 100, None)
    assert present(progress["rate"]) > 0 and [v["done"] for v in progress["variants"]] == [6, 6, 6, 6]


T0 = timezone.now()


def part_times(variant: int, size: int, done: int, start: float | None, end: float | None,
               status: str = "done") -> selectors.PartTimes:
    """A part of ``size`` images with ``done`` made, busy from ``start`` to ``end`` (seconds after T0)."""
    def at(seconds: float | None):
        return None if seconds is None else T0 + timedelta(seconds=seconds)

    return selectors.PartTimes(variant_id=variant, size=size, images_done=done, status=status,
                               started_at=at(start), finished_at=at(end))


def test_time_left_prices_each_variant_at_its_own_pace():
    # One worker: variant 1 made 4 images in 40 s (10 s each), then variant 2 4 in 120 s
    # (30 s each); 4 of variant 2 are left: 120 s. A batch-wide average (8 images in 160 s)
    # would say 80 s.
    parts = [part_times(1, 4, 4, 0, 40), part_times(2, 4, 4, 40, 160), part_times(2, 4, 0, None, None, "queued")]
    assert selectors.seconds_left(parts, now=T0 + timedelta(seconds=160)) == pytest.approx(120)
    # Two workers at once (160 worker-seconds in 120 s of wall time): the same work, 4/3 as fast.
    parts = [part_times(1, 4, 4, 0, 40), part_times(2, 4, 4, 0, 120), part_times(2, 4, 0, None, None, "queued")]
    assert selectors.seconds_left(parts, now=T0 + timedelta(seconds=120)) == pytest.approx(90)
    # A variant with nothing made yet is priced at the batch's pace: (40 + 120) / 8 s an image.
    parts = [part_times(1, 4, 4, 0, 40), part_times(2, 4, 4, 40, 160), part_times(3, 2, 0, None, None, "queued")]
    assert selectors.seconds_left(parts, now=T0 + timedelta(seconds=160)) == pytest.approx(40)
    # A running part counts its time so far; before any image exists there is no estimate.
    parts = [part_times(1, 4, 2, 0, None, "running"), part_times(1, 4, 0, None, None, "queued")]
    assert selectors.seconds_left(parts, now=T0 + timedelta(seconds=20)) == pytest.approx(60)
    assert selectors.seconds_left([part_times(1, 4, 0, 0, None, "running")], now=T0 + timedelta(seconds=20)) is None


def test_progress_time_left_leaves_out_the_wait_before_a_worker_took_a_part(small_study):
    batch = services.batch_launch(study=small_study, part_size=1)  # 8 parts of one image, 2 per variant
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk).update(status="running", started_at=now - timedelta(hours=1))
    first = batch.parts.order_by("number").first()
    assert first is not None
    Part.objects.filter(pk=first.pk).update(status="done", images_done=1, started_at=now - timedelta(seconds=30),
                                            finished_at=now)
    progress = selectors.batch_progress(batch=batch, now=now)
    # 7 images left at 30 s each by one worker; the hour in the queue does not slow the estimate.
    assert progress["done"] == 1 and progress["eta_seconds"] == pytest.approx(210)


# The construction image ids had before they were random, and the key the code shipped.
OLD_DEVELOPMENT_KEY = "fusion-eval-development-key-not-for-production"


def old_image_id(key: str, variant_id: int, prompt_id: int, seed: int) -> str:
    message = f"fusion-eval.image:{variant_id}:{prompt_id}:{seed}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:32]


def test_image_ids_cannot_be_recomputed_from_the_development_key_or_even_the_secret_key(study, settings):
    """An attacker who knows the code, the shipped key and this site's own key still cannot
    tell which variant made an image from its id: the ids are random, kept in the database."""
    batch = services.batch_launch(study=study, steps=1, part_size=6, open_when_complete=True)
    assert run_all(batch) == ["done"] * 4
    images = list(Image.objects.filter(study=study))
    assert len(images) == 24 + Item.objects.filter(study=study, is_gold=True, repeat_of__isnull=True).count()
    variants = list(study.variants.values_list("pk", flat=True))
    served = {img.public_id for img in images}
    assert len(served) == len(images) and all(len(pid) == 32 for pid in served)
    for key in (OLD_DEVELOPMENT_KEY, settings.SECRET_KEY):
        guesses = {old_image_id(key, v, img.prompt_id, img.seed) for img in images for v in variants}
        assert not served & guesses
    # The files are named by the id and nothing else.
    assert {Path(img.file).stem for img in images} == served


def test_same_seed_gives_the_same_image_whatever_the_chunking(study, settings):
    batch = services.batch_launch(study=study, steps=2, part_size=6)
    part = present(batch.parts.first())
    settings.FUSION_GENERATION_CHUNK = 6
    part_runner.part_run(part_id=part.pk, claim="a", worker="test")
    first = {
        (i.prompt_id, i.seed): (Path(settings.MEDIA_ROOT) / i.file).read_bytes()
        for i in Image.objects.filter(variant=part.variant)
    }
    Image.objects.filter(variant=part.variant).delete()
    Part.objects.filter(pk=part.pk).update(status="queued", images_done=0, claim="")
    settings.FUSION_GENERATION_CHUNK = 1
    part_runner.part_run(part_id=part.pk, claim="b", worker="test")
    second = {
        (i.prompt_id, i.seed): (Path(settings.MEDIA_ROOT) / i.file).read_bytes()
        for i in Image.objects.filter(variant=part.variant)
    }
    assert first.keys() == second.keys()
    for key in first:
        a = np.asarray(PILImage.open(io.BytesIO(first[key])).convert("RGB"), dtype=np.int16)
        b = np.asarray(PILImage.open(io.BytesIO(second[key])).convert("RGB"), dtype=np.int16)
        # Equal up to float rounding across batch sizes (generator.sample's promise).
        assert np.abs(a - b).max() <= 2


def test_a_done_part_run_again_writes_nothing(study, settings):
    batch = services.batch_launch(study=study, steps=2, part_size=6)
    part = present(batch.parts.first())
    assert part_runner.part_run(part_id=part.pk, claim="a", worker="test") == "done"
    before = sorted(Image.objects.values_list("public_id", "created_at"))
    assert part_runner.part_run(part_id=part.pk, claim="b", worker="test") == "skipped"
    assert sorted(Image.objects.values_list("public_id", "created_at")) == before


def test_a_part_whose_worker_died_is_requeued_and_finishes_without_duplicates(
    study, settings, sent_by_sweep, monkeypatch
):
    batch = services.batch_launch(study=study, steps=2, part_size=6)
    part = present(batch.parts.first())
    # A run that stored its first chunk, then its worker died (no finish, no heartbeat).
    job = parts.part_claim(part_id=part.pk, claim="dead", worker="gone", stale_after=timedelta(minutes=10))
    assert job is not None
    sampler, _ = part_runner.sampler_for(path=job.checkpoint_path, sha256=job.checkpoint_sha256,
                                         name=job.checkpoint_name)
    images = part_runner._generate(sampler=sampler, job=job, chunk=job.todo[:4])
    assert parts.part_store_images(job=job, images=images, provenance={"run": "dead"})
    # The crash came after the fifth file was written but before its row was committed.
    orphan = job.todo[4].public_id
    from webapp.studies.imagefiles import write_png_atomic

    write_png_atomic(image=images[0].image, public_id=orphan, media_root=settings.MEDIA_ROOT)
    # While its heartbeat is fresh nobody else may take it; once stale, the sweep re-queues it.
    assert part_runner.part_run(part_id=part.pk, claim="early", worker="test") == "skipped"
    assert parts.parts_requeue_stale(stale_after=timedelta(minutes=5)) == []
    Part.objects.filter(pk=part.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=11))
    settings.FUSION_PART_STALE_SECONDS = 600
    assert sent_by_sweep() == [part.pk]
    part.refresh_from_db()
    assert part.status == "queued" and part.requeues == 1 and "stopped responding" in part.error
    # The re-run asks the sampler for the two images the dead run did not store, no more.
    sampled = []
    real_generate = sampler.generate

    def generate_spy(prompts, seeds, **kw):
        sampled.extend(seeds)
        return real_generate(prompts, seeds, **kw)

    monkeypatch.setattr(sampler, "generate", generate_spy)
    assert part_runner.part_run(part_id=part.pk, claim="new", worker="test") == "done"
    assert sorted(sampled) == sorted(w.seed for w in job.todo[4:])
    part.refresh_from_db()
    assert (part.status, part.images_done, part.attempts) == ("done", 6, 2)
    rows = Image.objects.filter(variant=part.variant)
    assert rows.count() == 6 and rows.filter(provenance__run="dead").count() == 4
    files = sorted(p.name for p in (Path(settings.MEDIA_ROOT) / "images").rglob("*.png"))
    assert files == sorted(f"{pid}.png" for pid in Image.objects.values_list("public_id", flat=True))
    assert Image.objects.filter(public_id=orphan).exists()  # the re-run wrote the orphan's file again
    # The dead run, had it come back, can no longer write.
    assert not parts.part_store_images(job=job, images=images, provenance={})


def test_a_queued_part_whose_message_was_lost_is_sent_again_with_a_doubling_wait(small_study, settings, sent_by_sweep):
    batch = services.batch_launch(study=small_study, steps=1, part_size=1)
    first, second = batch.parts.order_by("number")[:2]
    stale = timedelta(minutes=10)
    old = timezone.now() - timedelta(minutes=11)
    Part.objects.filter(batch=batch).update(queued_at=old)
    # While a part of the batch is running with a fresh heartbeat, waiting is normal.
    settings.FUSION_PART_STALE_SECONDS = stale.total_seconds()
    parts.part_claim(part_id=first.pk, claim="alive", worker="w", stale_after=stale)
    assert sent_by_sweep() == []
    # No sign of life for ten minutes: every queued part is sent again, once.
    Part.objects.filter(pk=first.pk).update(heartbeat_at=old)
    assert sorted(sent_by_sweep()) == sorted(batch.parts.values_list("pk", flat=True))
    second.refresh_from_db()
    assert second.requeues == 1 and "No worker took this part" in second.error
    # The next copy waits twice as long.
    Part.objects.filter(batch=batch).update(queued_at=timezone.now() - timedelta(minutes=15))
    assert sent_by_sweep() == []
    Part.objects.filter(batch=batch).update(queued_at=timezone.now() - timedelta(minutes=21))
    assert len(sent_by_sweep()) == 8


# --------------------------------------------------------------------------- failures


def test_a_missing_checkpoint_file_fails_the_part_and_retry_finishes_it(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(part_runner, "_SAMPLERS", type(part_runner._SAMPLERS)())
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "movable")
    study = assign_one(
        make_study(counts=(1,), objects=("circle",), captions=1, variants=NEUTRAL_VARIANTS), folder, "movable"
    )
    batch = services.batch_launch(study=study, steps=1)
    hidden = shutil.move(folder, tmp_path / "hidden")
    results = [tasks.generate_part.apply(args=[p.pk]).get() for p in batch.parts.all()]
    assert results == ["failed"] * 4
    batch.refresh_from_db()
    assert batch.status == "failed"
    progress = selectors.batch_progress(batch=batch)
    assert progress["can_retry"] and len(progress["errors"]) == 4
    assert "no weights at" in progress["errors"][0]["message"]
    shutil.move(hidden, folder)
    assert services.batch_retry_failed(batch=batch) == 4
    batch.refresh_from_db()
    assert batch.status == "running"
    assert [tasks.generate_part.apply(args=[p.pk]).get() for p in batch.parts.all()] == ["done"] * 4
    batch.refresh_from_db()
    assert batch.status == "complete" and Image.objects.filter(study=study, source="model").count() == 8


def test_weights_changed_since_registration_fail_the_part(tiny_checkpoint, other_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(part_runner, "_SAMPLERS", type(part_runner._SAMPLERS)())
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "changing")
    study = assign_one(
        make_study(counts=(1,), objects=("circle",), captions=1, variants=NEUTRAL_VARIANTS), folder, "changing"
    )
    batch = services.batch_launch(study=study, steps=1)
    shutil.copy(other_checkpoint / "model.safetensors", folder / "model.safetensors")
    part = present(batch.parts.first())
    assert tasks.generate_part.apply(args=[part.pk]).get() == "failed"
    part.refresh_from_db()
    assert part.status == "failed" and "changed since they were registered" in part.error
    assert not Image.objects.filter(study=study, source="model").exists()


def test_a_transient_error_is_retried_with_backoff(study, monkeypatch):
    batch = services.batch_launch(study=study, steps=1, part_size=6)
    part = present(batch.parts.first())
    real = part_runner.part_run
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["claim"])
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return real(**kwargs)

    monkeypatch.setattr(part_runner, "part_run", flaky)
    result = tasks.generate_part.apply(args=[part.pk])
    part.refresh_from_db()
    assert part.status == "done" and len(calls) == 2
    assert calls[0] == calls[1]  # the retry is the same run: it keeps the part's claim
    assert result.state in ("SUCCESS", "RETRY")
    assert 1.5 <= tasks.backoff_seconds(0) <= 2.5 and tasks.backoff_seconds(20) <= tasks.BACKOFF_MAX_SECONDS * 1.25


def test_gives_up_after_too_many_transient_errors(study, monkeypatch):
    batch = services.batch_launch(study=study, steps=1, part_size=6)
    part = present(batch.parts.first())

    def always(**kwargs):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(part_runner, "part_run", always)
    tasks.generate_part.apply(args=[part.pk])
    part.refresh_from_db()
    assert part.status == "failed" and "Gave up after 5 retries" in part.error


def test_cancel_stops_running_parts_and_drops_queued_ones(small_study):
    study = small_study
    batch = services.batch_launch(study=study, steps=1, part_size=1)
    first, second = batch.parts.order_by("number")[:2]
    job = parts.part_claim(part_id=first.pk, claim="x", worker="w", stale_after=timedelta(minutes=1))
    assert job is not None
    services.batch_cancel(batch=batch)
    assert set(batch.parts.values_list("status", flat=True)) == {"cancelled"}
    assert not parts.part_heartbeat(job=job)
    assert part_runner.part_run(part_id=second.pk, claim="y", worker="w") == "skipped"
    with pytest.raises(services.GenerationError):
        services.batch_cancel(batch=batch)
    # A new batch makes only what is missing.
    assert services.batch_launch(study=study, steps=1).total_images == 8


def test_open_when_complete_reports_why_the_study_stayed_closed(study):
    batch = services.batch_launch(study=study, steps=1, part_size=6, open_when_complete=True)
    # A gold image went missing, and its prompt was edited into something the renderer cannot draw.
    Item.objects.filter(study=study, is_gold=True).update(image=None)
    Prompt.objects.filter(items__is_gold=True).update(object="bus")
    run_all(batch)
    batch.refresh_from_db()
    study.refresh_from_db()
    assert batch.status == "complete" and study.status == "draft" and batch.note.startswith("The study was not opened")


def test_the_worker_side_imports_nothing_that_queues_work():
    """services -> tasks -> part_runner -> parts, and no way back: none of the worker's modules
    imports services (at the top or inside a function)."""
    import ast

    folder = Path(__file__).resolve().parents[2] / "webapp" / "generation"
    for name in ("tasks.py", "part_runner.py", "parts.py"):
        tree = ast.parse((folder / name).read_text())
        imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {
            f"{node.module}.{a.name}" if node.module else a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for a in node.names
        }
        assert not {m for m in imported if m.split(".")[-1] == "services" and "studies" not in m}, name


def test_image_ids_come_from_the_random_source_and_differ_between_batches_of_the_same_images(
        small_study, monkeypatch):
    """An id is drawn from `secrets` (not from the clock, nor computed from the variant, the
    prompt and the seed): the same images generated again get new ids."""
    import secrets

    draw = secrets.token_hex
    drawn: list[str] = []

    def token_hex(nbytes: int) -> str:
        drawn.append(draw(nbytes))
        return drawn[-1]

    monkeypatch.setattr("webapp.studies.models.secrets.token_hex", token_hex)
    batch = services.batch_launch(study=small_study, steps=1, part_size=6)
    assert run_all(batch) == ["done"] * 4
    first = {(i.variant_id, i.prompt_id, i.seed): i.public_id
             for i in Image.objects.filter(study=small_study, source=Image.Source.MODEL)}
    assert len(first) == 8 and set(first.values()) <= set(drawn)
    Image.objects.filter(study=small_study, source=Image.Source.MODEL).delete()
    batch = services.batch_launch(study=small_study, steps=1, part_size=6)
    assert run_all(batch) == ["done"] * 4
    second = {(i.variant_id, i.prompt_id, i.seed): i.public_id
              for i in Image.objects.filter(study=small_study, source=Image.Source.MODEL)}
    assert second.keys() == first.keys() and set(second.values()) <= set(drawn)
    assert not set(first.values()) & set(second.values())


def test_a_part_whose_images_differ_in_size_from_the_studys_others_fails_and_stores_nothing(study, settings):
    """An image of another variant (imported, say) at 40x40: the part's images, drawn at the
    checkpoint's own size, would name their model; the part fails with the sizes, storing none."""
    from webapp.studies.imagefiles import write_png_atomic

    batch = services.batch_launch(study=study, steps=1, part_size=6)
    part = present(batch.parts.order_by("id").first())
    other = study.variants.exclude(pk=part.variant_id).order_by("index").first()
    prompt_id, seed = selectors.study_needed_work(study=study)[present(other).pk][0]
    image = Image(study=study, prompt_id=prompt_id, variant=other, seed=seed, source="model", width=40, height=40)
    image.file = write_png_atomic(image=PILImage.new("RGB", (40, 40)), public_id=image.public_id,
                                  media_root=settings.MEDIA_ROOT)
    image.save()
    assert tasks.generate_part.apply(args=(part.pk, "c")).get() == "failed"
    part.refresh_from_db()
    assert part.status == "failed" and f"{present(other).name} 40x40" in part.error
    assert "every image an evaluator sees has one size" in part.error
    assert not Image.objects.filter(variant_id=part.variant_id).exists()
