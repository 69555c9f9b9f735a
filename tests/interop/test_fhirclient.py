"""A real FHIR client (SMART on FHIR's `fhirclient`) against the live test server.

It does what an integrator's code does: reads the CapabilityStatement, finds the OAuth2 token
URL in it, gets a client-credentials token over HTTP, then reads and searches with the
library's models, following the server's paging links.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.utils import timezone
from fhirclient.auth import FHIROAuth2Auth
from fhirclient.models.observation import Observation as FhirObservation
from fhirclient.models.patient import Patient as FhirPatient
from fhirclient.server import FHIRServer, FHIRUnauthorizedException

from apps.interop.fhir_api.capability import EVERYTHING, capability_statement
from apps.interop.fhir_api.oauth import do_create_fhir_client
from apps.records.fhir import validate
from apps.records.models import Observation, Patient

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


@pytest.fixture
def server(live_server: Any, transactional_db: None) -> FHIRServer:
    return FHIRServer(None, base_uri=f"{live_server.url}/fhir")


def token_url(server: FHIRServer) -> str:
    security = server.capabilityStatement.rest[0].security
    uris = next(ext for ext in security.extension if ext.url == OAUTH_URIS)
    return str(next(ext.valueUri for ext in uris.extension if ext.url == "token"))


def authorize(server: FHIRServer, scope: str) -> None:
    """Get a client-credentials token as a backend system would, and sign requests with it."""
    client, secret = do_create_fhir_client("fhirclient test", "system/*.rs")
    response = requests.post(
        token_url(server),
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client.application.client_id, secret),
        timeout=10,
    )
    response.raise_for_status()
    auth = FHIROAuth2Auth()
    auth.access_token = response.json()["access_token"]
    server.auth = auth


def test_capability_statement_parses_and_names_the_token_url(
    server: FHIRServer, live_server: Any
) -> None:
    statement = server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    assert token_url(server) == f"{live_server.url}/o/token/"
    types = {resource.type for resource in statement.rest[0].resource}
    assert {"Patient", "Observation", "AuditEvent"} <= types


def test_reads_and_searches_with_paging(
    server: FHIRServer,
    record: Patient,
    record2: Patient,
    make_observation: Callable[..., Observation],
) -> None:
    # given five heart rates of the patient over five days, and one of someone else
    now = timezone.now()
    mine = [
        make_observation(record, value=60 + day, effective_at=now - dt.timedelta(days=day))
        for day in range(5)
    ]
    make_observation(record2, value=99)
    authorize(server, "system/Patient.rs system/Observation.rs")
    # when
    patient = FhirPatient.read(str(record.fhir_id), server)
    search = FhirObservation.where(struct={"patient": str(record.fhir_id), "_count": "2"})
    found = list(search.perform_resources_iter(server))  # follows the next links
    since = (now - dt.timedelta(days=2, hours=1)).astimezone(dt.UTC)
    recent = list(
        FhirObservation.where(
            struct={
                "patient": str(record.fhir_id),
                "code": "http://loinc.org|8867-4",
                "date": f"ge{since:%Y-%m-%dT%H:%M:%SZ}",
            }
        ).perform_resources_iter(server)
    )
    # then
    assert patient.id == str(record.fhir_id)
    assert patient.name[0].family == record.family_name
    assert sorted(o.id for o in found) == sorted(str(o.fhir_id) for o in mine)
    assert all(o.subject.reference == f"Patient/{record.fhir_id}" for o in found)
    assert sorted(o.valueQuantity.value for o in recent) == [60, 61, 62]


def test_without_a_token_the_server_refuses(server: FHIRServer, record: Patient) -> None:
    with pytest.raises(FHIRUnauthorizedException):
        FhirPatient.read(str(record.fhir_id), server)


def test_capability_statement_is_valid_r4_and_declares_what_is_served(db: None) -> None:
    statement = capability_statement("https://hospital.example/fhir")
    validate(statement)
    rest = statement["rest"][0]
    by_type = {resource["type"]: resource for resource in rest["resource"]}
    patient = by_type["Patient"]
    assert {"name": "everything", "definition": EVERYTHING[1]} in patient["operation"]
    assert {"read", "vread", "search-type", "create", "update"} == {
        i["code"] for i in patient["interaction"]
    }
    assert patient["conditionalCreate"] is True
    assert "Observation:patient" in patient["searchRevInclude"]
    assert {i["code"] for i in by_type["Practitioner"]["interaction"]} == {
        "read",
        "vread",
        "search-type",
    }
    assert by_type["Practitioner"]["conditionalCreate"] is False
    assert "Observation:encounter" in by_type["Observation"]["searchInclude"]
    assert {"name": "date", "type": "date"} in by_type["AuditEvent"]["searchParam"]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    assert rest["operation"][0]["name"] == "export"
    assert by_type["Group"]["operation"][0]["name"] == "export"
    security = rest["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris["token"] == "https://hospital.example/o/token/"
