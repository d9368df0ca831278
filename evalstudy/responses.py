"""The responses table: one long-format CSV that the web app writes and evalstudy reads.

Rows
----
count task: one row per (evaluator, item); the item is one image of one variant.
    `answer_count` is empty for "can't tell"; `skipped` = 1 means the evaluator
    gave no answer at all (e.g. the image did not load); `rank` is empty.
rank task: one row per (evaluator, item, variant); the item is one caption (and
    seed) shown as one image per variant, m = 2 (pairwise) to 6, or, in a pairs study
    (preference_task.design "pairs"), as the images of the two variants the plan showed
    that evaluator (m = 2, two rows, the pair varying between rankings). `rank` is 1 (best)
    .. m, empty on every row of a skipped item; `position` is the screen position
    0 .. m-1, left to right. Without ties the ranks are a permutation of 1..m; with
    `allow_ties` (the protocol's preference_task.allow_ties) tied images share the
    smallest rank of their group and the next rank skips ("1,2,2,4"; pairwise "about
    the same" is 1,1), checked by evalstudy.ranks.check_ranks.
gold items (is_gold = 1) are count items with a known count and no variant.
repeats: a row whose `repeat_of` names another item of the same evaluator is a
    second showing of that item, used only to measure consistency.
seconds: time on the item, measured by the server from the task's first showing to the
    answer; on a ranking's rows, the time on the whole ranking (the largest value among its
    rows is used).
away_seconds: the part of `seconds` the task page reported its evaluator away (the page
    hidden, or no input for the web app's idle period); seconds - away_seconds is the time
    at work. Empty where it was not measured (a file from elsewhere, a page without scripts
    reports nothing and writes 0). Never more than `seconds`.

Optional columns (`image_id`, `seed`, `auto_count`, `repeat_of`, `away_seconds`) may be
absent from a file; they are then empty.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from .ranks import MALFORMED_TIE, MAX_WIDTH, MIN_WIDTH, TIE_NOT_ALLOWED, RankError, check_ranks

RESPONSE_COLUMNS = (
    "task", "item_id", "evaluator_id", "variant", "prompt", "object", "true_count",
    "answer_count", "rank", "skipped", "skip_reason", "position", "seconds", "is_gold",
    "image_id", "seed", "auto_count", "repeat_of", "away_seconds",
)
REQUIRED_COLUMNS = RESPONSE_COLUMNS[:14]
TASKS = ("count", "rank")
STRING_COLUMNS = ("task", "item_id", "evaluator_id", "variant", "prompt", "object",
                  "skip_reason", "image_id", "repeat_of")
NUMBER_COLUMNS = ("true_count", "answer_count", "rank", "position", "seconds", "seed",
                  "auto_count", "away_seconds")  # float arrays, NaN for empty
FLAG_COLUMNS = ("skipped", "is_gold")
MAX_ERRORS_SHOWN = 20


class ResponseError(ValueError):
    """A responses table that cannot be analysed; `errors` lists every problem found."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        shown = "\n  ".join(self.errors[:MAX_ERRORS_SHOWN])
        more = len(self.errors) - MAX_ERRORS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.errors)} problem(s) in the responses:\n  {shown}{tail}")


@dataclass(frozen=True, eq=False)
class ResponseTable:
    """Columns as numpy arrays of equal length: strings for the text columns, float
    (NaN for empty) for the numbers, bool for `skipped` and `is_gold`."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["task"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def subset(self, mask: np.ndarray) -> ResponseTable:
        return ResponseTable({k: v[mask] for k, v in self.columns.items()})

    def to_rows(self) -> list[dict[str, str]]:
        """The rows as CSV strings: integers without '.0', empty for NaN."""
        out_cols = {}
        for name in RESPONSE_COLUMNS:
            col = self.columns[name]
            if name in NUMBER_COLUMNS:
                out_cols[name] = [_format_number(x) for x in col.tolist()]
            elif name in FLAG_COLUMNS:
                out_cols[name] = ["1" if x else "0" for x in col.tolist()]
            else:
                out_cols[name] = col.tolist()
        return [dict(zip(RESPONSE_COLUMNS, values, strict=True))
                for values in zip(*(out_cols[c] for c in RESPONSE_COLUMNS), strict=True)]

    def write_csv(self, path_or_file: str | Path | TextIO) -> None:
        if isinstance(path_or_file, str | Path):
            with open(path_or_file, "w", newline="", encoding="utf-8") as f:
                self._write(f)
        else:
            self._write(path_or_file)

    def _write(self, f: TextIO) -> None:
        writer = csv.DictWriter(f, fieldnames=RESPONSE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.to_rows())


def _format_number(x: float) -> str:
    if x != x:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


SEEDLESS_LOSS = ("every count image is its own resampling unit, so the variants' images of one "
                 "prompt and seed are not paired and the count task's paired comparisons "
                 "(mean_abs_error and match_ratio differences, Wilcoxon tests) are dropped")


class ResponseWarning(UserWarning):
    """A responses file that can be analysed, but with less than it could give."""


INTEGER = re.compile(r"[+-]?[0-9]+")
INTEGER_COLUMNS = ("true_count", "answer_count", "rank", "position", "seed", "auto_count")


def read_responses(path_or_file: str | Path | Iterable[str], *, variants: Sequence[str] | None = None,
                   allow_ties: bool = False) -> ResponseTable:
    """Read and validate a responses CSV (a path or an open text file).

    Every problem is reported with its line (and column where there is one): a
    duplicated or missing header, a row with fewer or more cells than the header, a
    number that is not an integer where one is required (``1e3``, ``2.5``), a cell
    over csv's field limit, any other csv error. A UTF-8 byte-order mark is accepted.
    With `variants` (the protocol's), a variant not among them is an error, and one
    that differs from them only in case says so. Tied ranks are read only with
    `allow_ties` (pass the protocol's). A file without the optional ``seed`` column gets a
    `ResponseWarning` naming the tests it loses, and so does one whose seed column is empty on
    every count row. Judge-only rows (count rows with no evaluator_id, an auto_count and no
    answer: images read by the automatic judge only) are accepted.
    """
    if isinstance(path_or_file, str | Path):
        with open(path_or_file, newline="", encoding="utf-8-sig") as f:
            return _read(f, str(path_or_file), variants, allow_ties)
    return _read(path_or_file, "responses", variants, allow_ties)


def _read_header(reader: Iterator[list[str]], name: str) -> tuple[list[str], dict[str, int]]:
    """The header's column names (stripped, a BOM dropped) and each one's 1-based column;
    ResponseError on an unreadable, empty or duplicated header, or a required column missing."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ResponseError([f"{name}: line 1: {exc}"]) from None
    if header is None:
        raise ResponseError([f"{name}: empty file, expected a header row"])
    header = [h.strip().lstrip("\ufeff") for h in header]
    errors: list[str] = []
    first_at: dict[str, int] = {}
    for k, h in enumerate(header, start=1):
        if h in first_at:
            errors.append(f"{name}: line 1, column {k}: duplicate column {h!r} "
                          f"(also column {first_at[h]})")
        first_at.setdefault(h, k)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        errors.append(f"{name}: missing column(s) {', '.join(missing)}")
    if errors:
        raise ResponseError(errors)
    return header, first_at


def _read(f: Iterable[str], name: str, variants: Sequence[str] | None, allow_ties: bool) -> ResponseTable:
    reader = csv.reader(f, strict=True)  # a stray quote is an error, not a merged cell
    header, first_at = _read_header(reader, name)
    errors: list[str] = []
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            limit = csv.field_size_limit()
            why = (f"a cell is longer than {limit} characters" if "field larger" in str(exc)
                   else str(exc))
            errors.append(f"{name}: line {reader.line_num}: {why}")
            break
        if not cells:
            continue  # a blank line
        if len(cells) != len(header):
            kind = "truncated row" if len(cells) < len(header) else "extra cells"
            errors.append(f"{name}: line {reader.line_num}: {kind}: {len(cells)} cells, the "
                          f"header has {len(header)}")
            continue
        row = dict(zip(header, cells, strict=True))
        for c in INTEGER_COLUMNS:
            text = row.get(c, "").strip()
            if text and not INTEGER.fullmatch(text):
                errors.append(f"{name}: line {reader.line_num}, column {first_at[c]} ({c}): "
                              f"expected an integer, got {text!r}")
        if variants is not None:
            _check_variant(row.get("variant", "").strip(), variants,
                           f"{name}: line {reader.line_num}, column {first_at['variant']}", errors)
        rows.append(row)
        lines.append(reader.line_num)
    if errors:
        raise ResponseError(errors)
    table = _rows_to_table(rows, [f"line {n}" for n in lines], allow_ties)
    counted = (table["task"] == "count") & ~table["is_gold"]
    if "seed" not in first_at:
        warnings.warn(ResponseWarning("no seed column: " + SEEDLESS_LOSS), stacklevel=2)
    elif counted.any() and not np.isfinite(table["seed"][counted]).any():
        warnings.warn(ResponseWarning("the seed column is empty on every count row: "
                                      + SEEDLESS_LOSS), stacklevel=2)
    return table


def _check_variant(v: str, variants: Sequence[str], at: str, errors: list[str]) -> None:
    if not v or v in variants:
        return
    same = [w for w in variants if w.lower() == v.lower()]
    hint = (f"differs only in case from the protocol's {same[0]!r}" if same
            else f"not one of the protocol's variants {list(variants)}")
    errors.append(f"{at}: variant {v!r} {hint}")


def responses_from_rows(rows: Iterable[Mapping], *, first_line: int | None = None,
                        allow_ties: bool = False) -> ResponseTable:
    """Validate rows (dicts with the RESPONSE_COLUMNS; values as strings or numbers).

    Errors name the row: "line N" when `first_line` is given (CSV input), else
    "row N" counting from 0. Tied ranks are accepted only with `allow_ties`.
    """
    rows = list(rows)
    where = [f"line {first_line + k}" if first_line is not None else f"row {k}"
             for k in range(len(rows))]
    return _rows_to_table(rows, where, allow_ties)


def _rows_to_table(rows: Sequence[Mapping], where: list[str], allow_ties: bool) -> ResponseTable:
    """Parse and validate rows; `where[k]` names row k in messages."""
    errors: list[str] = []
    cols: dict[str, list] = {c: [] for c in RESPONSE_COLUMNS}
    for k, row in enumerate(rows):
        _parse_row(row, where[k], cols, errors)
    if not cols["task"]:
        errors.append("no responses")
    if errors:
        raise ResponseError(errors)
    table = _to_table(cols)
    errors = validate_table(table, where, allow_ties=allow_ties)
    if errors:
        raise ResponseError(errors)
    return table


def _cell(row: Mapping, name: str) -> str:
    v = row.get(name)
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    return str(v).strip()


def _parse_int(text: str, name: str, at: str, errors: list[str], lo: int | None = None,
               hi: int | None = None) -> float:
    if text == "":
        return math.nan
    try:
        x = float(text)
    except ValueError:
        errors.append(f"{at}: {name} must be an integer, got {text!r}")
        return math.nan
    if not x.is_integer():
        errors.append(f"{at}: {name} must be an integer, got {text!r}")
        return math.nan
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        bounds = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        errors.append(f"{at}: {name} must be {bounds}, got {text!r}")
        return math.nan
    return x


def _parse_seconds(text: str, name: str, at: str, errors: list[str]) -> float:
    """A duration cell: empty (NaN) or a number >= 0."""
    if text == "":
        return math.nan
    try:
        x = float(text)
    except ValueError:
        errors.append(f"{at}: {name} must be a number, got {text!r}")
        return math.nan
    if not x >= 0:
        errors.append(f"{at}: {name} must be >= 0, got {text!r}")
        return math.nan
    return x


def _parse_flag(text: str, name: str, at: str, errors: list[str]) -> bool:
    if text in ("0", "1", "False", "True", "false", "true", ""):
        return text in ("1", "True", "true")
    errors.append(f"{at}: {name} must be 0 or 1, got {text!r}")
    return False


def _parse_row(row: Mapping, at: str, cols: dict[str, list], errors: list[str]) -> None:
    cell = {c: _cell(row, c) for c in RESPONSE_COLUMNS}
    task = cell["task"]
    if task not in TASKS:
        errors.append(f"{at}: unknown task {task!r}; expected 'count' or 'rank'")
    if not cell["item_id"]:
        errors.append(f"{at}: item_id is empty")
    if not cell["evaluator_id"] and not _judge_only(cell):
        errors.append(f"{at}: evaluator_id is empty (only a judge-only count row, with an "
                      "auto_count and no answer, has none)")
    for c in STRING_COLUMNS:
        cols[c].append(cell[c])
    cols["true_count"].append(_parse_int(cell["true_count"], "true_count", at, errors, lo=0))
    cols["answer_count"].append(_parse_int(cell["answer_count"], "answer_count", at, errors, lo=0))
    cols["rank"].append(_parse_int(cell["rank"], "rank", at, errors, lo=1))
    cols["position"].append(_parse_int(cell["position"], "position", at, errors, lo=0))
    cols["seed"].append(_parse_int(cell["seed"], "seed", at, errors))
    cols["auto_count"].append(_parse_int(cell["auto_count"], "auto_count", at, errors, lo=0))
    for c in ("seconds", "away_seconds"):
        cols[c].append(_parse_seconds(cell[c], c, at, errors))
    for c in FLAG_COLUMNS:
        cols[c].append(_parse_flag(cell[c], c, at, errors))


def _judge_only(cell: Mapping[str, str]) -> bool:
    """A count image read by the automatic judge only (for the prediction-powered intervals):
    no evaluator, an auto_count, no answer, not gold, not skipped."""
    return (cell["task"] == "count" and bool(cell["auto_count"]) and not cell["answer_count"]
            and cell["is_gold"] in ("", "0", "False", "false")
            and cell["skipped"] in ("", "0", "False", "false"))


def _to_table(cols: dict[str, list]) -> ResponseTable:
    out = {}
    for c in RESPONSE_COLUMNS:
        if c in STRING_COLUMNS:
            out[c] = np.array(cols[c], dtype=str)
        elif c in FLAG_COLUMNS:
            out[c] = np.array(cols[c], dtype=bool)
        else:
            out[c] = np.array(cols[c], dtype=float)
    return ResponseTable(out)


def table_from_columns(columns: Mapping[str, Iterable], *, allow_ties: bool = False) -> ResponseTable:
    """Build and validate a table from column arrays (the simulator's fast path);
    absent optional columns are filled with empties."""
    n = len(np.asarray(columns["task"]))
    out = {}
    for c in RESPONSE_COLUMNS:
        if c in columns:
            col = np.asarray(columns[c])
        elif c in REQUIRED_COLUMNS:
            raise ResponseError([f"missing column {c}"])
        else:
            col = np.full(n, "" if c in STRING_COLUMNS else math.nan)
        if c in STRING_COLUMNS:
            col = col.astype(str)
        elif c in FLAG_COLUMNS:
            col = col.astype(bool)
        else:
            col = col.astype(float)
        if len(col) != n:
            raise ResponseError([f"column {c} has {len(col)} values, expected {n}"])
        out[c] = col
    table = ResponseTable(out)
    errors = validate_table(table, [f"row {k}" for k in range(n)], allow_ties=allow_ties)
    if errors:
        raise ResponseError(errors)
    return table


def validate_table(t: ResponseTable, where: list[str], *, allow_ties: bool = False) -> list[str]:
    """Checks across rows: the shape of each task, duplicates, rankings of 2 to 6
    images (permutations, or competition ranks with ties when `allow_ties`), every ranking
    of the same variants or every ranking of two (a pairs study), item metadata that must
    not change between rows of one item."""
    errors = _number_errors(t, where) + _row_shape_errors(t, where)
    identity_errors, groups = _row_identity_errors(t, where)
    return errors + identity_errors + _ranking_errors(t, where, groups, allow_ties=allow_ties)


# The number columns' rules, the same _parse_row applies to CSV cells: (column, integer, least
# value). NaN is an empty cell; an infinity is never a value.
NUMBER_RULES = (("true_count", True, 0), ("answer_count", True, 0), ("rank", True, 1),
                ("position", True, 0), ("seed", True, None), ("auto_count", True, 0),
                ("seconds", False, 0), ("away_seconds", False, 0))


def _number_errors(t: ResponseTable, where: list[str]) -> list[str]:
    """Each number cell against its column's rule (NUMBER_RULES): columns built from arrays
    (`table_from_columns`) have not been through _parse_row's checks."""
    errors: list[str] = []
    for name, integer, lo in NUMBER_RULES:
        x = t[name]
        given = ~np.isnan(x)
        bad = given & ~np.isfinite(x)
        if integer:
            with np.errstate(invalid="ignore"):
                bad |= given & np.isfinite(x) & (x != np.round(x))
        if lo is not None:
            bad |= given & (x < lo)
        rule = ("an integer" if integer else "a finite number") + (f" >= {lo}" if lo is not None else "")
        for k in np.flatnonzero(bad)[:MAX_ERRORS_SHOWN * 5]:
            errors.append(f"{where[k]}: {name} must be {rule}, got {float(x[k])!r}")
    # Time away is a part of the time on the item: more than all of it is a broken row.
    with np.errstate(invalid="ignore"):
        over = t["away_seconds"] > t["seconds"]
    for k in np.flatnonzero(over)[:MAX_ERRORS_SHOWN * 5]:
        errors.append(f"{where[k]}: away_seconds ({float(t['away_seconds'][k])!r}) is more than "
                      f"seconds ({float(t['seconds'][k])!r}): time away is part of the time on the item")
    return errors


def _row_shape_errors(t: ResponseTable, where: list[str]) -> list[str]:
    """Each row alone: a known task, and the fields its task needs or forbids."""
    errors: list[str] = []
    task = t["task"]
    is_count, is_rank = task == "count", task == "rank"
    for k in np.flatnonzero(~(is_count | is_rank)).tolist():
        errors.append(f"{where[k]}: unknown task {task[k]!r}; expected 'count' or 'rank'")

    def each(mask: NDArray[np.bool_], message: Callable[[int], str]) -> None:
        for k in np.flatnonzero(mask)[:MAX_ERRORS_SHOWN * 5]:
            errors.append(f"{where[k]}: {message(k)}")

    each(is_count & np.isfinite(t["rank"]), lambda k: "a count row has a rank")
    each(is_count & np.isnan(t["true_count"]), lambda k: "a count row needs true_count")
    each(is_count & (t["object"] == ""), lambda k: "a count row needs object")
    each(is_count & (t["variant"] == "") & ~t["is_gold"],
         lambda k: "a count row needs variant (only gold items have none)")
    each(is_count & t["skipped"] & np.isfinite(t["answer_count"]),
         lambda k: "a skipped count row has an answer")
    each(is_rank & np.isfinite(t["answer_count"]), lambda k: "a rank row has answer_count")
    each(is_rank & (t["variant"] == ""), lambda k: "a rank row needs variant")
    each(is_rank & t["is_gold"], lambda k: "gold items are count items")
    each(is_rank & np.isnan(t["position"]), lambda k: "a rank row needs position")
    each(is_rank & t["skipped"] & np.isfinite(t["rank"]), lambda k: "a skipped rank row has a rank")
    each(is_rank & ~t["skipped"] & np.isnan(t["rank"]),
         lambda k: "rank is empty but skipped is 0 (skips are marked skipped=1)")
    return errors


def _row_identity_errors(t: ResponseTable, where: list[str]) -> tuple[list[str], dict[tuple[str, str], list[int]]]:
    """Rows against each other: duplicates, and items described differently in two rows.
    Also returns the rows of each (evaluator, item) ranking, in table order."""
    errors: list[str] = []
    task = t["task"]
    item, ev, var = t["item_id"].tolist(), t["evaluator_id"].tolist(), t["variant"].tolist()
    task_l, obj, prompt = task.tolist(), t["object"].tolist(), t["prompt"].tolist()
    true_count, gold, seed = t["true_count"].tolist(), t["is_gold"].tolist(), t["seed"].tolist()
    rank_l, bad_l = (task == "rank").tolist(), (~((task == "count") | (task == "rank"))).tolist()
    seen: dict[tuple, int] = {}
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    item_meta: dict[str, tuple] = {}
    for k in range(len(t)):
        if bad_l[k]:
            continue
        key = (ev[k], item[k], var[k]) if rank_l[k] else (ev[k], item[k])
        if key in seen:
            what = "(evaluator, item, variant)" if rank_l[k] else "(evaluator, item)"
            errors.append(f"{where[k]}: duplicate {what} {key}, first at {where[seen[key]]}")
        else:
            seen[key] = k
        if rank_l[k]:
            groups[(ev[k], item[k])].append(k)
        meta = ((task_l[k], prompt[k], seed[k]) if rank_l[k]
                else (task_l[k], var[k], obj[k], true_count[k], prompt[k], gold[k], seed[k]))
        first = item_meta.setdefault(item[k], (k, meta))
        if first[1] != meta and not _same_meta(first[1], meta):
            errors.append(f"{where[k]}: item {item[k]!r} is described differently than at "
                          f"{where[first[0]]} (task, variant, object, true_count, prompt, "
                          "is_gold and seed must not change within an item)")
    return errors, groups


def _ranking_errors(t: ResponseTable, where: list[str], groups: dict[tuple[str, str], list[int]], *,
                    allow_ties: bool) -> list[str]:
    """Each ranking whole: skipped on every variant or none, positions and ranks, its
    width; and every ranking over the same variants."""
    errors: list[str] = []
    var = t["variant"].tolist()
    variant_sets = set()
    for (e, i), ks in groups.items():
        m = len(ks)
        at = where[ks[0]]
        skipped = t["skipped"][ks]
        if skipped.any() and not skipped.all():
            errors.append(f"{at}: evaluator {e!r} item {i!r}: skipped on some variants only")
            continue
        pos = t["position"][ks]
        if np.isfinite(pos).all() and sorted(pos.astype(int).tolist()) != list(range(m)):
            errors.append(f"{at}: evaluator {e!r} item {i!r}: positions {sorted(pos.tolist())} "
                          f"are not 0..{m - 1} once each")
        if not MIN_WIDTH <= m <= MAX_WIDTH:
            errors.append(f"{at}: evaluator {e!r} item {i!r}: {m} images ranked together; a "
                          f"ranking orders {MIN_WIDTH} to {MAX_WIDTH}")
        elif not skipped.any():
            r = t["rank"][ks]
            why = _ranks_error(r.astype(int).tolist(), m, allow_ties=allow_ties) if np.isfinite(r).all() else None
            if why is not None:
                shown = ", ".join(map(str, sorted(r.astype(int).tolist())))
                errors.append(f"{at}: evaluator {e!r} item {i!r}: ranks {shown} {why}")
        variant_sets.add(frozenset(var[k] for k in ks))
    # A ranking-design study ranks the same variants every time; a pairs study (preference_task
    # .design "pairs") ranks two of them every time, whichever two its plan showed.
    if len(variant_sets) > 1 and any(len(s) != 2 for s in variant_sets):
        sizes = sorted(sorted(s) for s in variant_sets)
        errors.append(f"rank items show different sets of variants: {sizes[:3]}; every ranking "
                      "must rank the same variants, or, in a pairs study, every ranking two of them")
    return errors


def _ranks_error(ranks: list[int], m: int, *, allow_ties: bool) -> str | None:
    """Why one ranking's ranks are wrong (to follow "ranks 1, 2, 2"), or None when they are right."""
    try:
        check_ranks(ranks, m, allow_ties=allow_ties)
    except RankError as exc:
        if exc.code == TIE_NOT_ALLOWED:
            return f"are not 1..{m} once each (ties need the protocol's preference_task.allow_ties)"
        if exc.code == MALFORMED_TIE:
            return ("are not competition ranks: tied images share the smallest "
                    "rank of their group and the next rank skips (1, 2, 2, 4)")
        return f"are not 1..{m} once each" if not allow_ties else f"are not ranks 1..{m}"
    return None


def _same_meta(a: tuple, b: tuple) -> bool:
    """Tuple equality where NaN equals NaN."""
    return len(a) == len(b) and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)
        for x, y in zip(a, b, strict=True))
