"""Backend systems' OAuth2 tokens (client-credentials grant, django-oauth-toolkit).

A client may be granted only the SMART `system/` scopes of its FhirClient row, or narrower ones
(`system/Observation.rs` under `system/*.rs`). An inactive client gets no token: it has no
available scope, so every token request ends in the standard `invalid_scope` error, and the
tokens it already holds stop working. Tokens are stored hashed (RFC 9700 token storage): they
are found by the SHA-256 checksum of the secret, never by the secret itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application
from oauth2_provider.scopes import BaseScopes
from oauth2_provider.settings import oauth2_settings

from apps.accounts.models import Organization
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.interop.models import FhirClient

from .auth import SYSTEM, Caller, Scope, parse_scopes


def _fhir_client(application: Application | None) -> Any:
    """The FhirClient behind an OAuth2 application, if there is one."""
    if application is None:
        return None
    try:
        return application.fhir_client  # type: ignore[attr-defined]
    except Application.fhir_client.RelatedObjectDoesNotExist:  # type: ignore[attr-defined]
        return None


def system_scopes(text: str) -> list[Scope]:
    return [scope for scope in parse_scopes(text) if scope.context == SYSTEM]


def covers(granted: list[Scope], wanted: Scope) -> bool:
    """Whether one of the granted scopes includes every permission of `wanted`."""
    return any(
        scope.resource in ("*", wanted.resource) and wanted.permissions <= scope.permissions
        for scope in granted
    )


class ClientScopesBackend(BaseScopes):
    """Scopes a client may be granted: its FhirClient's allowed scopes (and narrower ones)."""

    def get_all_scopes(self) -> dict[str, str]:
        return dict(oauth2_settings.SCOPES)

    def get_available_scopes(
        self, application: Application | None = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        client = _fhir_client(application)
        if client is None or not client.active:
            return []
        allowed: list[str] = client.allowed_scopes.split()
        granted = system_scopes(client.allowed_scopes)
        # A requested scope that an allowed one covers is available too (SMART narrowing).
        requested = getattr(request, "scopes", None) or []
        for text in requested:
            parsed = system_scopes(text)
            if parsed and covers(granted, parsed[0]) and text not in allowed:
                allowed.append(text)
        return allowed

    def get_default_scopes(
        self, application: Application | None = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        # The allowed scopes even for an inactive client: none of them is available then, so
        # a request without `scope` is refused with invalid_scope instead of an empty token.
        client = _fhir_client(application)
        return [] if client is None else list(client.allowed_scopes.split())


def caller_for_access_token(secret: str) -> Caller | None:
    """The backend system a client-credentials access token stands for (None: not valid)."""
    checksum = hashlib.sha256(secret.encode()).hexdigest()
    token = (
        AccessToken.objects.select_related("application__fhir_client__organization")
        .filter(token_checksum=checksum, user__isnull=True)
        .first()
    )
    if token is None or token.expires is None or token.expires <= timezone.now():
        return None
    client = _fhir_client(token.application)
    if client is None or not client.active:
        return None
    application = token.application
    detail: dict[str, Any] = {"client_id": application.client_id}
    if client.organization is not None:
        detail["organization"] = client.organization.gln
    return Caller(
        SYSTEM,
        None,
        tuple(system_scopes(token.scope)),
        f"client:{application.name or application.client_id}",
        detail,
    )


def check_client_scopes(text: str) -> str:
    """Normalised allowed scopes; raise ValueError unless every one is a SMART system/ scope."""
    scopes = text.split()
    if not scopes:
        raise ValueError("Give at least one scope, e.g. system/*.rs.")
    wrong = [scope for scope in scopes if not system_scopes(scope)]
    if wrong:
        raise ValueError(
            f"Not SMART system scopes: {', '.join(wrong)} (e.g. system/*.rs, "
            "system/Patient.cruds, system/Observation.read)."
        )
    return " ".join(dict.fromkeys(scopes))


def new_client_application(name: str) -> tuple[Application, str]:
    """A confidential OAuth2 application for the client-credentials grant, and its secret."""
    secret = generate_client_secret()
    application = Application.objects.create(
        name=name,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=True,  # only the hash is stored; the secret is shown once
    )
    return application, secret


def audit_client_secret(
    client: FhirClient, what: str, *, request: HttpRequest | None = None
) -> None:
    audit(
        Action.TOKEN_ISSUED,
        request=request,
        obj=client,
        detail={"what": what, "client": str(client), "scopes": client.allowed_scopes},
    )


@transaction.atomic
def do_create_fhir_client(
    name: str,
    scopes: str,
    *,
    organization: Organization | None = None,
    request: HttpRequest | None = None,
) -> tuple[FhirClient, str]:
    """A backend client and its secret, returned this once (only its hash is stored)."""
    allowed = check_client_scopes(scopes)
    application, secret = new_client_application(name)
    client = FhirClient.objects.create(
        application=application, allowed_scopes=allowed, organization=organization
    )
    audit_client_secret(client, "fhir-client-created", request=request)
    return client, secret


@transaction.atomic
def do_reset_client_secret(client: FhirClient, *, request: HttpRequest | None = None) -> str:
    """A new secret for the client (shown once); the old one stops working at once."""
    secret = generate_client_secret()
    application = client.application
    application.client_secret = secret
    application.hash_client_secret = True
    application.save(update_fields=["client_secret", "hash_client_secret", "updated"])
    audit_client_secret(client, "fhir-client-secret-reset", request=request)
    return secret


@transaction.atomic
def do_deactivate_fhir_client(client: FhirClient, *, request: HttpRequest | None = None) -> int:
    """Stop the client: no new token, and its tokens revoked; returns how many were."""
    # Revoked, not merely refused, so that reactivating the client later does not revive them.
    FhirClient.objects.filter(pk=client.pk).update(active=False)
    client.active = False
    revoked, _by_model = AccessToken.objects.filter(application=client.application).delete()
    audit(
        Action.TOKEN_REVOKED,
        request=request,
        obj=client,
        detail={"what": "fhir-client-deactivated", "client": str(client), "tokens": revoked},
    )
    return revoked
