"""Holding a JSON document to the TypedDict it is declared as, and a script's reads of it
to the same type (progress.json and dashboard.js, a batch's progress.json and batch.js)."""
from __future__ import annotations

import typing


def assert_typed(doc: dict, cls, where: str) -> None:
    """`doc` has exactly `cls`'s keys, recursively where a value is itself a TypedDict."""
    hints = typing.get_type_hints(cls)
    assert set(doc) == set(hints), (where, set(doc) ^ set(hints))
    for key, hint in hints.items():
        if typing.is_typeddict(hint):
            assert_typed(doc[key], hint, f"{where}.{key}")


def typed_paths(cls, prefix: tuple = ()) -> dict[tuple, bool]:
    """Every key path of the typed document, each marked True where a typed dict goes on
    under it (a dict of TypedDicts by name goes on under any name: "*")."""
    out: dict[tuple, bool] = {}
    for key, hint in typing.get_type_hints(cls).items():
        path = (*prefix, key)
        args = typing.get_args(hint)
        if typing.is_typeddict(hint):
            out[path] = True
            out.update(typed_paths(hint, path))
        elif typing.get_origin(hint) is dict and args and typing.is_typeddict(args[1]):
            out[path] = True
            out.update(typed_paths(args[1], (*path, "*")))
            out[(*path, "*")] = True
        else:
            out[path] = False
    return out


def assert_reads_typed(reads: list[tuple], cls) -> None:
    """Each key path a script reads is a path of `cls`, as far as the type goes: a plain
    value (or a list) ends it, what follows (``.toFixed``, ``.forEach``) is JavaScript's."""
    typed = typed_paths(cls)
    for path in reads:
        at: tuple = ()
        for key in path:
            step = (*at, key) if (*at, key) in typed else (*at, "*")
            assert step in typed, (path, f"is not in {cls.__name__}")
            at = step
            if not typed[at]:
                break
