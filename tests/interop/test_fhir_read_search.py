"""FHIR read and search: scopes, compartments, parameters, paging, errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.records.models import Observation, Patient


def test_metadata_is_public_and_lists_what_is_served() -> None:
    response = Client().get("/fhir/metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    statement = response.json()
    assert statement["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"Patient", "Observation", "Condition", "DocumentReference"} <= types


def test_no_token_is_401_with_an_operation_outcome(db: None) -> None:
    response = Client().get("/fhir/Patient")
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "Bearer" in response["WWW-Authenticate"]


def test_xml_is_406(db: None, fhir_client: Callable[..., Client], patient: User) -> None:
    client = fhir_client(patient, "patient/*.rs")
    assert client.get("/fhir/Patient", {"_format": "xml"}).status_code == 406


def test_patient_token_sees_only_its_compartment(
    record: Patient,
    record2: Patient,
    patient: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
) -> None:
    mine = make_observation(record, value=80)
    theirs = make_observation(record2, value=90)
    client = fhir_client(patient, "patient/*.rs")
    bundle = client.get("/fhir/Observation").json()
    assert bundle["total"] == 1
    assert client.get(f"/fhir/Observation/{mine.fhir_id}").status_code == 200
    response = client.get(f"/fhir/Observation/{theirs.fhir_id}")
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"
    assert AuditEvent.objects.filter(action="denied", object_type="fhir.Observation").exists()


def test_user_token_follows_the_care_team(
    record: Patient,
    clinician: User,
    outsider: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
) -> None:
    observation = make_observation(record)
    assert (
        fhir_client(clinician, "user/*.rs")
        .get(f"/fhir/Observation/{observation.fhir_id}")
        .status_code
        == 200
    )
    assert (
        fhir_client(outsider, "user/*.rs")
        .get(f"/fhir/Observation/{observation.fhir_id}")
        .status_code
        == 404
    )


def test_scope_without_read_is_403(
    record: Patient, patient: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(patient, "patient/Observation.rs")
    response = client.get("/fhir/Condition")
    assert response.status_code == 403


def test_search_by_code_date_and_paging(
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
    concept: Callable[..., Any],
) -> None:
    now = timezone.now()
    for day in range(12):
        make_observation(record, value=60 + day, effective_at=now - dt.timedelta(days=day))
    glucose = concept("14749-6", unit="mmol/L", category="laboratory")
    make_observation(record, value=5.1, code=glucose)
    client = fhir_client(clinician, "user/*.rs")
    assert (
        client.get("/fhir/Observation", {"code": "http://loinc.org|8867-4"}).json()["total"] == 12
    )
    assert client.get("/fhir/Observation", {"code": "14749-6"}).json()["total"] == 1
    assert (
        client.get("/fhir/Observation", {"code": "http://snomed.info/sct|8867-4"}).json()["total"]
        == 0
    )
    # a day of the server's time zone (Europe/Zurich), as the search reads it
    since = timezone.localdate(now - dt.timedelta(days=3)).isoformat()
    ge = client.get("/fhir/Observation", {"code": "8867-4", "date": f"ge{since}"}).json()
    assert ge["total"] == 4
    first = client.get("/fhir/Observation", {"patient": str(record.fhir_id), "_count": 5}).json()
    assert len(first["entry"]) == 5 and first["total"] == 13
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.get(next_url).json()
    assert {e["resource"]["id"] for e in second["entry"]}.isdisjoint(
        {e["resource"]["id"] for e in first["entry"]}
    )
    count = client.get("/fhir/Observation", {"_summary": "count"}).json()
    assert count["total"] == 13 and "entry" not in count


def test_include_patient(
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
) -> None:
    make_observation(record)
    bundle = (
        fhir_client(clinician, "user/*.rs")
        .get("/fhir/Observation", {"_include": "Observation:patient"})
        .json()
    )
    modes = {e["resource"]["resourceType"]: e["search"]["mode"] for e in bundle["entry"]}
    assert modes == {"Observation": "match", "Patient": "include"}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"date": "yesterday"}, 400),
        ({"colour": "blue"}, 400),
        ({"_sort": "value"}, 400),
        ({"_count": "x"}, 400),
    ],
)
def test_bad_search_parameters_are_400(
    params: dict[str, str],
    status: int,
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
) -> None:
    response = fhir_client(clinician, "user/*.rs").get("/fhir/Observation", params)
    assert response.status_code == status
    assert response.json()["issue"][0]["diagnostics"]


def test_patient_search_by_identifier(
    record: Patient, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    found = client.get(
        "/fhir/Patient", {"identifier": f"urn:oid:2.16.756.5.32|{record.ahv_number}"}
    )
    assert found.json()["total"] == 1
    assert client.get("/fhir/Patient", {"family": record.family_name[:3]}).json()["total"] >= 1
