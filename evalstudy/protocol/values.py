"""Checked JSON values for the protocol parser: each returns the value as its type or
raises ProtocolError naming the field (`where`) and what was wrong."""

from __future__ import annotations

import json
from typing import Any, Literal, overload

from .schema import ProtocolError


class NotJSONError(ValueError):
    """A text that is not JSON this reader can take; the message says why (no file name)."""


def json_document(text: str) -> Any:
    """``text`` read as JSON, or NotJSONError. Besides a syntax error (json.JSONDecodeError)
    json.loads fails two more ways on hostile text, both caught here: nesting deeper than
    its parser recurses (RecursionError) and an integer of more digits than Python
    converts (ValueError, sys.get_int_max_str_digits(): 4300 by default)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise NotJSONError("nested too deeply to be read") from None
    except ValueError as exc:  # json.JSONDecodeError is one
        raise NotJSONError(str(exc)) from exc


def _fail(where: str, message: str, code: str | None = None) -> None:
    raise ProtocolError(f"{where}: {message}", code)


def _mapping(d: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
        _fail(where, f"expected an object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    missing = [k for k in required if k not in d]
    if missing:
        _fail(where, f"missing required key(s) {', '.join(map(repr, missing))}")
    return d


# Overloads: a required field parses to its type, an optional one (allow_none=True) may be None.
@overload
def _string(v: Any, where: str, *, allow_none: Literal[False] = False) -> str: ...
@overload
def _string(v: Any, where: str, *, allow_none: bool) -> str | None: ...
def _string(v: Any, where: str, *, allow_none: bool = False) -> str | None:
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or not v.strip():
        _fail(where, f"expected a non-empty string, got {v!r}")
    return v.strip()


def _integer(v: Any, where: str, *, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        _fail(where, f"expected an integer, got {v!r}")
    if lo is not None and v < lo:
        _fail(where, f"must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        _fail(where, f"must be <= {hi}, got {v}")
    return v


@overload
def _number(v: Any, where: str, *, lo: float | None = None, hi: float | None = None,
            allow_none: Literal[False] = False) -> float: ...
@overload
def _number(v: Any, where: str, *, lo: float | None = None, hi: float | None = None,
            allow_none: bool) -> float | None: ...
def _number(v: Any, where: str, *, lo: float | None = None, hi: float | None = None,
            allow_none: bool = False) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        _fail(where, f"expected a number, got {v!r}")
    if lo is not None and v < lo:
        _fail(where, f"must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        _fail(where, f"must be <= {hi}, got {v}")
    return float(v)


def _list(v: Any, where: str, *, nonempty: bool = True) -> list:
    if not isinstance(v, list | tuple):
        _fail(where, f"expected a list, got {type(v).__name__}")
    if nonempty and not v:
        _fail(where, "must not be empty")
    return list(v)


def _article(v: Any, where: str) -> str:
    if v not in ("a", "an"):
        _fail(where, f"article must be 'a' or 'an', got {v!r}")
    return v
