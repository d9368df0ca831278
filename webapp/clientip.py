"""The address a request came from, as the rate limits and the login lock-out count it."""
from __future__ import annotations

import ipaddress

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


def client_network(request: HttpRequest) -> str:
    """The client's address as one person holds it: an IPv4 address as it is (an IPv4-mapped
    IPv6 one as its IPv4 address), an IPv6 address as its network of
    ``RATELIMIT_IPV6_MASK`` bits (django-ratelimit's setting, 64 by default), as the rate
    limits count it. A home line or a server gets a whole /64: counted by the full address,
    one client would be 2^64 "addresses". What is not an address is returned as it is."""
    raw = client_ip(request)
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        mask = int(getattr(settings, "RATELIMIT_IPV6_MASK", 64))
        return str(ipaddress.ip_network(f"{address}/{mask}", strict=False))
    return str(address)
