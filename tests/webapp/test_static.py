"""Static files as the demo's server (runserver --insecure) and development serve them."""
from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory, override_settings

# The WSGI handler's request signals close old database connections: allowed, not needed.
pytestmark = pytest.mark.django_db

TRAVERSALS = [
    "/static/../webapp/settings.py",
    "/static/../../manage.py",
    "/static/%2e%2e/%2e%2e/manage.py",
    "/static/%2E%2E/webapp/settings.py",
    "/static/studies/../../../../etc/passwd",
    "/static/..%2f..%2fmanage.py",
    "/static//etc/passwd",
]


def _status(url: str) -> int:
    """The status the static handler that runserver wraps around the site answers with."""
    environ = RequestFactory().get("/").environ
    environ["PATH_INFO"] = unquote(url)  # what a WSGI server hands on: the path, percent-decoded
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])

    StaticFilesHandler(WSGIHandler())(environ, start_response)
    return seen["status"]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("url", TRAVERSALS)
def test_a_path_outside_the_static_roots_is_a_404(url, debug):
    with override_settings(DEBUG=debug):
        assert _status(url) == 404


def test_static_files_are_still_served():
    assert _status("/static/studies/tasks.js") == 200
