"""The base of the result's records: plain values when made, the JSON document, and
reading it back (see `evalstudy.analysis.result`)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar, Union, get_args, get_origin

import numpy as np

R = TypeVar("R", bound="Record")
D = TypeVar("D")  # any dataclass


class SchemaError(ValueError):
    """A stored result that this evalstudy cannot read (another schema version, a missing field)."""


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------

def jsonable(x: Any) -> Any:
    """Plain Python containers and numbers; NaN and infinities become None."""
    return _plain(x, records=False)


def _plain(x: Any, records: bool) -> Any:
    """`jsonable`, except that with `records` a dataclass instance is kept as it is."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        if records:
            return x
        return {f.name: _plain(getattr(x, f.name), records) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _plain(v, records) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v, records) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist(), records)
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def _convert(tp: Any, value: Any, where: str) -> Any:
    """`value` (JSON) as type `tp`: dataclasses built, containers converted; a record
    already built is kept."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where) if len(args) == 1 else value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is list:
        (arg,) = get_args(tp)
        return [_convert(arg, v, f"{where}[{k}]") for k, v in enumerate(value)]
    if origin is dict:
        _, arg = get_args(tp)
        return {k: _convert(arg, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int | float):
        return float(value)
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The class's resolved field types, looked up once per class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type[D], d: dict, where: str) -> D:
    hints = _hints(cls)
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # D is a dataclass by use
        if f.name in d:
            kwargs[f.name] = _convert(hints[f.name], d[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{where}: missing field {f.name!r}")
    return cls(**kwargs)


@dataclass(frozen=True)
class Record:
    """Base of every record: plain values (see the module's docstring), and serialization."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            plain = _convert(hints[f.name], _plain(value, records=True), f"{type(self).__name__}.{f.name}")
            if plain is not value:
                object.__setattr__(self, f.name, plain)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: plain containers, None for undefined numbers."""
        out: dict[str, Any] = jsonable(self)
        return out

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        return _build(cls, d, cls.__name__)
