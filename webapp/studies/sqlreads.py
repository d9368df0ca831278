"""The evaluator pages' hottest reads and writes in hand-written SQL, built once per process.

Every evaluator request reads its evaluator with the study, and every answer reads the next
task with its item, prompt and image and the evaluator's progress. Through the ORM, compiling
those querysets cost more CPU than the database spent running them (bench/profile_evaluator.py);
here each statement's text is made once, from the models' own table and column names (a
renamed field changes the SQL with it), and the rows become model instances through the
same converters the ORM applies (JSON, datetimes, booleans on SQLite).

The answer path's two UPDATEs (the evaluator's last-seen time, a task's first-shown time)
go the same way: ``set_times`` writes timestamps by primary key, adapted as the ORM adapts them.

The arrival (join, consent, the instructions and practice pages) goes the same way: a row
by its key (under its row lock at consent), the study's first free slot, one INSERT for
an evaluator's entries, the entries counted by kind, the people who finished.

An evaluator's image (the request a browser makes most, after the pages) is one statement:
the file of the image a showing's alias (``imagealias``) names, if the browser holds the
evaluator.

The statements are plain SQL that PostgreSQL and SQLite both run. What they return is what
the ORM versions returned (selectors.evaluator_next_entry, selectors.evaluator_progress);
tests/webapp/test_sqlreads.py holds them to it.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, TypeVar, cast

from django.db import connection, models

from .models import CountResponse, Entry, Evaluator, Image, Item, Prompt, RankResponse, Slot, Study, Variant

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class _Reader:
    """Turns a row's slice of columns (every concrete field of ``model``, in the model's
    order) into an instance, or None when its primary key is NULL (a LEFT JOIN that found nothing)."""

    model: type[models.Model]
    attnames: tuple[str, ...]
    pk_index: int
    converters: tuple[tuple[Any, ...], ...]  # per column: (converter, expression) pairs

    def build(self, row: Sequence[Any], start: int) -> models.Model | None:
        values = list(row[start:start + len(self.attnames)])
        if values[self.pk_index] is None:
            return None
        for i, convs in enumerate(self.converters):
            for convert, expression in convs:
                values[i] = convert(values[i], expression, connection)
        return self.model.from_db(connection.alias, list(self.attnames), values)


def _columns(model: type[models.Model], alias: str) -> tuple[str, _Reader]:
    """``alias."col", ...`` of every concrete field of ``model``, and the reader of those columns."""
    fields = list(model._meta.concrete_fields)
    qn = connection.ops.quote_name
    sql = ", ".join(f"{alias}.{qn(cast(str, f.column))}" for f in fields)
    converters = []
    for f in fields:
        col = f.get_col(alias)
        convs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        converters.append(tuple((c, col) for c in convs))
    pk_index = next(k for k, f in enumerate(fields) if f.primary_key)
    return sql, _Reader(model, tuple(f.attname for f in fields), pk_index, tuple(converters))


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[models.Model], field: str) -> str:
    return connection.ops.quote_name(cast(str, cast(models.Field, model._meta.get_field(field)).column))


@dataclass(frozen=True)
class _Statement:
    sql: str
    readers: tuple[_Reader, ...]

    def instances(self, row: Sequence[Any]) -> list[models.Model | None]:
        out, at = [], 0
        for reader in self.readers:
            out.append(reader.build(row, at))
            at += len(reader.attnames)
        return out

    def all(self, params: Sequence[Any]) -> list[list[models.Model | None]]:
        """Run it with ``params``: every row's model instances."""
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            return [self.instances(row) for row in cursor.fetchall()]

    def first(self, params: Sequence[Any]) -> tuple[list[models.Model | None], Sequence[Any]] | None:
        """Run it with ``params``: the first row's model instances and the row itself (for
        columns after the models'), or None when it found no row."""
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        return None if row is None else (self.instances(row), row)


def _unanswered(entry_alias: str) -> str:
    e_id = f"{entry_alias}.{_column(Entry, 'id')}"
    count, rank = _column(CountResponse, "entry"), _column(RankResponse, "entry")
    return (f"NOT EXISTS (SELECT 1 FROM {_table(CountResponse)} c WHERE c.{count} = {e_id}) "
            f"AND NOT EXISTS (SELECT 1 FROM {_table(RankResponse)} r WHERE r.{rank} = {e_id})")


@cache
def _next_entry_statement(vendor: str) -> _Statement:
    """The first unanswered entry of an evaluator (its item, prompt and image joined), the
    evaluator's number of entries and of answered ones; parameters: the evaluator's id,
    three times. ``vendor`` keys the cache: quoting and converters are the backend's."""
    e_cols, e = _columns(Entry, "e")
    i_cols, i = _columns(Item, "i")
    p_cols, p = _columns(Prompt, "p")
    g_cols, g = _columns(Image, "g")
    ev = _column(Entry, "evaluator")
    sql = (
        f"SELECT {e_cols}, {i_cols}, {p_cols}, {g_cols}, "
        f"(SELECT COUNT(*) FROM {_table(Entry)} t WHERE t.{ev} = %s), "
        f"(SELECT COUNT(*) FROM {_table(Entry)} a WHERE a.{ev} = %s AND NOT ({_unanswered('a')})) "
        f"FROM {_table(Entry)} e "
        f"INNER JOIN {_table(Item)} i ON i.{_column(Item, 'id')} = e.{_column(Entry, 'item')} "
        f"INNER JOIN {_table(Prompt)} p ON p.{_column(Prompt, 'id')} = i.{_column(Item, 'prompt')} "
        f"LEFT OUTER JOIN {_table(Image)} g ON g.{_column(Image, 'id')} = i.{_column(Item, 'image')} "
        f"WHERE e.{ev} = %s AND {_unanswered('e')} "
        f"ORDER BY e.{_column(Entry, 'index')} LIMIT 1"
    )
    return _Statement(sql, (e, i, p, g))


@dataclass(frozen=True)
class NextEntry:
    """The first unanswered entry (its item, prompt and image loaded) and the progress then."""

    entry: Entry
    answered: int
    total: int


def next_entry(*, evaluator_id: int) -> NextEntry | None:
    """The evaluator's first unanswered entry, as ``selectors.evaluator_next_entry`` reads
    it, with how many entries the evaluator has and has answered, in one query; None when
    every entry is answered (the counts are then not read)."""
    found = _next_entry_statement(connection.vendor).first([evaluator_id, evaluator_id, evaluator_id])
    if found is None:
        return None
    (entry, item, prompt, image), row = found
    assert isinstance(entry, Entry) and isinstance(item, Item) and isinstance(prompt, Prompt)
    item.prompt = prompt
    item.image = image  # type: ignore[assignment]  # None when the item has none
    entry.item = item
    return NextEntry(entry=entry, total=int(row[-2]), answered=int(row[-1]))


@cache
def _entry_statement(vendor: str) -> _Statement:
    """An entry with its item, by its place in its evaluator's sequence and the evaluator's id
    (the parameters; the pair is unique, and indexed by ``entry_unique_index``), the entry's
    row locked (``FOR UPDATE OF e``, never the item's, which every evaluator of the item
    shares) where the backend has row locks: an answer and an undo of the same evaluator
    then take their turns (``flow.response_undo_last``)."""
    e_cols, e = _columns(Entry, "e")
    i_cols, i = _columns(Item, "i")
    sql = (
        f"SELECT {e_cols}, {i_cols} FROM {_table(Entry)} e "
        f"INNER JOIN {_table(Item)} i ON i.{_column(Item, 'id')} = e.{_column(Entry, 'item')} "
        f"WHERE e.{_column(Entry, 'index')} = %s AND e.{_column(Entry, 'evaluator')} = %s"
    )
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF e"
    return _Statement(sql, (e, i))


def entry_with_item(*, index: int, evaluator_id: int) -> Entry | None:
    """The evaluator's entry at ``index`` in their sequence, its item loaded (as
    ``Entry.objects.select_related("item").select_for_update(of=("self",))
    .filter(index=..., evaluator=...).first()``): call it inside the answer's transaction."""
    found = _entry_statement(connection.vendor).first([index, evaluator_id])
    if found is None:
        return None
    (entry, item), _ = found
    assert isinstance(entry, Entry) and isinstance(item, Item)
    entry.item = item
    return entry


@cache
def _evaluator_statement(vendor: str, n_ids: int) -> _Statement:
    """The evaluator among ``n_ids`` ids whose study has a given slug, with the study;
    parameters: the ids, then the slug."""
    v_cols, v = _columns(Evaluator, "v")
    s_cols, s = _columns(Study, "s")
    placeholders = ", ".join(["%s"] * n_ids)
    sql = (
        f"SELECT {v_cols}, {s_cols} FROM {_table(Evaluator)} v "
        f"INNER JOIN {_table(Study)} s ON s.{_column(Study, 'id')} = v.{_column(Evaluator, 'study')} "
        f"WHERE v.{_column(Evaluator, 'id')} IN ({placeholders}) AND s.{_column(Study, 'slug')} = %s "
        f"ORDER BY v.{_column(Evaluator, 'id')} LIMIT 1"
    )
    return _Statement(sql, (v, s))


def evaluator_with_study(*, evaluator_ids: Sequence[int], slug: str) -> Evaluator | None:
    """The evaluator among ``evaluator_ids`` in the study named ``slug``, its study loaded
    (one query, as ``Evaluator.objects.select_related("study")`` would read it)."""
    ids = [int(x) for x in evaluator_ids]
    if not ids:
        return None
    found = _evaluator_statement(connection.vendor, len(ids)).first([*ids, slug])
    if found is None:
        return None
    (evaluator, study), _ = found
    assert isinstance(evaluator, Evaluator) and isinstance(study, Study)
    evaluator.study = study
    return evaluator


@cache
def _slots_held_statement(vendor: str) -> str:
    v = _table(Evaluator)
    col = {f: _column(Evaluator, f) for f in ("study", "slot", "abandoned_at", "finished_at", "last_seen_at")}
    return (
        f"SELECT (SELECT COUNT(DISTINCT e.{col['slot']}) FROM {v} e WHERE e.{col['study']} = %s "
        f"AND e.{col['abandoned_at']} IS NULL AND e.{col['slot']} IS NOT NULL "
        # silent for the slot timeout and not finished: gone (a NULL last-seen time is not silent)
        f"AND NOT (e.{col['finished_at']} IS NULL AND e.{col['last_seen_at']} IS NOT NULL "
        f"AND e.{col['last_seen_at']} < %s)), "
        f"(SELECT COUNT(*) FROM {_table(Slot)} s WHERE s.{_column(Slot, 'study')} = %s)"
    )


def slots_held_and_total(*, study_id: int, active_since: datetime) -> tuple[int, int]:
    """(slots held by an evaluator still active, slots of the study), in one statement: an
    evaluator holds theirs unless abandoned, or unfinished and silent since before ``active_since``."""
    with connection.cursor() as cursor:
        cursor.execute(_slots_held_statement(connection.vendor),
                       [study_id, connection.ops.adapt_datetimefield_value(active_since), study_id])
        held, total = cursor.fetchone()
    return int(held), int(total)


@cache
def _set_times_statement(vendor: str, model: type[models.Model], columns: tuple[str, ...], unless_set: str) -> str:
    sets = ", ".join(f"{_column(model, c)} = %s" for c in columns)
    sql = f"UPDATE {_table(model)} SET {sets} WHERE {_column(model, 'id')} = %s"
    return sql + (f" AND {_column(model, unless_set)} IS NULL" if unless_set else "")


def set_times(model: type[models.Model], pk: int, values: dict[str, datetime], *, unless_set: str = "") -> int:
    """``UPDATE`` the datetime fields ``values`` of the row ``pk`` of ``model`` (only while
    the field ``unless_set`` is NULL, when given); returns the number of rows written (0 or 1)."""
    columns = tuple(values)
    sql = _set_times_statement(connection.vendor, model, columns, unless_set)
    params = [connection.ops.adapt_datetimefield_value(values[c]) for c in columns]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, pk])
        return cursor.rowcount


@cache
def _mark_shown_statement(vendor: str) -> str:
    """Set an entry's first-shown time, unless it has one or an earlier entry of its
    evaluator is unanswered (it is not the task on their screen: an undo moved them back
    while this request was reading); parameters: the time, the entry's id."""
    e, ev, ix = _table(Entry), _column(Entry, "evaluator"), _column(Entry, "index")
    return (
        f"UPDATE {e} SET {_column(Entry, 'shown_at')} = %s WHERE {_column(Entry, 'id')} = %s "
        f"AND {_column(Entry, 'shown_at')} IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {e} b WHERE b.{ev} = {e}.{ev} AND b.{ix} < {e}.{ix} AND {_unanswered('b')})"
    )


def mark_shown(*, entry_id: int, at: datetime) -> int:
    """Record ``at`` as the first showing of the entry ``entry_id`` (one UPDATE); returns the
    rows written: 0 when it was shown already or is not its evaluator's next task."""
    with connection.cursor() as cursor:
        cursor.execute(_mark_shown_statement(connection.vendor),
                       [connection.ops.adapt_datetimefield_value(at), entry_id])
        return cursor.rowcount


# --------------------------------------------------------------------------- the arrival (join, consent, instructions)


@cache
def _row_statement(vendor: str, model: type[models.Model], fields: tuple[str, ...], for_update: bool) -> _Statement:
    """Every column of the row of ``model`` whose ``fields`` equal the parameters (fields that
    single out one row: the primary key, a unique column), under a row lock (``SELECT ...
    FOR UPDATE``) when asked and the backend has row locks (SQLite locks the whole database
    for a write transaction instead, as the ORM's ``select_for_update`` does)."""
    cols, reader = _columns(model, "t")
    where = " AND ".join(f"t.{_column(model, f)} = %s" for f in fields)
    sql = f"SELECT {cols} FROM {_table(model)} t WHERE {where}"
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return _Statement(sql, (reader,))


def row(model: type[M], *, for_update: bool = False, **where: Any) -> M | None:
    """The row of ``model`` with these field values (``model.objects.get(**where)``, or with
    ``for_update`` ``model.objects.select_for_update().get(**where)``), None when there is
    none. ``where`` names fields that single out one row (e.g. ``pk``, a unique column), by
    their names; values are passed as they are (ids and strings, not datetimes)."""
    fields = tuple("id" if name == "pk" else name for name in where)
    found = _row_statement(connection.vendor, model, fields, for_update).first(list(where.values()))
    return None if found is None else cast(M, found[0][0])


@cache
def _place_holder_statement(vendor: str) -> _Statement:
    cols, reader = _columns(Evaluator, "t")
    sql = (f"SELECT {cols} FROM {_table(Evaluator)} t WHERE t.{_column(Evaluator, 'study')} = %s "
           f"AND t.{_column(Evaluator, 'external_id')} = %s AND t.{_column(Evaluator, 'released_at')} IS NULL")
    return _Statement(sql, (reader,))


def place_holder(*, study_id: int, external_id: str) -> Evaluator | None:
    """The evaluator of the study that holds the place of panel id ``external_id``: released
    places aside, whose id may join again (at most one row: the unique constraint on
    (study, external_id) covers the unreleased ones)."""
    found = _place_holder_statement(connection.vendor).first([study_id, external_id])
    return None if found is None else cast(Evaluator, found[0][0])


@cache
def _free_slot_statement(vendor: str) -> _Statement:
    """The study's lowest-numbered slot that no evaluator of the study holds (abandoned
    evaluators hold none); parameters: the study's id, twice."""
    s_cols, s = _columns(Slot, "s")
    ev = {f: _column(Evaluator, f) for f in ("study", "slot", "abandoned_at")}
    sql = (
        f"SELECT {s_cols} FROM {_table(Slot)} s WHERE s.{_column(Slot, 'study')} = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {_table(Evaluator)} e WHERE e.{ev['study']} = %s "
        f"AND e.{ev['slot']} = s.{_column(Slot, 'id')} AND e.{ev['abandoned_at']} IS NULL) "
        f"ORDER BY s.{_column(Slot, 'number')} LIMIT 1"
    )
    return _Statement(sql, (s,))


def free_slot(*, study_id: int) -> Slot | None:
    """The lowest-numbered slot of the study that no evaluator holds unless abandoned (as
    ``Slot.objects.filter(study=...).exclude(pk__in=<held slots>).order_by("number").first()``);
    None when every slot is held. Consent calls it under the study's row lock."""
    found = _free_slot_statement(connection.vendor).first([study_id, study_id])
    if found is None:
        return None
    slot = found[0][0]
    assert isinstance(slot, Slot)
    return slot


@cache
def _entry_tasks_statement(vendor: str) -> str:
    return (
        f"SELECT i.{_column(Item, 'task')}, COUNT(*) FROM {_table(Entry)} e "
        f"INNER JOIN {_table(Item)} i ON i.{_column(Item, 'id')} = e.{_column(Entry, 'item')} "
        f"WHERE e.{_column(Entry, 'evaluator')} = %s GROUP BY i.{_column(Item, 'task')}"
    )


def entry_tasks(*, evaluator_id: int) -> dict[str, int]:
    """How many of the evaluator's entries are of each kind of task ({"count": 20, "rank": 10}),
    in one statement; empty before consent (the entries are made then)."""
    with connection.cursor() as cursor:
        cursor.execute(_entry_tasks_statement(connection.vendor), [evaluator_id])
        return {str(task): int(n) for task, n in cursor.fetchall()}


@cache
def _finished_statement(vendor: str) -> str:
    col = {f: _column(Evaluator, f) for f in ("study", "finished_at", "is_simulated")}
    return (f"SELECT COUNT(*) FROM {_table(Evaluator)} v WHERE v.{col['study']} = %s "
            f"AND v.{col['finished_at']} IS NOT NULL AND NOT v.{col['is_simulated']}")


def finished_people(*, study_id: int) -> int:
    """How many evaluators of the study (people, not simulated ones) have finished."""
    with connection.cursor() as cursor:
        cursor.execute(_finished_statement(connection.vendor), [study_id])
        return int(cursor.fetchone()[0])


# Rows per INSERT: 4 parameters a row stay within SQLite's 32,766 and PostgreSQL's 65,535.
ENTRY_ROWS_PER_INSERT = 1000


@lru_cache(maxsize=64)  # keyed by the number of rows: a study's slots are of a few lengths
def _insert_entries_statement(vendor: str, n_rows: int) -> str:
    columns = ", ".join(_column(Entry, f) for f in ("evaluator", "index", "item", "positions"))
    values = ", ".join(["(%s, %s, %s, %s)"] * n_rows)
    return f"INSERT INTO {_table(Entry)} ({columns}) VALUES {values}"


def insert_entries(*, evaluator_id: int, rows: Sequence[tuple[int, int, list[int]]]) -> None:
    """INSERT the evaluator's entries, one ``(index, item id, positions)`` each, in one
    statement per ENTRY_ROWS_PER_INSERT (``Entry.objects.bulk_create``, without building a model instance per row);
    ``shown_at`` is left NULL. The positions are adapted as the ORM adapts a JSONField."""
    if not rows:
        return
    positions = Entry._meta.get_field("positions")
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ENTRY_ROWS_PER_INSERT):
            chunk = rows[start:start + ENTRY_ROWS_PER_INSERT]
            params: list[Any] = []
            for index, item_id, order in chunk:
                params += [evaluator_id, index, item_id, positions.get_db_prep_save(order, connection)]
            cursor.execute(_insert_entries_statement(connection.vendor, len(chunk)), params)


@cache
def _model_image_width_statement(vendor: str) -> str:
    col = {f: _column(Image, f) for f in ("id", "study", "source", "width", "judge_only")}
    return (f"SELECT g.{col['width']} FROM {_table(Image)} g WHERE g.{col['study']} = %s "
            f"AND g.{col['source']} = %s AND NOT g.{col['judge_only']} AND g.{col['width']} <> 0 "
            f"ORDER BY g.{col['id']} LIMIT 1")


def model_image_width(*, study_id: int) -> int | None:
    """The width of the study's first model image an evaluator can see (not judge-only) that
    has one (by id), None when none has. Opening a study checks that all of them have one size."""
    with connection.cursor() as cursor:
        cursor.execute(_model_image_width_statement(connection.vendor), [study_id, Image.Source.MODEL.value])
        found = cursor.fetchone()
    return None if found is None else int(found[0])


@cache
def _rank_images_statement(vendor: str) -> _Statement:
    """A ranking item's model images with their variants; parameters: the study's id, the
    prompt's id, the seed, the model source."""
    g_cols, g = _columns(Image, "g")
    v_cols, v = _columns(Variant, "v")
    col = {f: _column(Image, f) for f in ("study", "prompt", "seed", "source", "judge_only", "variant")}
    sql = (
        f"SELECT {g_cols}, {v_cols} FROM {_table(Image)} g "
        f"INNER JOIN {_table(Variant)} v ON v.{_column(Variant, 'id')} = g.{col['variant']} "
        f"WHERE g.{col['study']} = %s AND g.{col['prompt']} = %s AND g.{col['seed']} = %s "
        f"AND g.{col['source']} = %s AND NOT g.{col['judge_only']}"
    )
    return _Statement(sql, (g, v))


def rank_images(*, item: Item) -> dict[int, Image]:
    """A ranking item's images by their variant's index, each with its variant loaded (as
    ``Image.objects.filter(study, prompt, seed, source=MODEL, judge_only=False)
    .select_related("variant")``, less the images without a variant: only gold images have
    none). Every ranking answer and ranking page reads it."""
    found = _rank_images_statement(connection.vendor).all(
        [item.study_id, item.prompt_id, item.seed, Image.Source.MODEL.value])
    out: dict[int, Image] = {}
    for image, variant in found:
        image, variant = cast(Image, image), cast(Variant, variant)
        image.variant = variant
        out[variant.index] = image
    return out


@cache
def _showing_statement(vendor: str) -> str:
    """The images an evaluator's task may show, with what picks one of them; parameters: the
    rank task, the model source, the evaluator's id and the task's index, the browser token
    the session keeps for the evaluator. Rows: (the item's task, the entry's positions, the
    file, the image's variant index): a count task's one image, or a ranking's model images."""
    g = {f: _column(Image, f) for f in ("id", "file", "judge_only", "source", "study", "prompt", "seed", "variant")}
    i = {f: _column(Item, f) for f in ("id", "image", "task", "study", "prompt", "seed")}
    e = {f: _column(Entry, f) for f in ("evaluator", "index", "item", "positions")}
    v = {f: _column(Evaluator, f) for f in ("id", "browser")}
    var = {f: _column(Variant, f) for f in ("id", "index")}
    return (
        f"SELECT i.{i['task']}, e.{e['positions']}, g.{g['file']}, var.{var['index']} FROM {_table(Entry)} e "
        f"INNER JOIN {_table(Evaluator)} v ON v.{v['id']} = e.{e['evaluator']} "
        f"INNER JOIN {_table(Item)} i ON i.{i['id']} = e.{e['item']} "
        f"INNER JOIN {_table(Image)} g ON (g.{g['id']} = i.{i['image']} OR (i.{i['task']} = %s "
        f"AND g.{g['study']} = i.{i['study']} AND g.{g['prompt']} = i.{i['prompt']} AND g.{g['seed']} = i.{i['seed']} "
        f"AND g.{g['source']} = %s)) "
        f"LEFT JOIN {_table(Variant)} var ON var.{var['id']} = g.{g['variant']} "
        # Held as selectors._holds says: the browser token this session was given, or none stored.
        f"WHERE e.{e['evaluator']} = %s AND e.{e['index']} = %s AND (v.{v['browser']} = '' OR v.{v['browser']} = %s) "
        f"AND NOT g.{g['judge_only']}"
    )


def showing_image_file(*, evaluator_id: int, browser: str | None, index: int, position: int) -> str | None:
    """The file (under MEDIA_ROOT) of the image at ``position`` on screen of the evaluator's
    task ``index`` (``imagealias.Showing``), when this browser holds the evaluator
    (``browser``: the token the session keeps for it): a count task's image at position 0,
    a ranking's image of the variant its entry puts at ``position``; judge-only images are
    nobody's. One statement, the answer of ``selectors.entry_images(entry=...)[position]``
    for an evaluator ``selectors._holds`` admits; None when there is no such image."""
    with connection.cursor() as cursor:
        cursor.execute(_showing_statement(connection.vendor),
                       [Item.Task.RANK.value, Image.Source.MODEL.value, int(evaluator_id), int(index), browser])
        rows = cursor.fetchall()
    if not rows:
        return None
    if rows[0][0] == Item.Task.COUNT:
        return str(rows[0][2]) if position == 0 else None
    positions = rows[0][1]
    positions = json.loads(positions) if isinstance(positions, str | bytes) else positions
    if not 0 <= position < len(positions):
        return None
    return next((str(file) for _, _, file, variant in rows if variant == positions[position]), None)
