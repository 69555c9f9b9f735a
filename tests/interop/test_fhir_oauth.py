"""Backend systems: OAuth2 client-credentials tokens for the FHIR API."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.interop.demo import DEMO_CLIENT, seed_fhir_demo
from apps.interop.fhir_api.oauth import caller_for_access_token, do_create_fhir_client
from apps.interop.models import FhirClient
from apps.records.models import Patient
from tests.conftest import PASSWORD, verified_client

ALLOWED = "system/*.rs system/Observation.cruds"


@pytest.fixture
def backend(db: None) -> tuple[FhirClient, str]:
    return do_create_fhir_client("Test HIS", ALLOWED)


def basic(client: FhirClient, secret: str) -> str:
    pair = f"{client.application.client_id}:{secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def request_token(client: FhirClient, secret: str, scope: str | None = None) -> Any:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return Client().post("/o/token/", data, HTTP_AUTHORIZATION=basic(client, secret))


def bearer(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/fhir+json")


def test_token_through_basic_auth_reads_with_its_scope(
    backend: tuple[FhirClient, str], record: Patient
) -> None:
    # given
    client, secret = backend
    # when
    response = request_token(client, secret, "system/*.rs")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "system/*.rs"
    api = bearer(body["access_token"])
    bundle = api.get("/fhir/Patient").json()
    assert bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == str(record.fhir_id)
    event = AuditEvent.objects.filter(object_type="fhir.Patient").latest("seq")
    assert event.actor_id is None and event.detail["caller"] == "client:Test HIS"


def test_token_without_scope_gets_the_allowed_ones(backend: tuple[FhirClient, str]) -> None:
    client, secret = backend
    response = request_token(client, secret)
    assert response.status_code == 200
    assert set(response.json()["scope"].split()) == set(ALLOWED.split())


def test_narrower_scope_is_granted_and_limits_the_token(
    backend: tuple[FhirClient, str], record: Patient
) -> None:
    client, secret = backend
    response = request_token(client, secret, "system/Observation.rs")
    assert response.status_code == 200 and response.json()["scope"] == "system/Observation.rs"
    api = bearer(response.json()["access_token"])
    assert api.get("/fhir/Observation").status_code == 200
    refused = api.get("/fhir/Patient")
    assert refused.status_code == 403
    assert "system/Patient" in refused.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "scope", ["system/*.cruds", "system/Patient.c", "user/*.rs", "patient/*.rs", "openid"]
)
def test_scope_beyond_the_allowed_is_invalid_scope(
    backend: tuple[FhirClient, str], scope: str
) -> None:
    client, secret = backend
    response = request_token(client, secret, f"system/*.rs {scope}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert not AccessToken.objects.exists()


def test_wrong_secret_is_invalid_client(backend: tuple[FhirClient, str]) -> None:
    client, _secret = backend
    response = request_token(client, "not-the-secret", "system/*.rs")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_other_grants_are_refused(backend: tuple[FhirClient, str], admin_user: User) -> None:
    # given real credentials of a person, so only the grant type can be the reason
    client, secret = backend
    response = Client().post(
        "/o/token/",
        {"grant_type": "password", "username": admin_user.email, "password": PASSWORD},
        HTTP_AUTHORIZATION=basic(client, secret),
    )
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("unauthorized_client", "unsupported_grant_type")
    assert not AccessToken.objects.exists()


def test_inactive_client_gets_no_token_and_its_tokens_stop_working(
    backend: tuple[FhirClient, str],
) -> None:
    # given a token obtained while the client was active
    client, secret = backend
    token = request_token(client, secret, "system/*.rs").json()["access_token"]
    assert bearer(token).get("/fhir/Patient").status_code == 200
    # when the client is deactivated
    FhirClient.objects.filter(pk=client.pk).update(active=False)
    # then
    refused = request_token(client, secret, "system/*.rs")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert request_token(client, secret).status_code == 400
    response = bearer(token).get("/fhir/Patient")
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


def test_revoked_token_is_401(backend: tuple[FhirClient, str]) -> None:
    client, secret = backend
    token = request_token(client, secret, "system/*.rs").json()["access_token"]
    assert bearer(token).get("/fhir/Patient").status_code == 200
    revoked = Client().post(
        "/o/revoke_token/",
        {"token": token, "token_type_hint": "access_token"},
        HTTP_AUTHORIZATION=basic(client, secret),
    )
    assert revoked.status_code == 200
    response = bearer(token).get("/fhir/Patient")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_expired_token_is_401(backend: tuple[FhirClient, str]) -> None:
    client, secret = backend
    token = request_token(client, secret, "system/*.rs").json()["access_token"]
    AccessToken.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
    assert bearer(token).get("/fhir/Patient").status_code == 401


def test_tokens_are_stored_hashed(backend: tuple[FhirClient, str]) -> None:
    client, secret = backend
    token = request_token(client, secret, "system/*.rs").json()["access_token"]
    stored = AccessToken.objects.get()
    assert stored.token != token and token not in stored.token_checksum


def test_caller_is_the_client(backend: tuple[FhirClient, str]) -> None:
    client, secret = backend
    token = request_token(client, secret, "system/Observation.rs").json()["access_token"]
    caller = caller_for_access_token(token)
    assert caller is not None
    assert caller.kind == "system" and caller.user is None
    assert caller.key == f"client:{client.application.client_id}"
    assert caller.label == "client:Test HIS"
    assert caller.can("Observation", "s") and not caller.can("Observation", "c")
    assert caller_for_access_token("unknown") is None


def test_read_only_token_cannot_post(backend: tuple[FhirClient, str], record: Patient) -> None:
    client, secret = backend
    token = request_token(client, secret, "system/Observation.rs").json()["access_token"]
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{record.fhir_id}"},
        "effectiveDateTime": "2026-03-01T08:00:00+01:00",
        "valueQuantity": {"value": 70, "unit": "/min"},
    }
    response = bearer(token).post(
        "/fhir/Observation", observation, content_type="application/fhir+json"
    )
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_create_fhir_client_command_prints_a_working_secret(
    db: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    call_command("create_fhir_client", "Lab", "--scope", "system/Observation.rs")
    printed = json.loads(capsys.readouterr().out)
    client = FhirClient.objects.get(application__client_id=printed["client_id"])
    assert client.allowed_scopes == "system/Observation.rs"
    assert client.application.client_secret != printed["client_secret"]  # stored hashed
    assert request_token(client, printed["client_secret"]).status_code == 200
    # a reset secret replaces the old one
    call_command("create_fhir_client", "Lab", "--reset-secret")
    new = json.loads(capsys.readouterr().out)
    assert request_token(client, printed["client_secret"]).status_code == 401
    assert request_token(client, new["client_secret"]).status_code == 200


def test_demo_client_is_created_once(db: None) -> None:
    first = seed_fhir_demo()
    second = seed_fhir_demo()
    assert first.pk == second.pk
    assert FhirClient.objects.filter(application__name=DEMO_CLIENT).count() == 1


def test_admin_creates_a_client_and_sees_the_secret_once(admin_user: User) -> None:
    # given
    browser = verified_client(admin_user)
    # when
    response = browser.post(
        "/admin/interop/fhirclient/add/",
        {"name": "Lab Sion", "allowed_scopes": "system/Observation.rs", "active": "on"},
        follow=True,
    )
    # then
    assert response.status_code == 200
    client = FhirClient.objects.get(application__name="Lab Sion")
    shown = [str(m) for m in response.context["messages"] if "secret" in str(m)]
    assert len(shown) == 1
    secret = shown[0].split("secret ")[1].split(".")[0]
    assert request_token(client, secret).status_code == 200
    assert browser.get(f"/admin/interop/fhirclient/{client.pk}/change/").status_code == 200
    assert (
        secret not in browser.get(f"/admin/interop/fhirclient/{client.pk}/change/").content.decode()
    )
    # wrong scopes are refused with a message
    refused = browser.post(
        "/admin/interop/fhirclient/add/", {"name": "Bad", "allowed_scopes": "user/*.rs"}
    )
    assert refused.status_code == 200 and "Not SMART system scopes" in refused.content.decode()
    assert browser.get("/admin/interop/exportjob/").status_code == 200


def test_admin_deactivation_revokes_tokens_for_good(
    backend: tuple[FhirClient, str], admin_user: User
) -> None:
    client, secret = backend
    token = request_token(client, secret, "system/*.rs").json()["access_token"]
    browser = verified_client(admin_user)
    response = browser.post(
        f"/admin/interop/fhirclient/{client.pk}/change/",
        {"name": "Test HIS", "allowed_scopes": ALLOWED},  # "active" unchecked
    )
    assert response.status_code == 302
    assert not AccessToken.objects.exists()
    FhirClient.objects.filter(pk=client.pk).update(active=True)
    assert bearer(token).get("/fhir/Patient").status_code == 401
    assert request_token(client, secret).status_code == 200
    # deleting the client removes its OAuth2 application and credentials
    browser.post(f"/admin/interop/fhirclient/{client.pk}/delete/", {"post": "yes"})
    assert request_token(client, secret).status_code == 401


def test_smart_configuration_tells_backends_where_to_get_tokens(db: None) -> None:
    response = Client().get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    document = response.json()
    assert document["token_endpoint"].endswith("/o/token/")
    assert document["grant_types_supported"] == ["client_credentials"]
    assert "client_secret_basic" in document["token_endpoint_auth_methods_supported"]
