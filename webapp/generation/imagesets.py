"""An image set as a model source: images made elsewhere, imported for a study's variants.

An upload is a folder or a zip holding the images and a manifest (``manifest.csv`` or
``manifest.json``, or one given beside it), one row per image::

    variant,prompt,seed,file
    sd-base,two red circles,0,imgs/0001.png

``prompt`` may be called ``caption``; ``seed`` may be replaced by ``index`` (image k of a
prompt, seed = the protocol's sampling seed + k). Every row is checked before anything is
stored: the file is inside the upload, decodes as a PNG (the only format opened) within the size limits, its
prompt and seed are a cell of the study's grid, and each imported variant's cells are
covered exactly once, and every image (resized or not) has the one size of the study's
other images an evaluator sees (opening the study checks this again, whatever made the
images). Any problem refuses the whole upload, every problem listed, a zip entry or a
manifest that cannot be read included; else every image is stored, in one transaction,
re-encoded by the platform's PNG writer (so its name, metadata and byte size say nothing
of the upload) under a random id (or one derived from the caller's secret ``id_key``), as
8-bit sRGB (``_display``: turned upright by its EXIF orientation, converted from its
colour profile, transparency on white).

The command (``import_images``) calls ``imageset_import`` directly; the generation page
keeps the upload and queues it for a worker (``services.imageset_import_request``,
``import_runner``).
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps, UnidentifiedImageError

from evalstudy.protocol import NotJSONError, json_document
from webapp.studies.imagefiles import relative_path_for, to_rgb, write_png_atomic, wxh
from webapp.studies.lifecycle import study_attach_images
from webapp.studies.models import Image, Prompt, Study, Variant, new_public_id
from webapp.studies.selectors import study_visible_sizes

from . import selectors
from .models import MAX_PROBLEMS_SHOWN

MANIFEST_NAMES = ("manifest.csv", "manifest.json")
MAX_UPLOAD_BYTES = 2 * 1024**3  # the upload's images and manifest, uncompressed
MAX_FILE_BYTES = 64 * 1024**2  # one image file
MAX_IMAGE_SIDE = 4096  # pixels, either side
# Entries a zip may hold, read from its end record before its directory is loaded: over
# eight times the paper's grid (4 variants x 300 images) plus its manifest.
MAX_ZIP_ENTRIES = 10_000
# The only format an upload's images are opened as: each Pillow decoder is attack surface
# for bytes from a third party (EPS runs Ghostscript), and the docs ask for PNG.
IMAGE_FORMATS = ["PNG"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# What reading a damaged, encrypted or oddly compressed zip raises (zipfile, zlib, the file system).
ZIP_ERRORS = (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error, OSError)


def _zip_trouble(exc: BaseException) -> str:
    """Why a zip (or one of its entries) cannot be read, in words; never the exception's text,
    which may hold a path on the server."""
    if isinstance(exc, RuntimeError) and "encrypt" in str(exc).lower():
        return "encrypted (a password is needed); upload a zip without a password"
    if isinstance(exc, NotImplementedError):
        return "compressed with a method this server cannot read; use deflate or no compression"
    if isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError)):
        return "damaged (a bad checksum, or data cut short)"
    return f"unreadable ({type(exc).__name__})"


class ImageSetError(ValueError):
    """An upload refused as a whole; ``problems`` lists every reason found."""

    def __init__(self, problems: list[str]):
        # One problem found twice (a caption that is also a count prompt is two cells of one
        # row) is said once.
        # At most MAX_PROBLEMS_SHOWN are kept (the last of them counting the rest): they are
        # stored on the import's row and shown on its page, and a manifest can make thousands.
        problems = list(dict.fromkeys(problems))
        found = len(problems)
        if found > MAX_PROBLEMS_SHOWN:
            kept = problems[:MAX_PROBLEMS_SHOWN - 1]
            problems = [*kept, f"… and {found - len(kept):,} more problems."]
        self.problems = problems
        super().__init__(f"The image set was refused ({found:,} problem{'s' * (found != 1)}):\n"
                         + "\n".join(f"  - {p}" for p in problems))


def _limit(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


# --------------------------------------------------------------------------- reading an upload


class Upload:
    """The files of a folder or a zip, read by relative POSIX name, never outside it."""

    def __init__(self, path: Path, problems: list[str], name: str = ""):
        """``name``: what the upload is called in a problem (default: its file's name)."""
        self.path, self.problems = path, problems
        self.zip: zipfile.ZipFile | None = None
        self.names: dict[str, Any] = {}
        max_total, max_file = _limit("FUSION_IMPORT_MAX_BYTES", MAX_UPLOAD_BYTES), _limit(
            "FUSION_IMPORT_MAX_FILE_BYTES", MAX_FILE_BYTES)
        total = 0
        if path.is_dir():
            root = path.resolve()
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path).as_posix()
                if file.is_symlink():
                    problems.append(f"{rel}: a link; an upload holds plain files only.")
                elif file.is_file():
                    if not file.resolve().is_relative_to(root):
                        problems.append(f"{rel}: outside the upload.")
                        continue
                    self.names[rel] = file
                    total += file.stat().st_size
        elif zipfile.is_zipfile(path):
            entries, infos = _zip_entries(path), []
            if entries is not None and entries > MAX_ZIP_ENTRIES:
                problems.append(f"The zip holds {entries:,} entries, more than the {MAX_ZIP_ENTRIES:,} allowed "
                                "(one per image and the manifest).")
            else:
                try:
                    self.zip = zipfile.ZipFile(path)
                    infos = self.zip.infolist()
                except ZIP_ERRORS as exc:
                    problems.append(f"The zip cannot be opened: {_zip_trouble(exc)}.")
            for info in infos:
                name = info.filename
                if info.is_dir():
                    continue
                pure = PurePosixPath(name)
                if pure.is_absolute() or ".." in pure.parts or "\\" in name or ":" in name:
                    problems.append(f"{name}: a path that leaves the upload; zip entries must be relative.")
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    problems.append(f"{name}: a link; an upload holds plain files only.")
                    continue
                if info.file_size > max_file:
                    problems.append(f"{name}: {info.file_size:,} bytes uncompressed, more than the "
                                    f"{max_file:,} allowed for one file.")
                    continue
                self.names[pure.as_posix()] = info
                total += info.file_size
        else:
            problems.append(f"{name or path.name} is neither a folder nor a zip file.")
        if total > max_total:
            problems.append(f"The upload holds {total:,} bytes uncompressed, more than the {max_total:,} allowed.")
            self.names = {}
        self.max_file = max_file

    def read(self, name: str) -> bytes:
        """The bytes of ``name``, at most the per-file limit (a zip's stated size is not trusted).

        ValueError, its message naming the entry and never a path on the server, when the
        entry is too large, damaged, encrypted, or compressed in a way that cannot be read."""
        entry = self.names[name]
        try:
            if self.zip is not None:
                with self.zip.open(entry) as fh:
                    data = fh.read(self.max_file + 1)
            else:
                with open(entry, "rb") as fh:
                    data = fh.read(self.max_file + 1)
        except ZIP_ERRORS as exc:
            raise ValueError(f"{name} cannot be read: {_zip_trouble(exc)}") from exc
        if len(data) > self.max_file:
            raise ValueError(f"more than the {self.max_file:,} bytes allowed for one file")
        return data

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _zip_entries(path: Path) -> int | None:
    """How many entries the zip at ``path`` says it holds (its end of central directory
    record, zip64's when there is one), read without loading the directory; None when the
    record cannot be found (zipfile then says why the zip cannot be opened)."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 65_536 - 22))  # the record, then a comment of at most 64 KiB
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) < at + 22:
            return None
        entries = struct.unpack_from("<H", tail, at + 10)[0]
        if entries != 0xFFFF or at < 20 or tail[at - 20:at - 16] != b"PK\x06\x07":
            return entries
        fh.seek(struct.unpack_from("<Q", tail, at - 12)[0])  # the zip64 end record
        record = fh.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return None
        return struct.unpack_from("<Q", record, 32)[0]


def _manifest_rows(upload: Upload, manifest: Path | None, problems: list[str]) -> tuple[list[dict], str]:
    """The manifest's rows (str -> str) and its sha256."""
    if manifest is not None:
        name, data = manifest.name, manifest.read_bytes()
    else:
        found = [n for n in MANIFEST_NAMES if n in upload.names]
        if not found:
            problems.append("No manifest: put manifest.csv or manifest.json at the top of the upload, or give one.")
            return [], ""
        try:
            name, data = found[0], upload.read(found[0])
        except ValueError as exc:
            problems.append(f"The manifest {exc}.")
            return [], ""
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(f"The manifest {name} is not UTF-8 text.")
        return [], digest
    if name.endswith(".json"):
        try:
            doc = json_document(text)
        except NotJSONError as exc:
            problems.append(f"The manifest {name} is not valid JSON: {exc}.")
            return [], digest
        rows = doc.get("images") if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            problems.append(f"The manifest {name} must be a list of objects (or {{\"images\": [...]}}).")
            return [], digest
        return [{str(k).strip().lower(): "" if v is None else str(v).strip() for k, v in r.items()}
                for r in rows], digest
    reader = csv.DictReader(io.StringIO(text))
    try:
        return [{(k or "").strip().lower(): _cell(v) for k, v in r.items()} for r in reader], digest
    except csv.Error as exc:  # a field over csv.field_size_limit(), a stray NUL, ...
        problems.append(f"The manifest {name} is not CSV that can be read (line {reader.line_num}: {exc}).")
        return [], digest


def manifest_csv(rows: list[selectors.ManifestRow]) -> str:
    """``rows`` as a manifest.csv (``selectors.manifest_template``): the header and a row per
    image, ready to have its ``file`` column point at the images made."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(selectors.MANIFEST_FIELDS)
    writer.writerows((r.variant, r.prompt, r.seed, r.file) for r in rows)
    return out.getvalue()


def _cell(value: str | list[str] | None) -> str:
    """A CSV cell as text; a row's cells beyond the header (a list under the key None) joined."""
    return ",".join(value).strip() if isinstance(value, list) else (value or "").strip()


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Row:
    number: int  # 1-based, as a person counts the manifest's rows
    variant: Variant
    prompt_ids: tuple[int, ...]
    seed: int
    file: str
    raw: dict


def _checked_rows(study: Study, rows: list[dict], problems: list[str]) -> list[Row]:
    variants = {v.name: v for v in study.variants.all()}
    prompts: dict[str, list[int]] = {}
    for pk, text in Prompt.objects.filter(study=study).values_list("pk", "text"):
        prompts.setdefault(text, []).append(pk)
    base_seed = selectors.study_sampling(study=study).seed
    checked = []
    for number, raw in enumerate(rows, start=1):
        where = f"row {number}"
        name, text, file = raw.get("variant", ""), raw.get("prompt") or raw.get("caption", ""), raw.get("file", "")
        bad = []
        variant = variants.get(name)
        if variant is None:
            bad.append(f"variant {name!r} is not one of the study's ({', '.join(variants)})")
        if text not in prompts:
            bad.append(f"prompt {text!r} is not in the study's grid")
        seed = None
        try:
            if raw.get("seed", "") != "":
                seed = int(raw["seed"])
            elif raw.get("index", "") != "":
                seed = base_seed + int(raw["index"])
            else:
                bad.append("neither a seed nor an index")
        except ValueError:
            bad.append(f"seed or index {raw.get('seed') or raw.get('index')!r} is not a whole number")
        if not file:
            bad.append("no file")
        if bad:
            problems.append(f"{where}: " + "; ".join(bad) + ".")
            continue
        assert variant is not None and seed is not None  # each missing one added to `bad` above
        checked.append(Row(number, variant, tuple(prompts[text]), seed, file, raw))
    return checked


def _check_grid(study: Study, rows: list[Row], problems: list[str]) -> None:
    """Each imported variant covers each of its grid cells exactly once, and nothing else."""
    needed = selectors.study_needed_work(study=study)
    texts = dict(Prompt.objects.filter(study=study).values_list("pk", "text"))
    by_variant: dict[int, dict[tuple[int, int], list[int]]] = {}
    for row in rows:
        cells = by_variant.setdefault(row.variant.pk, {})
        wanted = {(pid, row.seed) for pid in row.prompt_ids} & set(needed[row.variant.pk])
        if not wanted:
            problems.append(f"row {row.number}: ({row.raw.get('prompt') or row.raw.get('caption')!r}, seed "
                            f"{row.seed}) is not a cell of the study's grid.")
        for cell in wanted:
            cells.setdefault(cell, []).append(row.number)
    variants = {v.pk: v for v in study.variants.all()}
    for vid, cells in by_variant.items():
        name = variants[vid].name
        for (pid, seed), numbers in cells.items():
            if len(numbers) > 1:
                problems.append(f"{name}: ({texts[pid]!r}, seed {seed}) is covered by rows "
                                f"{', '.join(map(str, numbers))}; once is needed.")
        missing = [cell for cell in needed[vid] if cell not in cells]
        for pid, seed in missing[:20]:
            problems.append(f"{name}: no row for ({texts[pid]!r}, seed {seed}).")
        if len(missing) > 20:
            problems.append(f"{name}: {len(missing) - 20} more grid cells have no row.")
        variant = variants[vid]
        if variant.images.exists():
            problems.append(f"{name} has images already; an image set is imported for a variant without any.")
        if variant.checkpoint_id is not None and variant.checkpoint is not None:
            problems.append(f"{name} is assigned checkpoint {variant.checkpoint.name!r}; unassign it first.")


def _decode(data: bytes, where: str, problems: list[str]) -> PILImage.Image | None:
    side = _limit("FUSION_IMPORT_MAX_SIDE", MAX_IMAGE_SIDE)
    if not data.startswith(PNG_SIGNATURE):
        problems.append(f"{where}: not a PNG; an image set holds PNG images only.")
        return None
    try:
        with PILImage.open(io.BytesIO(data), formats=IMAGE_FORMATS) as probe:
            width, height = probe.size  # read from the header, before any pixel is decoded
            if width > side or height > side:
                problems.append(f"{where}: {width}x{height} pixels, more than {side} on a side.")
                return None
            probe.verify()
        image = PILImage.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        problems.append(f"{where}: not an image that can be read ({type(exc).__name__}).")
        return None
    return image


def _display(image: PILImage.Image, size: int | None) -> PILImage.Image:
    """``image`` as a browser shows it, in 8-bit sRGB, centre-cropped to a square and resized to
    ``size`` pixels (``None``: its own size).

    Turned upright by its EXIF orientation; converted from its embedded colour profile
    (e.g. Display P3) to sRGB, which is what the platform's PNGs (no profile) are shown as;
    16-bit grey scaled to 8 bits; transparency composited onto white (``imagefiles.to_rgb``).
    ValueError, in words, when its orientation or colour profile cannot be read."""
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError) as exc:
        raise ValueError(f"its EXIF orientation cannot be read ({type(exc).__name__})") from exc
    icc = image.info.get("icc_profile")
    if icc:
        image = _to_srgb(image, icc)
    image = to_rgb(image)
    if size is None or image.size == (size, size):
        return image
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), PILImage.Resampling.LANCZOS)


def _to_srgb(image: PILImage.Image, icc: bytes) -> PILImage.Image:
    """``image`` converted from the colour profile ``icc`` to sRGB (alpha kept)."""
    if image.mode not in ("RGB", "RGBA", "L", "CMYK"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=out)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        raise ValueError(f"its embedded colour profile cannot be read or applied ({type(exc).__name__})") from exc
    assert converted is not None  # inPlace=False returns the new image
    return converted


# --------------------------------------------------------------------------- importing


@dataclass(frozen=True)
class ImportResult:
    variants: tuple[str, ...]
    images: int  # image rows made: a file whose text is both a count prompt and a caption makes two
    files: int  # the manifest's rows stored
    upload_sha256: str


def _file_sha256(path: Path) -> str:
    """The file's sha256, read in chunks: an upload may be 2 GiB."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def import_summary(result: ImportResult, *, study_slug: str = "") -> str:
    """What an import did, in a sentence without its full stop."""
    files = ("" if result.files == result.images else
             f" from {result.files} files (a file whose text is both a count prompt and a caption is stored "
             "once for each)")
    where = f" of {study_slug}" if study_slug else ""
    return f"Imported {result.images} images{files} for {', '.join(result.variants)}{where}"


def imageset_import(*, study: Study, path: str | Path, manifest: str | Path | None = None,
                    resize: bool = False, user: User | None = None, id_key: str = "", name: str = "",
                    on_stored: Callable[[ImportResult], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> ImportResult:
    """Import an image set for the variants its manifest names; all of it or (any problem) none.

    ``resize``: bring every image to the protocol's ``sampling.size`` (centre-cropped to a
    square); without it every image must already be that size (when the protocol has one).
    In every case the images (as stored, resized or not) must be of one size, and of the
    size of the study's model images an evaluator can see that exist already (other
    variants' images, generated or imported before): a size that differs by variant would
    tell evaluators which model made an image (pixel dimensions, byte count).

    ``id_key`` (a secret kept by the caller; ``ImageSetImport.id_key``): each image's public
    id is derived from it and the image's manifest row and prompt, so that importing the
    same upload again after a crash writes the same files instead of leaving the first
    run's beside them; without it, ids are random. ``on_stored`` is called with the result
    inside the transaction that stores the images, so what it writes commits with them (or,
    should it raise, nothing is stored). ``name``: what the upload is called in a problem
    (the uploaded file's name, never ours on the server; default: ``path``'s name).
    ``should_stop`` is asked before each file is decoded and before each is stored: when it
    says yes, ImportStopped is raised and nothing is stored (the files written so far are
    removed with the rows that roll back).
    """
    path = Path(path)
    problems: list[str] = []
    if study.status != Study.Status.DRAFT:
        raise ImageSetError([f"Images are imported into draft studies only; this one is {study.status}."])
    if not path.exists():
        raise ImageSetError([f"Nothing to import at {path.name}."])
    upload = Upload(path, problems, name)
    try:
        rows, manifest_sha = _manifest_rows(upload, Path(manifest) if manifest else None, problems)
        if not rows and not problems:
            problems.append("The manifest lists no image.")
        cells = sum(len(c) for c in selectors.study_needed_work(study=study).values())
        if len(rows) > cells:  # each row is then checked and its file decoded: refuse before that work
            raise ImageSetError(problems + [
                f"The manifest has {len(rows):,} rows, more than the {cells:,} cells of the study's grid "
                "(every variant's images together); a row is needed per image of an imported variant."])
        checked = _checked_rows(study, rows, problems)
        _check_grid(study, checked, problems)
        size = selectors.study_sampling(study=study).size
        if resize and size is None:
            problems.append("Resizing needs the protocol's sampling.size (the display size in pixels).")
        existing = study_visible_sizes(study_id=study.pk)
        decoded: dict[str, tuple[str, tuple[int, int]]] = {}
        failed: set[str] = set()  # said once, never read or decoded again for the next row naming it
        for row in checked:
            if row.file in decoded or row.file in failed:
                continue
            _stop_if(should_stop)
            failed.add(row.file)  # until it is decoded below
            posix = PurePosixPath(row.file)
            if posix.is_absolute() or ".." in posix.parts or row.file not in upload.names:
                problems.append(f"row {row.number}: file {row.file!r} is not in the upload.")
                continue
            try:
                data = upload.read(row.file)
            except ValueError as exc:
                problems.append(f"row {row.number}: file {row.file!r}: {exc}.")
                continue
            where = f"row {row.number}: file {row.file!r}"
            image = _decode(data, where, problems)
            if image is None:
                continue
            try:
                shown = _display(image, size if resize else None).size
            except ValueError as exc:
                problems.append(f"{where}: {exc}.")
                continue
            decoded[row.file] = (hashlib.sha256(data).hexdigest(), shown)
            failed.discard(row.file)
        _check_sizes(decoded={f: s for f, (_, s) in decoded.items()}, existing=existing,
                     size=size, resize=resize, problems=problems)
        if problems:
            raise ImageSetError(problems)
        upload_sha = (_file_sha256(path) if path.is_file() else manifest_sha)
        return _store(study=study, upload=upload, rows=checked, hashes={f: h for f, (h, _) in decoded.items()},
                      size=size if resize else None, upload_sha=upload_sha, manifest_sha=manifest_sha,
                      upload_name=path.name, user=user, id_key=id_key, on_stored=on_stored,
                      should_stop=should_stop)
    finally:
        upload.close()


class ImportStopped(Exception):
    """The caller's ``should_stop`` said to stop (e.g. the import was marked failed meanwhile);
    nothing was stored."""


def _stop_if(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise ImportStopped


def _check_sizes(*, decoded: dict[str, tuple[int, int]], existing: dict[str, set[tuple[int, int]]],
                 size: int | None, resize: bool, problems: list[str]) -> None:
    """The upload's images (file -> stored size) are of one size, the protocol's when they
    are not resized to it, and the size of the study's visible model images (``existing``,
    variant -> sizes) that exist already."""
    if not resize and size is not None:
        off = sorted({f for f, s in decoded.items() if s != (size, size)})
        if off:
            problems.append(f"{len(off)} images are not {size}x{size} pixels (first: {off[0]!r}); "
                            "import with resizing (--resize, or the box on the generation page).")
            return
    ours = set(decoded.values())
    if len(ours) > 1:
        problems.append(f"The images come in {len(ours)} sizes ({wxh(ours)}): one size for every image of a "
                        "study, or a size in the protocol and resizing.")
        return
    theirs = set().union(*existing.values()) if existing else set()
    if ours and theirs and ours != theirs:
        how = "resized to" if resize else "of"
        others = ", ".join(f"{name} {wxh(found)}" for name, found in sorted(existing.items()))
        problems.append(f"The images are {how} {wxh(ours)} pixels but the study's other images are not "
                        f"({others}): every image an evaluator sees has one size; generate or import "
                        "them all at one size (the protocol's sampling.size).")


def _public_id(id_key: str, row: Row, prompt_id: int) -> str:
    """The image's public id: derived from ``id_key`` (the same for the same upload's row and
    prompt, and as unpredictable as a random one to whoever lacks the key), else random."""
    if not id_key:
        return new_public_id()
    return hmac.new(id_key.encode(), f"{row.number}:{prompt_id}".encode(), hashlib.sha256).hexdigest()[:32]


def imageset_files_remove(*, study: Study, path: Path, id_key: str) -> int:
    """Remove the files that a failed import of the upload at ``path`` with ``id_key`` may
    have written (a run killed while storing: its rows rolled back, its files stayed), and
    return how many were there. Their ids are derived from ``id_key``, so no other import's
    file is named; a file that an Image row names is kept all the same."""
    if not id_key:
        return 0
    problems: list[str] = []
    upload = Upload(path, problems)
    try:
        rows, _ = _manifest_rows(upload, None, problems)
    finally:
        upload.close()
    if len(rows) > sum(len(c) for c in selectors.study_needed_work(study=study).values()):
        return 0  # refused before anything was stored
    ids = {_public_id(id_key, row, pid) for row in _checked_rows(study, rows, []) for pid in row.prompt_ids}
    ids -= set(Image.objects.filter(public_id__in=ids).values_list("public_id", flat=True))
    removed = 0
    for public_id in ids:
        file = Path(settings.MEDIA_ROOT) / relative_path_for(public_id)
        if file.is_file():
            file.unlink(missing_ok=True)
            removed += 1
    return removed


@transaction.atomic
def _store(*, study: Study, upload: Upload, rows: list[Row], hashes: dict[str, str], size: int | None,
           upload_sha: str, manifest_sha: str, upload_name: str, user: User | None, id_key: str = "",
           on_stored: Callable[[ImportResult], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> ImportResult:
    from generator.judge import judge  # the count items' automatic reading, as for generated images

    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status != Study.Status.DRAFT:
        raise ImageSetError([f"The study became {study.status} meanwhile."])
    # Checked before, but another import may have stored images for these variants since.
    taken = sorted(set(Image.objects.filter(variant_id__in={r.variant.pk for r in rows})
                       .values_list("variant__name", flat=True)))
    if taken:
        raise ImageSetError([f"{name} has images already (stored meanwhile); an image set is imported for a variant "
                             "without any." for name in taken])
    needed = selectors.study_needed_work(study=study)
    kinds = dict(Prompt.objects.filter(study=study).values_list("pk", "kind"))
    written: list[Path] = []
    now = timezone.now().isoformat()
    try:
        for row in rows:
            _stop_if(should_stop)
            image = _display(PILImage.open(io.BytesIO(upload.read(row.file)), formats=IMAGE_FORMATS), size)
            for prompt_id in row.prompt_ids:
                if (prompt_id, row.seed) not in set(needed[row.variant.pk]):
                    continue
                public_id = _public_id(id_key, row, prompt_id)
                Image.objects.create(
                    public_id=public_id, study=study, prompt_id=prompt_id, source=Image.Source.MODEL,
                    variant=row.variant, checkpoint=None, seed=row.seed, file=relative_path_for(public_id),
                    width=image.width, height=image.height,
                    auto_count=judge(image).count if kinds[prompt_id] == Prompt.Kind.COUNT else None,
                    provenance={
                        "source": "image-set", "variant": row.variant.name, "upload": upload_name,
                        "upload_sha256": upload_sha, "manifest_sha256": manifest_sha,
                        "file_sha256": hashes[row.file], "manifest_row": {"number": row.number, **row.raw},
                        "resized_to": size, "imported_at": now,
                        "imported_by": getattr(user, "username", "") or "",
                    },
                )
                write_png_atomic(image=image, public_id=public_id, media_root=settings.MEDIA_ROOT)
                written.append(Path(settings.MEDIA_ROOT) / relative_path_for(public_id))
        study_attach_images(study=study)
        result = ImportResult(variants=tuple(dict.fromkeys(r.variant.name for r in rows)), images=len(written),
                              files=len(rows), upload_sha256=upload_sha)
        if on_stored is not None:
            on_stored(result)
    except BaseException:
        for file in written:  # the rows roll back; their files go too
            file.unlink(missing_ok=True)
        raise
    return result
