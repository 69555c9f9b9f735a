from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from .services import authenticate_token


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer vh_…` with a token from `manage.py issue_token` or the admin."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(_("Malformed Authorization header."))
        result = authenticate_token(parts[1].decode("ascii", errors="replace"))
        if result is None:
            raise AuthenticationFailed(_("Invalid, expired or revoked token."))
        return result

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
