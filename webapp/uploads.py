"""A size cap on a view's file uploads, enforced while the request body arrives.

Django spools an uploaded file larger than FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file
(FILE_UPLOAD_TEMP_DIR, /tmp by default) as it reads the body, and a view sees the file's
size only once all of it is there: a cap checked in the view let a 50 GB upload fill the
disk first. ``upload_cap`` installs ``CappedUploadHandler`` ahead of Django's own handlers
on the views that take files: it counts the files' bytes as they stream in, and past the
cap stops the upload (StopUpload), so at most the cap's worth is ever written, and what
was written is deleted at once. The rest of the body is read and dropped (not stored), so
that the browser gets the page that says why rather than a reset connection.

Upload handlers must be changed before anything reads ``request.POST``, and Django's CSRF
middleware reads it before the view: a capped view is exempted from the middleware's check
and checked by ``csrf_protect`` inside, once the handler is in place (as Django's
documentation on upload handlers says).

Every other view takes no file at all, yet Django parses a multipart body for any POST whose
view the CSRF middleware checks (it reads the token from ``request.POST``), and spooled its
files whole, before refusing the request: a visitor with a cookie of their own making filled
the disk through the login page. ``NoFilesUploadHandler`` (first in FILE_UPLOAD_HANDLERS)
skips every file's data everywhere; ``upload_cap`` replaces it with the view's own cap, and
only for a visitor the view would take the upload from (``may_upload``): the gate is the
session's user, read before the body, so an anonymous or unentitled visitor never has a byte
of a file written (the view then refuses them as it always did).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from django import forms
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopUpload
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect


class CappedUploadHandler(FileUploadHandler):
    """Passes the request's file data on to the next handler until, all files together,
    it exceeds ``limit`` bytes; then stops the upload and records that it did."""

    def __init__(self, request: HttpRequest | None, *, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.stopped = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.stopped = True
            # Not a reset connection: the parser reads the rest of the body and drops it,
            # and the view answers with the reason.
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) makes the file


class NoFilesUploadHandler(FileUploadHandler):
    """The default (FILE_UPLOAD_HANDLERS): every file part is skipped unread (SkipFile), so
    none of its bytes is kept, and the form's other fields, after it as before it, still
    arrive. ``upload_cap`` puts its own handler in its place on the views that take files."""

    def new_file(self, *args: object, **kwargs: object) -> None:
        raise SkipFile()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        return None  # never called: the parser skips a file whose new_file raised SkipFile

    def file_complete(self, file_size: int) -> None:
        return None


def too_large_message(limit: int) -> str:
    return f"The upload is larger than the {limit:,} bytes allowed; nothing was kept."


F = TypeVar("F", bound=forms.Form)


def refused_form(form: F, *, field: str, limit: int) -> F:
    """``form``, bound to the request's other fields (what was typed is shown again), with
    ``field``'s error saying the upload went past ``limit``: the file never arrived, so the
    form's own "required" is replaced by why."""
    form.is_valid()
    form.errors[field] = form.error_class([too_large_message(limit)])
    return form


def upload_refused(request: HttpRequest) -> int | None:
    """The cap a capped view's upload went past (nothing of it was kept), None when it did not.
    Reading it parses the body, as ``request.POST`` does."""
    request.POST  # noqa: B018  (the body is parsed, and the handler run, on first access)
    for handler in request.upload_handlers:
        if isinstance(handler, CappedUploadHandler) and handler.stopped:
            return handler.limit
    return None


def upload_cap(limit: Callable[[], int], *, may_upload: Callable[[HttpRequest], bool]
               ) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a view that takes file uploads: at most ``limit()`` bytes of files per
    request (read when the request comes, so a setting changed in a test applies), from a
    visitor ``may_upload`` admits (checked from the session, before the body is read; anyone
    else's files are dropped unread, and the view refuses them as before). The view asks
    ``upload_refused(request)`` before its form reads the files. Outermost, above every
    decorator that may read ``request.POST``."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        checked = csrf_protect(view)

        @csrf_exempt
        @wraps(view)
        def capped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:

            first: FileUploadHandler = (CappedUploadHandler(request, limit=limit()) if may_upload(request)
                                        else NoFilesUploadHandler(request))
            others = [h for h in request.upload_handlers
                      if not isinstance(h, CappedUploadHandler | NoFilesUploadHandler)]
            request.upload_handlers = [first, *others]
            return checked(request, *args, **kwargs)

        return capped

    return decorator
