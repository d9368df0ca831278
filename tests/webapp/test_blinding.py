"""Nothing an evaluator can reach names the model behind an image.

The test walks the whole study as an evaluator (every page, every JSON answer, every
image, every header) and searches all of it for variant names, checkpoint names,
hashes, paths and config words; and it reads every PNG's chunk list.
"""

import struct

import pytest
from django.test import Client

from webapp.studies.models import Checkpoint, Image, Variant

from .conftest import current_task, join

pytestmark = pytest.mark.django_db

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALLOWED_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def png_chunks(data: bytes) -> list[bytes]:
    assert data.startswith(PNG_SIGNATURE), "not a PNG"
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


@pytest.fixture
def identifiers(study):
    """Everything that could identify a model, registered as it would be in production."""
    words = set()
    for v in Variant.objects.filter(study=study):
        ckpt = Checkpoint.objects.create(
            name=f"demo-{v.name}-step4000",
            path=f"/srv/checkpoints/{v.name}/model.safetensors",
            sha256=f"{v.index:02d}" * 32,
            config={"conditioning": v.name.split("-")[0], "fusion": v.name.split("-")[1]},
        )
        v.checkpoint = ckpt
        v.save()
        Image.objects.filter(variant=v).update(checkpoint=ckpt)
        words |= {v.name, ckpt.name, ckpt.path, ckpt.sha256, ckpt.sha256[:12], f"variant {v.index}"}
    words |= {
        "concat",
        "cross",
        "intermediate",
        "early",
        "checkpoint",
        "safetensors",
        "uvit",
        "u-vit",
        "fusion",
        "variant",
    }
    return {w.lower() for w in words}


def _check(where: str, blob: bytes, identifiers: set[str]) -> None:
    text = blob.decode("latin-1").lower()
    found = sorted(w for w in identifiers if w in text)
    assert not found, f"{where} reveals {found}"


def _check_response(where, response, identifiers):
    _check(
        f"{where} body",
        response.content if not response.streaming else b"".join(response.streaming_content),
        identifiers,
    )
    # Standard headers such as Cross-Origin-Opener-Policy contain the word "cross".
    headers = "\n".join(f"{k}: {v}" for k, v in response.items() if not k.lower().startswith("cross-origin")).encode()
    _check(f"{where} headers", headers, identifiers)


def test_an_evaluator_can_reach_nothing_that_names_a_model(study, identifiers):
    client = Client()
    _check_response("front page", client.get("/"), identifiers)
    r = client.get(f"/join/{study.invite_token}/", {"PROLIFIC_PID": "blind-1"})
    _check_response("join", r, identifiers)
    _check("redirect", r["Location"].encode(), identifiers)
    for path in (f"/e/{study.slug}/consent/",):
        _check_response(path, client.get(path), identifiers)
    r = client.post(f"/e/{study.slug}/consent/", {"agree": "yes"})
    _check_response("consent POST", r, identifiers)
    _check_response("instructions", client.get(f"/e/{study.slug}/instructions/"), identifiers)
    _check_response("start", client.post(f"/e/{study.slug}/instructions/"), identifiers)
    seen_images = set()
    steps = 0
    while True:
        state_response = client.get(f"/e/{study.slug}/state/")
        _check_response("state JSON", state_response, identifiers)
        state = state_response.json()
        if state["done"]:
            break
        page = client.get(f"/e/{study.slug}/task/")
        _check_response(f"task page {steps}", page, identifiers)
        task = state["task"]
        for url in task["images"]:
            _check("image URL", url.encode(), identifiers)
            img = client.get(url)
            assert img.status_code == 200 and img["Content-Type"] == "image/png"
            _check_response(f"image {url}", img, identifiers)
            chunks = png_chunks(img.content)
            assert set(chunks) <= ALLOWED_CHUNKS, f"{url} carries chunks {chunks}"
            seen_images.add(url)
        data = {"kind": task["kind"], "token": task["token"]}
        data.update({"answer": "2"} if task["kind"] == "count" else {f"rank_{i}": str(i + 1) for i in range(4)})
        r = client.post(f"/e/{study.slug}/task/", data, HTTP_ACCEPT="application/json")
        _check_response("answer JSON", r, identifiers)
        r = client.post(f"/e/{study.slug}/task/", data)  # a replay: the error page too
        _check_response("error page", r, identifiers)
        steps += 1
    _check_response("done", client.get(f"/e/{study.slug}/done/"), identifiers)
    # Every image the evaluator was shown has been checked, the ranked ones included.
    assert len(seen_images) >= 8 + 4


def test_images_are_private_to_their_evaluators(study):
    alice = join(Client(), study)
    url = current_task(alice, study)["task"]["images"][0]
    assert alice.get(url).status_code == 200
    assert Client().get(url).status_code == 404  # anonymous
    other_study_image = Image.objects.exclude(study=study).first()
    assert other_study_image is None or alice.get(f"/i/{other_study_image.public_id}").status_code == 404


def test_image_ids_and_files_are_opaque(study):
    for img in Image.objects.filter(study=study):
        assert len(img.public_id) == 32 and img.public_id in img.file
        assert img.variant is None or img.variant.name not in img.file


def test_images_of_one_size_have_one_byte_count():
    """A compressed PNG is smaller for a smoother picture: a model whose images compress
    better would stand out by Content-Length. Stored uncompressed, they cannot."""
    import random

    from PIL import Image as PILImage

    from webapp.studies.imagefiles import png_bytes

    rng = random.Random(0)
    flat = PILImage.new("RGB", (32, 32), (200, 200, 200))
    noisy = PILImage.frombytes("RGB", (32, 32), bytes(rng.randrange(256) for _ in range(32 * 32 * 3)))
    gradient = PILImage.frombytes("RGB", (32, 32), bytes((x * 8) % 256 for x in range(32 * 32 * 3)))
    sizes = {len(png_bytes(im)) for im in (flat, noisy, gradient)}
    assert len(sizes) == 1
    assert set(png_chunks(png_bytes(noisy))) <= ALLOWED_CHUNKS
