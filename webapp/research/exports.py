"""A study's responses as text, streamed: CSV in evalstudy's responses format, and JSON Lines.

Rows follow ``evalstudy.responses``: one per count answer; one per (evaluator, item,
variant) for rankings, ``position`` being the screen position (0 = leftmost) of that
variant's image and ``rank`` its rank (1 = best; tied images share the best rank of
their group, "1, 2, 2, 4"), both empty-ranked on every row of a skipped ranking. A
ranking has one row per variant of the protocol (2 for pairwise A/B, up to 6).
``item_id`` is ``Item.key``; ``evaluator_id`` the evaluator's pseudonym, never the
external worker id. After the answers come the judge-only rows, one per image that only the
automatic judge read (the protocol's ``analysis.judge_images_per_cell``): count rows with an
empty ``evaluator_id``, no answer, and the judge's ``auto_count``, which the prediction-
powered intervals use and nothing else does.

The generators yield strings of about ``BUFFER_CHARS`` characters (the first one smaller), so a response of any
size is written with flat memory: the database is read in chunks (see selectors), the
items and images of the study are looked up in dicts built once.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace

from evalstudy.responses import (
    FLAG_COLUMNS,
    RESPONSE_COLUMNS,
    STRING_COLUMNS,
    ResponseError,
    ResponseTable,
    table_from_columns,
)
from webapp.studies.models import Study

from . import selectors

BUFFER_CHARS = 256 * 1024
FIRST_CHUNK_CHARS = 16 * 1024  # the first piece is smaller: the download starts before a whole buffer is built
ROWS_PER_WRITE = 1000  # csv.writer.writerows on a list: far fewer Python calls than one per row
SKIPPED_COUNT = 0  # a stored count answer always has a number or "can't tell"; never skipped


# A cell starting with one of these is read as a formula when the CSV is opened in a
# spreadsheet (=HYPERLINK(...) sends the sheet's cells away); a tab or carriage return is
# skipped before one. OWASP's advice: prefix such a cell with a single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """``value`` as a CSV cell no spreadsheet reads as a formula: with a ``'`` in front when
    it starts with one of FORMULA_STARTS, else unchanged. For every cell a CSV writer takes
    from outside the server (a panel's ids, a caption from a dataset)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def worker_id_hash(external_id: str, salt: str) -> str | None:
    """HMAC-SHA256 of an external worker id under the export salt (hex); None when there is none.

    The same worker gets the same hash in every export made with one salt, so exports
    can be joined with a payment list by whoever holds the salt, and by no one else.
    """
    if not external_id:
        return None
    return hmac.new(salt.encode("utf-8"), external_id.encode("utf-8"), hashlib.sha256).hexdigest()


def _count_parts(item: selectors.ItemInfo, images: dict[int, selectors.ImageInfo]) -> tuple[tuple, tuple, tuple]:
    image = images.get(item.image_id) if item.image_id is not None else None
    head = ("count", item.key)
    mid = (item.variant, item.prompt, item.object, item.true_count)
    tail = (int(item.is_gold), image.public_id if image else "", item.seed,
            image.auto_count if image else None, item.repeat_of)
    return head, mid, tail


# A simulated evaluator's id in the CSV, when a dry run's export includes them: the label
# stays with every row through evalstudy's analysis and its per-evaluator tables.
SIMULATED_PREFIX = "simulated-"


def response_rows(*, study: Study, include_simulated: bool = False,
                  chunk_size: int = selectors.EXPORT_CHUNK_SIZE) -> Iterator[tuple]:
    """The responses as tuples in RESPONSE_COLUMNS order (None for an empty cell): people's,
    and simulated evaluators' too with ``include_simulated`` (their ids prefixed SIMULATED_PREFIX)."""
    items = selectors.export_items(study=study)
    images = selectors.export_images(study=study)
    # The prompt is the one text here not written by this site or its researchers: a caption
    # may come from an outside dataset. It is neutralised here, so that the CSV and the table
    # read from these rows (response_table) say the same.
    items = {pk: replace(it, prompt=spreadsheet_safe(it.prompt)) for pk, it in items.items()}
    parts = {pk: _count_parts(it, images) for pk, it in items.items() if it.task == "count"}
    # A can't-tell answer is stored with answer NULL (a check constraint on CountResponse), and
    # an empty answer_count is how the CSV says can't tell: the flag itself adds nothing here.
    def who(pseudonym: str, simulated: bool) -> str:
        return SIMULATED_PREFIX + pseudonym if simulated else pseudonym

    extended = include_simulated  # only then is the simulated flag needed
    for count_row in selectors.count_answer_values(study=study, extended=extended,
                                                   include_simulated=include_simulated, chunk_size=chunk_size):
        item_id, pseudonym, answer, _cant_tell, seconds, away = count_row[:6]
        pseudonym = who(pseudonym, extended and count_row[-1])  # EXTENDED_FIELDS ends with is_simulated
        head, mid, tail = parts[item_id]
        yield head + (pseudonym,) + mid + (answer, None, SKIPPED_COUNT, "", None, seconds) + tail + (away,)
    for rank_row in map(selectors.split_rank_row, selectors.rank_answer_values(
            study=study, extended=extended, include_simulated=include_simulated, chunk_size=chunk_size)):
        it = items[rank_row.item_id]
        pseudonym = who(rank_row.pseudonym, extended and rank_row.extended[-1])
        flag = int(rank_row.skipped)
        for position, (image_id, rank) in enumerate(zip(rank_row.image_ids, rank_row.ranks, strict=True)):
            image = images[image_id]
            yield ("rank", it.key, pseudonym, image.variant, it.prompt, "", None, None, rank, flag,
                   rank_row.skip_reason, position, rank_row.seconds, 0, image.public_id, it.seed,
                   image.auto_count, it.repeat_of, rank_row.away_seconds)
    for j in selectors.judge_only_images(study=study):
        yield ("count", j.key, "", j.variant, spreadsheet_safe(j.prompt), j.object, j.true_count, None, None,
               SKIPPED_COUNT, "", None, None, 0, j.public_id, j.seed, j.auto_count, "", None)


def response_table(*, study: Study, include_simulated: bool = False, variants: Sequence[str] | None = None,
                   allow_ties: bool = False) -> ResponseTable:
    """The rows of the CSV export as evalstudy's table, without the text in between: each
    column holds what ``evalstudy.responses.read_responses`` reads back from the export
    (text stripped as it strips a cell, an empty number NaN), checked by the same table rules
    (``table_from_columns``). With ``variants`` (the protocol's), a variant not among them is
    an error, as when reading the file. ResponseError when there are no rows or a rule fails."""
    columns: list[list] = [[] for _ in RESPONSE_COLUMNS]
    for row in response_rows(study=study, include_simulated=include_simulated):
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if not columns[0]:
        raise ResponseError(["no responses"])
    table: dict[str, list] = {}
    for name, values in zip(RESPONSE_COLUMNS, columns, strict=True):
        if name in STRING_COLUMNS:
            table[name] = ["" if v is None else str(v).strip() for v in values]
        elif name in FLAG_COLUMNS:
            table[name] = [bool(v) for v in values]
        else:
            table[name] = [math.nan if v is None else float(v) for v in values]
    if variants is not None:
        unknown = sorted(set(table["variant"]) - set(variants) - {""})
        if unknown:
            raise ResponseError([f"variant {v!r} is not one of the protocol's variants {list(variants)}"
                                 for v in unknown])
    return table_from_columns(table, allow_ties=allow_ties)


def csv_chunks(*, study: Study, include_simulated: bool = False,
               chunk_size: int = selectors.EXPORT_CHUNK_SIZE) -> Iterator[str]:
    """The responses CSV (header first), in pieces of about BUFFER_CHARS characters; simulated
    evaluators only with ``include_simulated`` (see ``response_rows``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESPONSE_COLUMNS)
    batch: list[tuple] = []
    limit = FIRST_CHUNK_CHARS  # the first piece goes out early: a download starts at once
    for row in response_rows(study=study, include_simulated=include_simulated, chunk_size=chunk_size):
        batch.append(row)
        if len(batch) >= ROWS_PER_WRITE:
            writer.writerows(batch)
            batch.clear()
            if buffer.tell() >= limit:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate(0)
                limit = BUFFER_CHARS
    writer.writerows(batch)
    yield buffer.getvalue()


def _jsonl_records(*, study: Study, salt: str, chunk_size: int, include_simulated: bool) -> Iterator[dict]:
    items = selectors.export_items(study=study)
    images = selectors.export_images(study=study, with_provenance=True)
    hashes: dict[str, str | None] = {}

    def hashed(external_id: str) -> str | None:
        if external_id not in hashes:
            hashes[external_id] = worker_id_hash(external_id, salt)
        return hashes[external_id]

    for item_id, pseudonym, answer, cant_tell, seconds, away, created_at, external_id, simulated in (
        selectors.count_answer_values(study=study, extended=True, include_simulated=include_simulated,
                                      chunk_size=chunk_size)
    ):
        it = items[item_id]
        image = images.get(it.image_id) if it.image_id is not None else None
        yield {
            "task": "count", "item_id": it.key, "evaluator_id": pseudonym, "variant": it.variant,
            "prompt": it.prompt, "object": it.object, "true_count": it.true_count, "answer_count": answer,
            "rank": None, "skipped": False, "skip_reason": "", "position": None, "seconds": seconds,
            "is_gold": it.is_gold, "image_id": image.public_id if image else "", "seed": it.seed,
            "auto_count": image.auto_count if image else None, "repeat_of": it.repeat_of,
            "away_seconds": away, "cant_tell": cant_tell, "answered_at": created_at.isoformat(),
            "evaluator_pseudonym": pseudonym, "worker_id_hash": hashed(external_id), "simulated": simulated,
            "image_provenance": image.provenance if image else None,
        }
    for row in map(selectors.split_rank_row, selectors.rank_answer_values(
            study=study, extended=True, include_simulated=include_simulated, chunk_size=chunk_size)):
        item_id, pseudonym, skipped, skip_reason, seconds = (
            row.item_id, row.pseudonym, row.skipped, row.skip_reason, row.seconds)
        created_at, external_id, simulated = row.extended
        it = items[item_id]
        for position, (image_id, rank) in enumerate(zip(row.image_ids, row.ranks, strict=True)):
            image = images[image_id]
            yield {
                "task": "rank", "item_id": it.key, "evaluator_id": pseudonym, "variant": image.variant,
                "prompt": it.prompt, "object": "", "true_count": None, "answer_count": None, "rank": rank,
                "skipped": skipped, "skip_reason": skip_reason, "position": position, "seconds": seconds,
                "is_gold": False, "image_id": image.public_id, "seed": it.seed, "auto_count": image.auto_count,
                "repeat_of": it.repeat_of, "away_seconds": row.away_seconds, "cant_tell": False,
                "answered_at": created_at.isoformat(),
                "evaluator_pseudonym": pseudonym, "worker_id_hash": hashed(external_id), "simulated": simulated,
                "image_provenance": image.provenance,
            }
    for j in selectors.judge_only_images(study=study):
        yield {
            "task": "count", "item_id": j.key, "evaluator_id": "", "variant": j.variant, "prompt": j.prompt,
            "object": j.object, "true_count": j.true_count, "answer_count": None, "rank": None, "skipped": False,
            "skip_reason": "", "position": None, "seconds": None, "is_gold": False, "image_id": j.public_id,
            "seed": j.seed, "auto_count": j.auto_count, "repeat_of": "", "away_seconds": None, "cant_tell": False,
            "answered_at": None,
            "evaluator_pseudonym": "", "worker_id_hash": None, "simulated": False,
            "image_provenance": images[j.pk].provenance,
        }


def jsonl_chunks(*, study: Study, salt: str, include_simulated: bool = False,
                 chunk_size: int = selectors.EXPORT_CHUNK_SIZE) -> Iterator[str]:
    """The responses as JSON Lines: the CSV's columns (typed) and, per row, when it was answered,
    the evaluator's pseudonym, the salted hash of their worker id, whether they were simulated
    (only with ``include_simulated`` are they there at all), and the image's provenance."""
    parts: list[str] = []
    size, limit = 0, FIRST_CHUNK_CHARS  # the first piece goes out early, as in csv_chunks
    for record in _jsonl_records(study=study, salt=salt, chunk_size=chunk_size, include_simulated=include_simulated):
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        parts.append(line)
        size += len(line)
        if size >= limit:
            yield "".join(parts)
            parts.clear()
            size, limit = 0, BUFFER_CHARS
    if parts:
        yield "".join(parts)


def protocol_json(*, study: Study) -> str:
    """The frozen protocol as stored when the study was created (its hash is ``study.protocol_hash``)."""
    return json.dumps(study.protocol, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def aggregates_json(*, result: dict) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
