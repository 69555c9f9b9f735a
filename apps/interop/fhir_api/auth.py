"""Who is calling the FHIR API, and what their SMART scopes let them do.

Bearer tokens only (no session cookies, so no CSRF). Scopes follow SMART App Launch v2
(`patient/Observation.rs`, `user/*.cruds`, `system/*.rs`) and accept the v1 forms
(`patient/*.read`, `user/Observation.write`).

- a patient's token sees that patient's compartment only (`patient/` scopes);
- a staff member's token sees what that person may see in the portal (`user/` scopes);
- a backend system (OAuth2 client credentials) sees everything its `system/` scopes name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from apps.accounts.models import User
from apps.accounts.services import authenticate_token

from .errors import FhirHttpError

PATIENT = "patient"
USER = "user"
SYSTEM = "system"

SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(\*|read|write|[cruds]+)$")
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class Scope:
    context: str
    resource: str
    permissions: frozenset[str]

    def allows(self, resource: str, permission: str) -> bool:
        return self.resource in ("*", resource) and permission in self.permissions


def parse_scopes(scopes: list[str] | str) -> list[Scope]:
    """The SMART scopes among `scopes` (others such as `api` or `openid` are ignored)."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    parsed = []
    for text in scopes:
        match = SCOPE.match(text.strip())
        if match:
            context, resource, perms = match.groups()
            parsed.append(Scope(context, resource, frozenset(V1.get(perms, perms))))
    return parsed


@dataclass(frozen=True)
class Caller:
    kind: str  # PATIENT, USER or SYSTEM
    user: User | None
    scopes: tuple[Scope, ...]
    label: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable identity that owns things (export jobs): 'user:<pk>' or 'client:<id>'."""
        if self.kind != SYSTEM and self.user is not None:
            return f"user:{self.user.pk}"
        return f"client:{self.detail.get('client_id', '')}"

    def can(self, resource: str, permission: str) -> bool:
        return any(
            scope.context == self.kind and scope.allows(resource, permission)
            for scope in self.scopes
        )

    def require(self, resource: str, permission: str) -> None:
        if not self.can(resource, permission):
            raise FhirHttpError(
                403,
                f"The token's scopes do not allow '{permission}' on {resource} "
                f"(a {self.kind}/{resource}.{permission} scope is needed).",
                code="forbidden",
            )


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise FhirHttpError(
            401,
            "Authentication required: send 'Authorization: Bearer <token>'.",
            code="login",
            headers={"WWW-Authenticate": 'Bearer realm="fhir"'},
        )
    return secret.strip()


def _invalid_token() -> FhirHttpError:
    return FhirHttpError(
        401,
        "The bearer token is unknown, expired or revoked.",
        code="login",
        headers={"WWW-Authenticate": 'Bearer realm="fhir", error="invalid_token"'},
    )


def authenticate(request: HttpRequest) -> Caller:
    secret = _bearer(request)
    found = authenticate_token(secret)
    if found is not None:
        user, token = found
        if not user.is_active:
            raise _invalid_token()
        kind = PATIENT if user.is_patient else USER
        scopes = tuple(scope for scope in parse_scopes(token.scopes) if scope.context == kind)
        return Caller(kind, user, scopes, user.email, {"token": token.prefix})
    client = authenticate_client_token(secret)
    if client is not None:
        return client
    raise _invalid_token()


def authenticate_client_token(secret: str) -> Caller | None:
    """A backend system's OAuth2 access token (client-credentials grant), if it is one."""
    from .oauth import caller_for_access_token

    return caller_for_access_token(secret)
