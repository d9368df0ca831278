"""Static file finders that answer "not found" for a path outside the static roots.

Django's own finders raise SuspiciousFileOperation for ``/static/../webapp/settings.py``
(``safe_join`` refuses to leave the root), and the static handler that ``runserver``
uses in the demo (``--insecure``) and in development turns only Http404 into a
response: the exception became a 500. Nothing leaked, but a path that names no static
file is a 404 like any other. In production the proxy serves ``STATIC_ROOT`` itself.
"""
from __future__ import annotations

from typing import Any, Literal, overload

from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation


class _StayInside:
    # The two modes of Django's finders' find(): the first match, or all of them.
    @overload
    def find(self, path: str, find_all: Literal[False] = False) -> str | None: ...
    @overload
    def find(self, path: str, find_all: Literal[True]) -> list[str]: ...

    def find(self, path: str, *args: Any, **kwargs: Any) -> str | list[str] | None:  # Any: find()'s, passed on
        try:
            return super().find(path, *args, **kwargs)  # type: ignore[misc]
        except SuspiciousFileOperation:
            return []  # falsy in both of find()'s modes: "first match" and "all matches"


class FileSystemFinder(_StayInside, finders.FileSystemFinder):
    """STATICFILES_DIRS, with paths outside them not found."""


class AppDirectoriesFinder(_StayInside, finders.AppDirectoriesFinder):
    """Each app's static/ folder, with paths outside it not found."""
