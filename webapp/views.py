"""Site-wide pages: the front page, and error pages with the same plain words whatever went
wrong, nothing of the server.

An evaluator who lands on one of them has usually lost their session or followed an old
link; the invite link brings them back to where they stopped.
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe


def wants_json(request: HttpRequest) -> bool:
    """Whether the client asked for JSON (the task script does): errors answer in its form."""
    return "application/json" in request.headers.get("Accept", "")


RATE_LIMITED_MESSAGE = "Too many requests from here in a short time. Wait a minute, then try again."


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """The site's root: where to go from here, the same page for everyone. It names no study
    and no invite link (an evaluator enters by the invite link alone)."""
    return render(request, "index.html")


def too_many_requests(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """429 for a request over a rate limit (django-ratelimit's RATELIMIT_VIEW)."""
    if wants_json(request):
        error = {"code": "rate_limited", "message": RATE_LIMITED_MESSAGE}
        return JsonResponse({"ok": False, "error": error}, status=429)
    response = render(request, "429.html", {"message": RATE_LIMITED_MESSAGE}, status=429)
    response["Retry-After"] = "60"
    return response


BAD_REQUEST_MESSAGE = "This request could not be understood (too many fields, or a malformed form). Reload the page."


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 for a request Django refuses before any view (handler400: too many form fields, a
    malformed multipart body, a bad Host): the JSON error the task script reads when it asked
    for JSON, the site's plain page otherwise; neither names the reason's details."""
    if wants_json(request):
        return JsonResponse({"ok": False, "error": {"code": "bad_request", "message": BAD_REQUEST_MESSAGE}},
                            status=400)
    return render(request, "400.html", status=400)


CSRF_MESSAGE = "This page had expired. Go back, reload it, and send it again."


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 for a form sent without a valid CSRF token (CSRF_FAILURE_VIEW): the site's plain
    page, or the JSON error the task script reads, instead of Django's own page, which speaks
    of DEBUG and reasons to a participant whose page had merely expired."""
    if wants_json(request):
        return JsonResponse({"ok": False, "error": {"code": "csrf", "message": CSRF_MESSAGE}}, status=403)
    return render(request, "403.html", {"message": CSRF_MESSAGE}, status=403)
