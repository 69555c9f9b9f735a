from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .models import ApiToken
from .twofactor import request_satisfies_second_factor


class IsVerifiedUser(BasePermission):
    """Signed in, and — through a session — with the second factor when the account needs it.

    A bearer token is itself a credential issued by an administrator; it needs no session.
    """

    message = "Two-factor verification is required for this account."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if isinstance(request.auth, ApiToken):
            return True
        return request_satisfies_second_factor(request._request)
