"""Demo data of the interop app: a backend FHIR client for trying the API."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from apps.accounts.models import Organization

from .fhir_api.oauth import do_create_fhir_client, do_reset_client_secret
from .models import FhirClient

DEMO_CLIENT = "Demo HIS"
DEMO_SCOPES = "system/*.rs system/Patient.cruds system/Observation.cruds system/Condition.cruds"


def seed_fhir_demo() -> FhirClient:
    """The demo backend client, created once; its secret is never printed."""
    # Whoever needs the secret resets it: manage.py create_fhir_client "Demo HIS" --reset-secret
    existing = FhirClient.objects.filter(application__name=DEMO_CLIENT).first()
    if existing is not None:
        return existing
    organization = Organization.objects.order_by("pk").first()
    client, _secret = do_create_fhir_client(DEMO_CLIENT, DEMO_SCOPES, organization=organization)
    return client


def seed(context: dict[str, Any]) -> None:
    """The demo backend client with a fresh secret, listed with the demo logins."""
    # A demo secret is reset at each seed (stored hashed, it cannot be shown again otherwise).
    client = seed_fhir_demo()
    secret = do_reset_client_secret(client)
    context["logins"].append(
        {
            "role": gettext("FHIR backend client (id and secret for /o/token/)"),
            "email": client.application.client_id,
            "password": secret,
        }
    )
