"""Narrowing an Optional in a test: what mypy needs to hear, and what fails the test if it is None."""
from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None) -> T:
    """``value``, which the test expects to exist (a row, a match, an optional section);
    an AssertionError when it is None."""
    assert value is not None
    return value
