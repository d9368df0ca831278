"""django-csp's middleware with the site's policy built once per process, not per response.

django-csp builds the Content-Security-Policy header from the settings on every response
(about 0.1 ms of CPU each, twice: the policy and the report-only one), although it changes
only when a view changes it for its own response (django-csp's ``csp_update`` /
``csp_replace`` / ``csp_override`` decorators) or a nonce was asked for. Such a response
still goes through django-csp as it is; every other gets the policy built once for the
settings as they are (keyed by their text, so a test that overrides the settings gets its
own policy).
"""
from __future__ import annotations

from functools import lru_cache
from http import client as http_client

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

# What a view or a decorator sets on its response (or request) to change the policy.
_PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")


@lru_cache(maxsize=8)
def _site_policies(settings_text: str) -> tuple[str, str]:
    """(the policy, the report-only policy) of the settings whose text is ``settings_text``."""
    return build_policy(), build_policy(report_only=True)


class CSPMiddleware(DjangoCSPMiddleware):
    """``csp.middleware.CSPMiddleware``, with the policy of a response that nothing changed
    built once per process."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in _PER_RESPONSE
        ):
            return super().process_response(request, response)
        if response.status_code in (http_client.INTERNAL_SERVER_ERROR, http_client.NOT_FOUND) and settings.DEBUG:
            return response  # Django's debug pages, as django-csp leaves them
        config = getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}
        config_ro = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None) or {}
        policy, policy_ro = _site_policies(repr((config, config_ro)))
        for header, value, conf, exempt in ((HEADER, policy, config, "_csp_exempt"),
                                            (HEADER_REPORT_ONLY, policy_ro, config_ro, "_csp_exempt_ro")):
            prefixes = tuple(conf.get("EXCLUDE_URL_PREFIXES", None) or ())
            if (value and header not in response and getattr(response, exempt, False) is False
                    and not request.path_info.startswith(prefixes)):
                response[header] = value
        # As django-csp: a nonce asked for after the header is written is an error, not a silent gap.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response
