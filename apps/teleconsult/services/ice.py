"""ICE servers for the browsers: STUN, and TURN with short-lived credentials.

TURN credentials follow coturn's REST-API shared-secret scheme (`use-auth-secret` and
`static-auth-secret` in turnserver.conf): the username is `<expiry unix time>:<id>` and the
password is base64(HMAC-SHA1(secret, username)). coturn checks both without a database, and a
leaked credential stops working at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings


def turn_credentials(who: str, *, now: float | None = None) -> tuple[str, str]:
    """The (username, credential) pair for `who` (an opaque id, never a name)."""
    secret = settings.TURN_SECRET or ""
    expiry = int(now if now is not None else time.time()) + settings.TURN_CREDENTIAL_SECONDS
    username = f"{expiry}:{who}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(who: str) -> list[dict[str, Any]]:
    """The `iceServers` of an RTCPeerConnection for `who`; empty: direct connections only."""
    servers: list[dict[str, Any]] = []
    if settings.STUN_URLS:
        servers.append({"urls": list(settings.STUN_URLS)})
    if settings.TURN_URLS:
        username, credential = turn_credentials(who)
        servers.append(
            {"urls": list(settings.TURN_URLS), "username": username, "credential": credential}
        )
    return servers
