"""Client address of a request, trusting X-Forwarded-For only through configured proxies."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip_from(
    remote_addr: str | None, forwarded_for: str | None, proxy_count: int
) -> str | None:
    """The address the nearest untrusted hop connected from.

    With N trusted proxies in front of the app, the client is the N-th address from the right
    of X-Forwarded-For; any address further left was written by the client and is ignored.
    """
    candidate = remote_addr
    if proxy_count > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if len(hops) >= proxy_count:
            candidate = hops[-proxy_count]
    if not candidate:
        return None
    try:
        return str(ipaddress.ip_address(candidate.strip("[]")))
    except ValueError:
        return None


def get_client_ip(request: HttpRequest) -> str | None:
    return client_ip_from(
        request.META.get("REMOTE_ADDR"),
        request.headers.get("x-forwarded-for"),
        settings.TRUSTED_PROXY_COUNT,
    )


def get_user_agent(request: HttpRequest) -> str:
    return request.headers.get("user-agent", "")[:300]
