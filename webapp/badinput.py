"""Requests that carry a NUL character are refused with the site's 400 page, before any view.

PostgreSQL's text columns cannot hold NUL (psycopg raises ``DataError``), so a NUL in an
invite token, an image id, a panel's study or session id or a session cookie used to end in
a 500 and a traceback in the log (SQLite stores or matches it quietly, which hid it in the
demo). No address, query value or cookie of this site has a use for one: a form's text
fields refuse it already (Django's ``ProhibitNullCharactersValidator``), and this refuses it
everywhere else, first, so that nothing is read or written for such a request.
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

NUL = "\x00"
MESSAGE = "The address or a cookie holds a character that is not allowed (NUL)."


def _carries_nul(request: HttpRequest) -> bool:
    if NUL in request.path:
        return True
    for key, values in request.GET.lists():
        if NUL in key or any(NUL in v for v in values):
            return True
    return any(NUL in k or NUL in v for k, v in request.COOKIES.items())


class NulByteMiddleware:
    """The site's plain 400 page, saying why, for a request whose path, query string or
    cookies hold a NUL character."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _carries_nul(request):
            return render(request, "400.html", {"message": MESSAGE}, status=400)
        return self.get_response(request)
