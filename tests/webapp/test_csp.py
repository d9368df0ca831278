"""webapp/csp.py: the policy built once per process is django-csp's own, and a response a view
changed (or one with a nonce) still gets its own policy."""
import pytest
from csp.constants import NONCE
from csp.utils import build_policy
from django.http import HttpResponse
from django.test import Client, RequestFactory

from webapp import csp
from webapp.csp import CSPMiddleware

pytestmark = pytest.mark.django_db


def _directives(policy: str) -> set[str]:
    return {part.strip() for part in policy.split(";") if part.strip()}


def test_a_page_carries_django_csps_policy_built_once(monkeypatch):
    csp._site_policies.cache_clear()
    calls: list[dict] = []
    real = csp.build_policy

    def counting(**kw):
        calls.append(kw)
        return real(**kw)

    monkeypatch.setattr(csp, "build_policy", counting)
    for _ in range(3):
        response = Client().get("/research/login/")
        assert _directives(response["Content-Security-Policy"]) == _directives(build_policy())
    assert len(calls) == 2  # the policy and the report-only one, once for the three pages


def test_the_settings_changed_change_the_policy(settings):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert Client().get("/research/login/")["Content-Security-Policy"] == "default-src 'none'"
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"img-src": ["'none'"]}}
    report_only = Client().get("/research/login/")["Content-Security-Policy-Report-Only"]
    assert "img-src 'none'" in report_only and _directives(report_only) == _directives(build_policy(report_only=True))


def test_a_response_that_changes_its_policy_or_asks_a_nonce_keeps_its_own(settings):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"], "script-src": ["'self'", NONCE]}}
    request = RequestFactory().get("/")
    middleware = CSPMiddleware(lambda r: HttpResponse())
    middleware.process_request(request)
    response = HttpResponse()
    response._csp_update = {"img-src": ["https://example.org"]}  # type: ignore[attr-defined]
    middleware.process_response(request, response)
    assert "https://example.org" in response["Content-Security-Policy"]
    request = RequestFactory().get("/")
    middleware.process_request(request)
    nonce = str(request.csp_nonce)  # type: ignore[attr-defined]
    with_nonce = middleware.process_response(request, HttpResponse())
    assert f"'nonce-{nonce}'" in with_nonce["Content-Security-Policy"]
    exempt = HttpResponse()
    exempt._csp_exempt = True  # type: ignore[attr-defined]
    request = RequestFactory().get("/")
    middleware.process_request(request)
    assert "Content-Security-Policy" not in middleware.process_response(request, exempt)
