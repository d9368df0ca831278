"""The `slow` marker for tests that CI leaves out: they run with FUSION_SLOW_TESTS=1 (`make test-slow`).

pyproject.toml lists the marker; docs/development.md lists the tests it marks and when to run them.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., object])


def slow_unless_asked(why: str) -> Callable[[F], F]:
    """Mark a test `slow` and skip it unless FUSION_SLOW_TESTS is set; ``why`` says what makes it long."""
    def mark(test: F) -> F:
        asked = bool(os.environ.get("FUSION_SLOW_TESTS"))
        skipped = pytest.mark.skipif(not asked, reason=f"{why}; FUSION_SLOW_TESTS=1 runs it")
        return pytest.mark.slow(skipped(test))
    return mark
