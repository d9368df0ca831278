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


def draft_study() -> Study:
    protocol = small_protocol(variants=NEUTRAL_VARIANTS)
    protocol["sampling"]["size"] = 32
    return study_lifecycle.study_create(protocol=protocol, slug="outside", base_dir=str(DEMO_PROTOCOL.parent))


@pytest.fixture
def study() -> Study:
    return draft_study()


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


def staff_client():
    from django.test import Client

    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory(username="boss", is_staff=True))
    return client


def web_import(client, study: Study, archive: Path, *, name: str = "set.zip", run: bool = True, **data):
    """POST ``archive`` on the study's generation page; with ``run``, the task it queues runs
    once the request's transaction commits, as a worker (or the eager mode) would run it.
    Returns the response."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import TestCase

    from tests.webapp.research_support import celery_eager

    upload = SimpleUploadedFile(name, archive.read_bytes(), content_type="application/zip")
    with celery_eager(), TestCase.captureOnCommitCallbacks(execute=run):
        return client.post(f"/generation/study/{study.slug}/images/", {"upload": upload, **data})


def study_page(client, study: Study) -> str:
    """The generation page, its HTML entities for quotes undone."""
    r = client.get(f"/generation/study/{study.slug}/")
    assert r.status_code == 200
    return r.content.decode().replace("&#x27;", "'").replace("&quot;", '"')


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
    return folder, {}, "not a PNG"


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


@pytest.mark.parametrize("data", [
    picture(1, fmt="JPEG"),
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n",
], ids=["jpeg", "eps"])
def test_an_image_that_is_not_a_png_is_a_listed_problem_and_never_decoded(data, study, tmp_path, settings,
                                                                           monkeypatch):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    (folder / rows[4]["file"]).write_bytes(data)
    opened = []
    real_open = imagesets.PILImage.open

    def spy(fp, mode="r", formats=None):
        opened.append(formats)
        return real_open(fp, mode, formats)

    monkeypatch.setattr(imagesets.PILImage, "open", spy)
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=folder)
    assert f"row 5: file '{rows[4]['file']}': not a PNG" in str(caught.value)
    assert opened and all(f == ["PNG"] for f in opened)
    assert not Image.objects.filter(source="model").exists() and media_files(settings) == []


def test_a_file_that_fails_to_decode_is_read_once_however_many_rows_name_it(study, tmp_path, monkeypatch):
    rows = make_rows(study)
    for row in rows[:6]:
        row["file"] = "model-c/broken.png"
    folder = write_folder(tmp_path / "set", rows)
    (folder / "model-c/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    reads: list[str] = []
    real_read = imagesets.Upload.read

    def read(self, name):
        reads.append(name)
        return real_read(self, name)

    monkeypatch.setattr(imagesets.Upload, "read", read)
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=folder)
    assert reads.count("model-c/broken.png") == 1
    assert sum("broken.png" in p for p in caught.value.problems) == 1


def test_a_manifest_with_more_rows_than_the_grid_has_cells_is_refused_before_any_file_is_read(
        study, tmp_path, monkeypatch):
    rows = make_rows(study)
    cells_in_grid = sum(len(c) for c in selectors.study_needed_work(study=study).values())
    rows += [{**rows[0], "seed": str(10_000 + k)} for k in range(cells_in_grid + 1 - len(rows))]
    folder = write_folder(tmp_path / "set", rows)
    decoded: list[str] = []
    monkeypatch.setattr(imagesets, "_decode", lambda data, where, problems: decoded.append(where))
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=folder)
    assert f"The manifest has {cells_in_grid + 1:,} rows, more than the {cells_in_grid:,} cells" in str(caught.value)
    assert decoded == []


def test_the_problems_kept_are_capped_the_last_counting_the_rest():
    from webapp.generation.models import MAX_PROBLEMS_SHOWN

    err = ImageSetError([f"row {k}: no file." for k in range(1, 301)])
    assert len(err.problems) == MAX_PROBLEMS_SHOWN
    assert err.problems[-2] == f"row {MAX_PROBLEMS_SHOWN - 1}: no file."
    assert err.problems[-1] == f"… and {300 - MAX_PROBLEMS_SHOWN + 1} more problems."
    assert "(300 problems)" in str(err) and "row 300" not in str(err)
    assert len(ImageSetError(["a", "b"]).problems) == 2


def test_a_zip_with_more_entries_than_allowed_is_refused_before_its_directory_is_read(
        study, tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "set", make_rows(study))
    archive = zip_folder(folder, tmp_path / "set.zip", [(zipfile.ZipInfo(f"pad/{k}"), b"") for k in range(40)])
    with zipfile.ZipFile(archive) as zf:
        entries = len(zf.infolist())
    monkeypatch.setattr(imagesets, "MAX_ZIP_ENTRIES", entries - 1)
    opened: list[Path] = []
    real_zip = zipfile.ZipFile

    def zip_file(*args, **kwargs):
        opened.append(args[0])
        return real_zip(*args, **kwargs)

    monkeypatch.setattr(imagesets.zipfile, "ZipFile", zip_file)
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=archive)
    assert f"The zip holds {entries:,} entries, more than the {entries - 1:,} allowed" in str(caught.value)
    assert opened == []
    monkeypatch.setattr(imagesets, "MAX_ZIP_ENTRIES", entries)
    imageset_import(study=study, path=archive)  # at the cap: read and imported
    assert opened == [archive]


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
    assert "not a PNG" in text and "no row for" in text and "'model-z' is not one of" in text
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
    from django.test import Client

    from tests.factories import UserFactory

    admin = staff_client()
    rows = make_rows(study)
    bad = zip_folder(write_folder(tmp_path / "bad", rows[:-1]), tmp_path / "bad.zip")
    r = web_import(admin, study, bad, name="bad.zip")
    assert r.status_code == 302 and not Image.objects.filter(source="model").exists()
    page = study_page(admin, study)
    assert 'data-status="failed"' in page and "no row for" in page
    good = zip_folder(write_folder(tmp_path / "good", rows), tmp_path / "good.zip")
    r = web_import(admin, study, good, name="good.zip")
    assert r.status_code == 302 and Image.objects.filter(study=study, source="model").count() == 12
    page = study_page(admin, study)
    assert page.count("image set</td>") == 2 and "Imported 12 images for model-c, model-d." in page
    stranger = Client()
    stranger.force_login(UserFactory(username="someone"))
    assert stranger.post(f"/generation/study/{study.slug}/images/", {}).status_code == 404


# --------------------------------------------------------------------------- one size for every image an evaluator sees


def store_variant(study: Study, variant: str, side: int, *, mode: str = "RGB") -> None:
    """Every visible image ``variant`` needs, as stored rows and files of ``side`` pixels (a
    finished generation batch's), the file written in ``mode`` without the platform's writer."""
    from django.conf import settings as django_settings

    from webapp.studies.imagefiles import relative_path_for
    from webapp.studies.models import new_public_id

    v = study.variants.get(name=variant)
    for k, (prompt_id, seed) in enumerate(selectors.study_needed_work(study=study)[v.pk]):
        public_id = new_public_id()
        file = Path(django_settings.MEDIA_ROOT) / relative_path_for(public_id)
        file.parent.mkdir(parents=True, exist_ok=True)
        PILImage.open(io.BytesIO(picture(k, (side, side)))).convert(mode).save(file, format="PNG")
        Image.objects.create(public_id=public_id, study=study, prompt_id=prompt_id, variant=v, seed=seed,
                             source="model", file=relative_path_for(public_id), width=side, height=side)
    study_lifecycle.study_attach_images(study=study)


def test_opening_refuses_images_whose_size_differs_by_variant_and_changes_nothing(study, settings):
    from webapp.studies.models import Slot

    for name, side in (("model-a", 24), ("model-b", 24), ("model-c", 32), ("model-d", 32)):
        store_variant(study, name, side)
    files_before = media_files(settings)
    with pytest.raises(study_lifecycle.StudySetupError) as caught:
        study_lifecycle.study_open(study=study)
    message = str(caught.value)
    assert message.startswith("The study's images differ in size by variant: ")
    assert "model-a 24x24, model-b 24x24, model-c 32x32, model-d 32x32" in message and "\n" not in message
    assert "sampling.size" in message and str(settings.MEDIA_ROOT) not in message
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT and not Slot.objects.filter(study=study).exists()
    assert not Image.objects.filter(study=study, source="gold").exists()  # rolled back, its files removed
    assert media_files(settings) == files_before


def test_opening_refuses_images_whose_mode_differs_by_variant(study):
    for name in ("model-a", "model-b", "model-c"):
        store_variant(study, name, 32)
    store_variant(study, "model-d", 32, mode="L")
    with pytest.raises(study_lifecycle.StudySetupError, match="differ in colour mode by variant: .*model-d grey 8-bit"):
        study_lifecycle.study_open(study=study)
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT


def test_a_study_of_one_size_opens_and_its_gold_is_drawn_again_at_that_size(
        study, settings, django_capture_on_commit_callbacks):
    settings.FUSION_GOLD_SIZE = 20
    study_lifecycle.study_render_gold(study=study)  # a preview before any model image existed
    assert {(i.width, i.height) for i in Image.objects.filter(study=study, source="gold")} == {(20, 20)}
    for name in ("model-a", "model-b", "model-c", "model-d"):
        store_variant(study, name, 32)
    with django_capture_on_commit_callbacks(execute=True):
        opened = study_lifecycle.study_open(study=study)
    assert opened.status == Study.Status.OPEN
    gold = Image.objects.filter(study=study, source="gold")
    assert gold.exists() and {(i.width, i.height) for i in gold} == {(32, 32)}
    assert len(media_files(settings)) == Image.objects.filter(study=study).count()  # the 20 px files are gone


@pytest.mark.parametrize("resize", [True, False], ids=["resized", "at-sampling-size"])
def test_an_import_unlike_the_size_of_the_studys_other_images_is_refused(study, tmp_path, settings, resize):
    store_variant(study, "model-a", 24)
    store_variant(study, "model-b", 24)
    before = media_files(settings)
    folder = write_folder(tmp_path / "set", make_rows(study), size=(48, 40) if resize else (32, 32))
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=folder, resize=resize)
    how = "resized to" if resize else "of"
    assert (f"The images are {how} 32x32 pixels but the study's other images are not (model-a 24x24, "
            "model-b 24x24)") in str(caught.value)
    assert not Image.objects.filter(variant__name__in=IMPORTED).exists() and media_files(settings) == before


def test_an_import_at_the_size_of_the_studys_other_images_is_taken(study, tmp_path):
    store_variant(study, "model-a", 32)
    result = imageset_import(study=study, path=write_folder(tmp_path / "set", make_rows(study), size=(48, 40)),
                             resize=True)
    assert result.images == 12


# --------------------------------------------------------------------------- malformed uploads


def _patch_central(archive: Path, entry: str, offset: int, value: bytes) -> None:
    """Overwrite bytes at ``offset`` of ``entry``'s central directory record."""
    data = bytearray(archive.read_bytes())
    at = data.find(b"PK\x01\x02")  # the first central record; walk to ``entry``'s
    while at != -1:
        name_len = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + name_len].decode() == entry:
            data[at + offset:at + offset + len(value)] = value
            archive.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{entry} not in {archive.name}")


def stored_zip(study, tmp_path) -> tuple[Path, str]:
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    return archive, rows[0]["file"]


def _bad_crc(study, tmp_path):
    archive, entry = stored_zip(study, tmp_path)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(entry)
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(entry.encode())
    data[start + 100] ^= 0xFF  # a pixel byte of a stored (uncompressed) entry
    archive.write_bytes(bytes(data))
    return archive, f"{entry} cannot be read: damaged"


def _encrypted(study, tmp_path):
    archive, entry = stored_zip(study, tmp_path)
    _patch_central(archive, entry, 8, (0x1).to_bytes(2, "little"))  # general purpose flag: encrypted
    return archive, f"{entry} cannot be read: encrypted"


def _unknown_compression(study, tmp_path):
    archive, entry = stored_zip(study, tmp_path)
    _patch_central(archive, entry, 10, (97).to_bytes(2, "little"))  # compression method 97 (WavPack)
    return archive, f"{entry} cannot be read: compressed with a method this server cannot read"


def _damaged_manifest(study, tmp_path):
    archive, _ = stored_zip(study, tmp_path)
    _patch_central(archive, "manifest.csv", 10, (97).to_bytes(2, "little"))
    return archive, "The manifest manifest.csv cannot be read"


def _deep_json(study, tmp_path):
    folder = write_folder(tmp_path / "set", make_rows(study), manifest="json")
    (folder / "manifest.json").write_text("[" * 200_000)
    return zip_folder(folder, tmp_path / "set.zip"), "The manifest manifest.json is not valid JSON: nested too deeply"


def _huge_json_integer(study, tmp_path):
    folder = write_folder(tmp_path / "set", make_rows(study), manifest="json")
    (folder / "manifest.json").write_text('[{"seed": ' + "9" * 5000 + "}]")  # past Python's 4300 digits
    return zip_folder(folder, tmp_path / "set.zip"), "The manifest manifest.json is not valid JSON"


def _huge_csv_field(study, tmp_path):
    rows = make_rows(study)
    rows[0]["prompt"] = "x" * 200_000
    return zip_folder(write_folder(tmp_path / "set", rows), tmp_path / "set.zip"), \
        "The manifest manifest.csv is not CSV that can be read"


MALFORMED = [_bad_crc, _encrypted, _unknown_compression, _damaged_manifest, _deep_json, _huge_json_integer,
             _huge_csv_field]


@pytest.mark.parametrize("case", MALFORMED, ids=[c.__name__.strip("_") for c in MALFORMED])
def test_a_malformed_upload_is_a_listed_problem_not_a_crash(case, study, tmp_path, settings):
    archive, message = case(study, tmp_path)
    with pytest.raises(ImageSetError) as caught:
        imageset_import(study=study, path=archive)
    assert message in str(caught.value), str(caught.value)
    assert str(tmp_path) not in str(caught.value) and "Traceback" not in str(caught.value)
    with pytest.raises(CommandError, match="The image set was refused"):
        call_command("import_images", study.slug, str(archive))
    admin = staff_client()
    assert web_import(admin, study, archive).status_code == 302
    page = study_page(admin, study)
    assert 'data-status="failed"' in page and message in page and str(tmp_path) not in page
    assert not Image.objects.filter(source="model").exists() and media_files(settings) == []


# --------------------------------------------------------------------------- pixels as a browser shows them


def _swapped_red_blue_profile() -> bytes:
    """An ICC profile (sRGB's, red and blue primaries swapped): pure red in it is sRGB blue."""
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {bytes(data[o:o + 4]): o for o in range(132, 132 + 12 * int.from_bytes(data[128:132], "big"), 12)}
    r, b = tags[b"rXYZ"], tags[b"bXYZ"]
    data[r + 4:r + 12], data[b + 4:b + 12] = data[b + 4:b + 12], data[r + 4:r + 12]
    return bytes(data)


def _encoded(image: PILImage.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _transparent() -> tuple[bytes, dict]:
    image = PILImage.new("RGBA", (32, 32), (255, 0, 0, 0))  # transparent red on the left
    image.paste((0, 0, 255, 255), (16, 0, 32, 32))
    return _encoded(image), {(2, 2): (255, 255, 255), (30, 2): (0, 0, 255)}


def _palette_transparent() -> tuple[bytes, dict]:
    image = PILImage.new("P", (32, 32), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (16, 0, 32, 32))
    return _encoded(image, transparency=0), {(2, 2): (255, 255, 255), (30, 2): (0, 0, 255)}


def _exif_rotated() -> tuple[bytes, dict]:
    image = PILImage.new("RGB", (32, 32), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 16, 16))  # red top-left as stored; Orientation 6: turn 90° clockwise
    exif = PILImage.Exif()
    exif[0x0112] = 6
    return _encoded(image, exif=exif.tobytes()), {(28, 3): (255, 0, 0), (3, 3): (0, 0, 0)}


def _sixteen_bit_grey() -> tuple[bytes, dict]:
    image = PILImage.new("I;16", (32, 32), 128 * 257)  # mid-grey in 16 bits
    return _encoded(image), {(5, 5): (128, 128, 128)}


def _display_p3_like() -> tuple[bytes, dict]:
    image = PILImage.new("RGB", (32, 32), (255, 0, 0))
    return _encoded(image, icc_profile=_swapped_red_blue_profile()), {(5, 5): (0, 0, 255)}


PIXELS = [_transparent, _palette_transparent, _exif_rotated, _sixteen_bit_grey, _display_p3_like]


@pytest.mark.parametrize("case", PIXELS, ids=[c.__name__.strip("_") for c in PIXELS])
def test_imported_pixels_are_stored_as_a_browser_shows_them(case, study, tmp_path, settings):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    data, expected = case()
    for row in rows:
        (folder / row["file"]).write_bytes(data)
    imageset_import(study=study, path=folder)
    for image in Image.objects.filter(study=study, variant__name__in=IMPORTED):
        with PILImage.open(Path(settings.MEDIA_ROOT) / image.file) as stored:
            assert stored.mode == "RGB" and stored.size == (32, 32)
            for xy, colour in expected.items():
                got = stored.getpixel(xy)
                assert isinstance(got, tuple)
                assert max(abs(a - b) for a, b in zip(got, colour, strict=True)) <= 8, (xy, got, colour)


def test_a_broken_colour_profile_is_a_listed_problem(study, tmp_path, settings):
    rows = make_rows(study)
    folder = write_folder(tmp_path / "set", rows)
    (folder / rows[2]["file"]).write_bytes(_encoded(PILImage.new("RGB", (32, 32)), icc_profile=b"not a profile"))
    with pytest.raises(ImageSetError, match="row 3: file .*: its embedded colour profile cannot be read"):
        imageset_import(study=study, path=folder)
    assert not Image.objects.filter(source="model").exists() and media_files(settings) == []


def test_a_problem_found_twice_is_said_once_and_a_summary_counts_files_and_images():
    from webapp.generation.imagesets import ImageSetError, ImportResult, import_summary

    twice = "m: ('two red circles', seed 0) is covered by rows 3, 13; once is needed."
    err = ImageSetError([twice, "row 4: no such file", twice])
    assert err.problems == [twice, "row 4: no such file"] and str(err).count(twice) == 1
    assert "(2 problems)" in str(err)
    same = ImportResult(variants=("m",), images=12, files=12, upload_sha256="0" * 64)
    assert import_summary(same, study_slug="s") == "Imported 12 images for m of s"
    shared = ImportResult(variants=("m", "n"), images=15, files=12, upload_sha256="0" * 64)
    assert import_summary(shared).startswith("Imported 15 images from 12 files (a file whose text is both")


# --------------------------------------------------------------------------- the manifest to fill in


def template_rows(study: Study, variants=None) -> list[dict]:
    chosen = None if variants is None else [study.variants.get(name=v) for v in variants]
    text = imagesets.manifest_csv(selectors.manifest_template(study=study, variants=chosen))
    return list(csv.DictReader(io.StringIO(text)))


def test_the_manifest_template_is_what_an_import_needs(study, tmp_path, settings):
    rows = template_rows(study, IMPORTED)
    assert list(rows[0]) == ["variant", "prompt", "seed", "file"]
    assert [(r["variant"], r["prompt"], int(r["seed"])) for r in rows] == [
        (v, text, seed) for v in IMPORTED for text, seed in cells(study, v)]
    result = imageset_import(study=study, path=write_folder(tmp_path / "set", rows))
    assert sorted(result.variants) == sorted(IMPORTED) and result.images == len(rows)
    # Imported variants wait for nothing more: the default template lists the other two.
    assert {r["variant"] for r in template_rows(study)} == set(NEUTRAL_VARIANTS) - set(IMPORTED)


def test_a_caption_that_is_also_a_count_prompt_is_one_row_of_the_template(tmp_path, settings):
    first = draft_study()
    count_text = Prompt.objects.filter(study=first, kind="count").order_by("pk").values_list("text", flat=True)[0]
    protocol = small_protocol(variants=NEUTRAL_VARIANTS)
    protocol["sampling"]["size"] = 32
    protocol["preference_task"]["captions"] = [count_text, "a cat on a mat"]
    study = study_lifecycle.study_create(protocol=protocol, slug="shared-text", base_dir=str(DEMO_PROTOCOL.parent))
    rows = template_rows(study, ["model-a"])
    keys = [(r["prompt"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) and (count_text, "0") in keys
    result = imageset_import(study=study, path=write_folder(tmp_path / "shared", rows))
    assert result.images > len(rows)  # the shared row's image is stored for each of its tasks


def test_the_template_command_writes_the_rows_and_refuses_what_it_cannot_list(study, tmp_path, capsys):
    call_command("image_set_template", study.slug, "--variant", "model-c")
    assert capsys.readouterr().out == imagesets.manifest_csv(
        selectors.manifest_template(study=study, variants=[study.variants.get(name="model-c")]))
    target = tmp_path / "manifest.csv"
    call_command("image_set_template", study.slug, "-o", str(target))
    assert len(list(csv.DictReader(target.open()))) == sum(len(cells(study, v)) for v in NEUTRAL_VARIANTS)
    with pytest.raises(CommandError, match="'sd-base': not a variant of outside"):
        call_command("image_set_template", study.slug, "--variant", "sd-base")
    imageset_import(study=study, path=write_folder(tmp_path / "all", make_rows(study, NEUTRAL_VARIANTS)))
    with pytest.raises(CommandError, match="no variant is waiting for an image set"):
        call_command("image_set_template", study.slug)


def test_the_template_is_a_staff_download_linked_from_the_generation_page(study):
    from django.test import Client

    from tests.factories import UserFactory

    staff = staff_client()
    assert 'id="manifest-template"' in study_page(staff, study)
    r = staff.get(f"/generation/study/{study.slug}/manifest.csv?variant=model-d")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert r.content.decode() == imagesets.manifest_csv(
        selectors.manifest_template(study=study, variants=[study.variants.get(name="model-d")]))
    assert staff.get(f"/generation/study/{study.slug}/manifest.csv?variant=nope").status_code == 404
    evaluator_like = Client()
    evaluator_like.force_login(UserFactory(username="someone"))
    assert evaluator_like.get(f"/generation/study/{study.slug}/manifest.csv").status_code == 404
    assert Client().get(f"/generation/study/{study.slug}/manifest.csv").status_code == 302
