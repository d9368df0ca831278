"""Writing images for evaluators: opaque names, no metadata, atomic.

A PNG written here carries pixels only: no text chunks (tEXt/zTXt/iTXt), no EXIF, no ICC
profile, no timestamp. Its name is the image's random public id, so neither the file
nor its path can tell which model made it. Its pixels are stored without compression, so
that its size in bytes depends on its width, height and mode only: a compressed PNG is
smaller for smoother pictures, and one model's images being larger than another's would
tell them apart in a ranking set (the byte count is in every response's Content-Length).
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image as PILImage

IMAGE_DIR = "images"


def png_bytes(image: PILImage.Image) -> bytes:
    """Encode ``image`` as a PNG holding only IHDR, IDAT and IEND (and PLTE for palettes)."""
    mode = image.mode if image.mode in ("RGB", "RGBA", "L") else "RGB"
    # A fresh image from raw pixels has an empty ``info`` dict: nothing rides along.
    clean = PILImage.frombytes(mode, image.size, image.convert(mode).tobytes())
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False, compress_level=0)
    return buf.getvalue()


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
