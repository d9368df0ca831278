"""Image sets as a model source: imported whole or refused whole, every problem listed.

A draft study of four variants (32 px display size); the sets cover model-c and model-d.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage
from PIL import PngImagePlugin

from tests.narrow import present
from tests.services.helpers import DEMO_PROTOCOL, NEUTRAL_VARIANTS, small_protocol
from webapp.generation import imagesets, selectors, services
from webapp.generation.imagesets import ImageSetError, imageset_import
from webapp.studies import lifecycle as study_lifecycle
from webapp.studies.imagefiles import png_bytes
from webapp.studies.models import Image, Item, Prompt, Study

pytestmark = pytest.mark.django_db

ALLOWED_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
IMPORTED = ("model-c", "model-d")


@pytest.fixture
def study() -> Study:
    protocol = small_protocol(variants=NEUTRAL_VARIANTS)
    protocol["sampling"]["size"] = 32
    return study_lifecycle.study_create(protocol=protocol, slug="outside", base_dir=str(DEMO_PROTOCOL.parent))


def cells(study: Study, variant: str) -> list[tuple[str, int]]:
    """(prompt text, seed) of every image the variant needs."""
    v = study.variants.get(name=variant)
    texts = dict(Prompt.objects.filter(study=study).values_list("pk", "text"))
    return [(texts[pid], seed) for pid, seed in selectors.study_needed_work(study=study)[v.pk]]


def picture(seed: int, size=(32, 32), fmt="PNG") -> bytes:
    """A noisy picture carrying metadata that must not survive (a text chunk, a telling name)."""
    rng = np.random.default_rng(seed)
    image = PILImage.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", "model: sd-base, steps 50")
        image.save(buf, format="PNG", pnginfo=info)
    else:
        image.save(buf, format=fmt)
    return buf.getvalue()


def make_rows(study: Study, variants=IMPORTED) -> list[dict]:
    rows = []
    for v in variants:
        for k, (text, seed) in enumerate(cells(study, v)):
            rows.append({"variant": v, "prompt": text, "seed": str(seed), "file": f"{v}/sd-base-{k:03d}.png"})
    return rows


def write_folder(folder: Path, rows: list[dict], *, size=(32, 32), manifest="csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, row in enumerate(rows):
        file = folder / row["file"]
        if ".." not in row["file"] and not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(picture(n, size))
    if manifest == "csv":
        with open(folder / "manifest.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        (folder / "manifest.json").write_text(json.dumps({"images": rows}))
    return folder


def zip_folder(folder: Path, target: Path, extra: Sequence[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
        for info, data in extra:
            zf.writestr(info, data)
    return target


def media_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "images"
    return sorted(root.rglob("*.png")) if root.exists() else []


def png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return chunks


# --------------------------------------------------------------------------- a good set


def test_a_good_set_is_imported_whole_and_its_served_bytes_carry_nothing_of_the_upload(study, tmp_path, settings):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    result = imageset_import(study=study, path=folder)
    assert result.variants == IMPORTED and result.images == len(rows) == 12
    images = Image.objects.filter(study=study, variant__name__in=IMPORTED).select_related("prompt", "variant")
    assert images.count() == 12
    expected_size = len(png_bytes(PILImage.new("RGB", (32, 32))))
    for image in images:
        p = image.provenance
        row = p["manifest_row"]
        assert (row["variant"], row["prompt"], int(row["seed"])) == (
            present(image.variant).name, image.prompt.text, image.seed)
        upload = (folder / row["file"]).read_bytes()
        assert p["file_sha256"] == hashlib.sha256(upload).hexdigest() and p["source"] == "image-set"
        served = (Path(settings.MEDIA_ROOT) / image.file).read_bytes()
        assert set(png_chunks(served)) <= ALLOWED_CHUNKS and b"sd-base" not in served
        assert len(served) == expected_size  # one byte count for one display size, whatever was uploaded
        assert image.public_id in image.file and "sd-base" not in image.file
        with PILImage.open(folder / row["file"]) as original, PILImage.open(io.BytesIO(served)) as stored:
            assert np.array_equal(np.asarray(original.convert("RGB")), np.asarray(stored))  # the pixels, unchanged
        assert (image.auto_count is not None) == (image.prompt.kind == "count")
    # The count items of the imported variants point at their images.
    assert not Item.objects.filter(study=study, task="count", variant__name__in=IMPORTED, image__isnull=True).exists()


def test_a_zip_with_a_json_manifest_by_index_is_resized_to_the_display_size(study, tmp_path, settings):
    rows = make_rows(study)
    base = int(study.protocol["sampling"].get("seed", 0))
    for row in rows:
        row["index"] = str(int(row.pop("seed")) - base)
        row["caption"] = row.pop("prompt")
    folder = write_folder(tmp_path / "set", rows, size=(48, 40), manifest="json")
    archive = zip_folder(folder, tmp_path / "set.zip")
    result = imageset_import(study=study, path=archive, resize=True)
    assert result.images == 12 and result.upload_sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    sizes = {(i.width, i.height) for i in Image.objects.filter(study=study)}
    assert sizes == {(32, 32)}
    assert {i.provenance["resized_to"] for i in Image.objects.filter(study=study)} == {32}


def test_a_variant_of_imported_images_needs_no_checkpoint_to_launch_the_others(study, tmp_path):
    imageset_import(study=study, path=write_folder(tmp_path / "set", make_rows(study)))
    with pytest.raises(services.GenerationError) as caught:
        services.batch_launch(study=study)
    assert "model-a, model-b" in str(caught.value) and "model-c" not in str(caught.value)


# --------------------------------------------------------------------------- bad sets, refused whole


def _missing_file(study, tmp_path):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    (folder / rows[3]["file"]).unlink()
    return folder, {}, "is not in the upload"


def _outside(study, tmp_path):
    rows = make_rows(study)
    (tmp_path / "secret.png").write_bytes(picture(99))
    rows[0]["file"] = "../secret.png"
    return write_folder(tmp_path / "set", rows), {}, "'../secret.png' is not in the upload"


def _link(study, tmp_path):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    (tmp_path / "secret.png").write_bytes(picture(99))
    (folder / rows[0]["file"]).unlink()
    os.symlink(tmp_path / "secret.png", folder / rows[0]["file"])
    return folder, {}, "a link"


def _not_an_image(study, tmp_path):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    (folder / rows[5]["file"]).write_bytes(b"%PDF-1.4 not a picture")
    return folder, {}, "not an image that can be read"


def _cell_missing(study, tmp_path):
    rows = make_rows(study)
    del rows[2]
    return write_folder(tmp_path / "set", rows), {}, "no row for"


def _cell_duplicated(study, tmp_path):
    rows = make_rows(study)
    rows.append({**rows[1], "file": "model-c/again.png"})
    return write_folder(tmp_path / "set", rows), {}, "is covered by rows 2, 13"


def _not_in_grid(study, tmp_path):
    rows = make_rows(study)
    rows[0]["prompt"] = "a prompt the study never asked for"
    return write_folder(tmp_path / "set", rows), {}, "is not in the study's grid"


def _too_many_pixels(study, tmp_path):
    rows = make_rows(study)
    return write_folder(tmp_path / "set", rows, size=(64, 64)), {"FUSION_IMPORT_MAX_SIDE": 48}, "more than 48 on a side"


def _too_many_bytes(study, tmp_path):
    rows = make_rows(study)
    return write_folder(tmp_path / "set", rows), {"FUSION_IMPORT_MAX_BYTES": 10_000}, "more than the 10,000 allowed"


def _zip_dotdot(study, tmp_path):
    folder = write_folder(tmp_path / "set", make_rows(study))
    return zip_folder(folder, tmp_path / "set.zip", [(zipfile.ZipInfo("../../evil.png"), picture(1))]), {}, \
        "a path that leaves the upload"


def _zip_link(study, tmp_path):
    folder = write_folder(tmp_path / "set", make_rows(study))
    link = zipfile.ZipInfo("model-c/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zip_folder(folder, tmp_path / "set.zip", [(link, b"/etc/passwd")]), {}, "a link"


def _zip_bomb(study, tmp_path):
    folder = write_folder(tmp_path / "set", make_rows(study))
    bomb = zipfile.ZipInfo("model-c/bomb.png")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    # 3 MB of zeros compress to a few KB; the uncompressed size is what is counted.
    return zip_folder(folder, tmp_path / "set.zip", [(bomb, b"\0" * 3_000_000)]), \
        {"FUSION_IMPORT_MAX_FILE_BYTES": 1_000_000}, "more than the 1,000,000 allowed for one file"


def _wrong_size(study, tmp_path):
    return write_folder(tmp_path / "set", make_rows(study), size=(40, 40)), {}, "are not 32x32 pixels"


BAD = [_missing_file, _outside, _link, _not_an_image, _cell_missing, _cell_duplicated, _not_in_grid,
       _too_many_pixels, _too_many_bytes, _zip_dotdot, _zip_link, _zip_bomb, _wrong_size]


@pytest.mark.parametrize("case", BAD, ids=[c.__name__.strip("_") for c in BAD])
def test_a_bad_set_is_refused_with_its_message_and_nothing_is_stored(case, study, tmp_path, settings):
    path, limits, message = case(study, tmp_path)
    for name, value in limits.items():
        setattr(settings, name, value)
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=path)
    assert message in str(caught.value), str(caught.value)
    assert str(tmp_path) not in str(caught.value)  # no server path in a message
    assert not Image.objects.filter(source="model").exists() and media_files(settings) == []
    assert not Item.objects.filter(study=study, image__isnull=False, is_gold=False).exists()


def test_every_problem_is_listed_at_once(study, tmp_path):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    (folder / rows[0]["file"]).write_bytes(b"junk")
    del rows[4]
    rows[6]["variant"] = "model-z"
    write_folder(folder, rows)
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=folder)
    text = str(caught.value)
    assert "not an image" in text and "no row for" in text and "'model-z' is not one of" in text
    assert len(caught.value.problems) >= 3


def test_a_store_that_fails_midway_leaves_no_row_and_no_file(study, tmp_path, settings, monkeypatch):
    folder = write_folder(tmp_path / "set", make_rows(study))
    real, calls = imagesets.write_png_atomic, []

    def fail_on_fifth(**kw):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("disk full")
        return real(**kw)

    monkeypatch.setattr(imagesets, "write_png_atomic", fail_on_fifth)
    with pytest.raises(OSError):
        imageset_import(study=study, path=folder)
    assert not Image.objects.filter(source="model").exists() and media_files(settings) == []


def test_the_command_imports_or_says_every_problem(study, tmp_path):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows[:-1])
    with pytest.raises(CommandError, match="no row for"):
        call_command("import_images", study.slug, str(folder))
    good = write_folder(tmp_path / "good", rows)
    out = io.StringIO()
    call_command("import_images", study.slug, str(good), stdout=out)
    assert "Imported 12 images for model-c, model-d of outside" in out.getvalue()


# --------------------------------------------------------------------------- the admin's page


def test_an_admin_imports_a_zip_from_the_generation_page(study, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from tests.factories import UserFactory

    admin = Client()
    admin.force_login(UserFactory(username="boss", is_staff=True))
    rows = make_rows(study)
    bad = zip_folder(write_folder(tmp_path / "bad", rows[:-1]), tmp_path / "bad.zip")
    r = admin.post(f"/generation/study/{study.slug}/images/",
                   {"upload": SimpleUploadedFile("bad.zip", bad.read_bytes(), content_type="application/zip")})
    assert r.status_code == 400 and b"no row for" in r.content and not Image.objects.filter(source="model").exists()
    good = zip_folder(write_folder(tmp_path / "good", rows), tmp_path / "good.zip")
    r = admin.post(f"/generation/study/{study.slug}/images/",
                   {"upload": SimpleUploadedFile("good.zip", good.read_bytes(), content_type="application/zip")})
    assert r.status_code == 302 and Image.objects.filter(study=study, source="model").count() == 12
    page = admin.get(f"/generation/study/{study.slug}/").content.decode()
    assert page.count("image set</td>") == 2
    stranger = Client()
    stranger.force_login(UserFactory(username="someone"))
    assert stranger.post(f"/generation/study/{study.slug}/images/", {}).status_code == 404
