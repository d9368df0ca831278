"""Per-showing image addresses: what an evaluator's page names an image by.

An image has one ``public_id`` for its whole life, and serving it to evaluators under it
gave a repeated item (``Item.repeat_of``) the URL of its first showing, and a gold image
one URL for everyone: a script recognised repeats by URL, and participants could pool gold
answers by URL. An evaluator is therefore shown an alias for each showing instead: the
showing's place in that evaluator's sequence (the entry's index, the image's position on
screen) with a keyed tag (HMAC-SHA256 under SECRET_KEY) of the evaluator, the index and
the position. So

* two showings never share an address: another entry or position is another address, and
  another evaluator's tag differs for the same place;
* nothing in it is computable from public values: the index and position are what the
  evaluator sees anyway (task 5, the second image), and the tag needs the key;
* nothing is stored: the address is computed when a page or the task JSON is made and
  checked when the image is asked for, and the image is then read in one statement
  (``sqlreads.showing_image_file``) by the unique (evaluator, index) of the entry.

What it does not hide: the bytes. Every showing of one image is the same file, so a script
that hashes what it fetched still recognises a repeat, and participants can still pool gold
answers by hash (probe 3 found all of one evaluator's repeats that way). Changing the pixels
per showing would alter the stimulus, and a matcher that compares pixels with a tolerance
would still win; the address only stops the trivial comparison of URLs.

Why keyed rather than a random alias kept in a column: the entries of an evaluator are
written in one burst on consent (a launch has hundreds at once), and an alias per
showing would be more rows or a wider row written there, and a migration that fills every
existing entry; the key costs one HMAC per image request. The tag binds the evaluator's
row id without showing it (row ids count the site's participants). A new SECRET_KEY
changes every address; the old ones still serve while the old key is in
SECRET_KEY_FALLBACKS, as Django's own signatures do.
"""
from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "fusion.studies.image-alias"
_PLACE = struct.Struct(">IB")  # the entry's index (0..2**32-1), the position on screen (0..255)
_TAG_BYTES = 16  # 128 bits: not to be guessed, per evaluator and place
# The alias is the base64url of place + tag: 21 bytes, 28 characters without padding. A
# public id is 32 hexadecimal characters: the two never have the same length.
ALIAS_LENGTH = 4 * (_PLACE.size + _TAG_BYTES) // 3


@dataclass(frozen=True)
class Showing:
    """An image's place in an evaluator's tasks: the entry's index, the image's position on
    screen (0 for a count task's one image)."""

    evaluator_id: int
    index: int
    position: int


def _tag(evaluator_id: int, place: bytes, secret: str | bytes) -> bytes:
    value = b"%d:" % evaluator_id + place
    return salted_hmac(SALT, value, secret=secret, algorithm="sha256").digest()[:_TAG_BYTES]


def image_alias(*, evaluator_id: int, index: int, position: int) -> str:
    """The address (a URL path segment) of the image at ``position`` of the evaluator's
    task ``index``."""
    place = _PLACE.pack(index, position)
    raw = place + _tag(evaluator_id, place, settings.SECRET_KEY)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def showing_from_alias(alias: str, *, evaluator_ids: list[int]) -> Showing | None:
    """The showing ``alias`` names for one of ``evaluator_ids`` (those this browser names),
    None when it names none of theirs: not an alias, a tag made for another evaluator, or
    made with a key this site no longer has."""
    if len(alias) != ALIAS_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(alias.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(raw) != _PLACE.size + _TAG_BYTES:  # characters outside the alphabet are skipped by the decoder
        return None
    place, tag = raw[: _PLACE.size], raw[_PLACE.size:]
    index, position = _PLACE.unpack(place)
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    for evaluator_id in evaluator_ids:
        if any(constant_time_compare(tag, _tag(evaluator_id, place, s)) for s in secrets):
            return Showing(evaluator_id=evaluator_id, index=index, position=position)
    return None
