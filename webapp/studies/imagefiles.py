"""Writing images for evaluators: opaque names, no metadata, atomic.

A PNG written here carries pixels only: no text chunks (tEXt/zTXt/iTXt), no EXIF, no ICC
profile, no timestamp. Its name is the image's random public id, so neither the file
nor its path can tell which model made it. Its pixels are stored without compression, so
that its size in bytes depends on its width, height and mode only: a compressed PNG is
smaller for smoother pictures, and one model's images being larger than another's would
tell them apart in a ranking set (the byte count is in every response's Content-Length).
Every image is stored as 8-bit RGB (``to_rgb``), so that the mode cannot differ by model either;
``png_header`` reads back what a stored file holds (opening a study checks it).
"""
from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image as PILImage

IMAGE_DIR = "images"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A PNG's colour type (IHDR) -> the mode's name without its bit depth.
_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # grey with 16 bits (or more) per pixel


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """``image`` as 8-bit RGB, as a browser would show it: transparency composited onto white
    (a browser's page behind it), 16-bit grey scaled (not clipped) to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT:
        # Pillow opens a 16-bit grey PNG as "I" or "I;16"; its values run to 65535.
        image = image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def png_bytes(image: PILImage.Image) -> bytes:
    """Encode ``image`` as an 8-bit RGB PNG holding only IHDR, IDAT and IEND."""
    # A fresh image from raw pixels has an empty ``info`` dict: nothing rides along.
    clean = PILImage.frombytes("RGB", image.size, to_rgb(image).tobytes())
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False, compress_level=0)
    return buf.getvalue()


def wxh(sizes: Iterable[tuple[int, int]]) -> str:
    """Sizes as people read them: "24x24 and 32x32"."""
    return " and ".join(f"{w}x{h}" for w, h in sorted(sizes))


def png_header(path: str | os.PathLike) -> tuple[int, int, str] | None:
    """(width, height, mode) as a stored PNG's header says, the mode as "RGB 8-bit"; None when
    the file is missing or is not a PNG. Reads 29 bytes, no pixel."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(29)
    except OSError:
        return None
    if len(head) < 29 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    depth, colour = head[24], head[25]
    return width, height, f"{_COLOUR_TYPES.get(colour, f'colour type {colour}')} {depth}-bit"


def relative_path_for(public_id: str) -> str:
    """Where an image lives under MEDIA_ROOT: sharded by the id's first two characters."""
    return f"{IMAGE_DIR}/{public_id[:2]}/{public_id}.png"


def write_png_atomic(*, image: PILImage.Image, public_id: str, media_root: str | os.PathLike) -> str:
    """Write the PNG under ``media_root`` atomically (temp file + rename); return its relative path.

    Writing the same id twice leaves one complete file: a re-run task overwrites it with
    the same bytes, and a reader never sees a half-written image.
    """
    rel = relative_path_for(public_id)
    target = Path(media_root) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    data = png_bytes(image)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rel
