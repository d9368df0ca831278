"""The address a request came from, as the rate limits and the login lock-out count it."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind a proxy the header it sets.

    ``FUSION_CLIENT_IP_HEADER`` names the META key. For ``HTTP_X_FORWARDED_FOR`` the last
    address is taken: it is the one the trusted proxy added, where earlier ones are
    whatever the client chose to send.
    """
    key = settings.FUSION_CLIENT_IP_HEADER
    value = request.META.get(key, "") or request.META.get("REMOTE_ADDR", "")
    if key == "HTTP_X_FORWARDED_FOR":
        value = value.split(",")[-1]
    return value.strip()
