"""Transaction and batch Bundles: all or nothing, urn:uuid references, per-entry outcomes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.records.fhir import SYS_AHV
from apps.records.models import Concept, Observation, Patient
from tests.interop.test_fhir_writes import (  # noqa: F401 - fixtures
    _media,
    observation_json,
    patient_json,
    send,
    system_api,
)

AHV = "756.5555.4444.33"


@pytest.fixture
def api(system_api: Callable[..., Client]) -> Client:  # noqa: F811 - the imported fixture
    return system_api()


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str = "", **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def linked_observation(patient_url: str, value: float) -> dict[str, Any]:
    resource = observation_json(Patient(fhir_id=uuid.uuid4()), value=value)
    resource["subject"] = {"reference": patient_url}
    return resource


def counts() -> tuple[int, int, int]:
    return Patient.objects.count(), Observation.objects.count(), AuditEvent.objects.count()


def test_transaction_resolves_urn_uuid_references(api: Client, heart_rate: Concept) -> None:
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    # the observations come first: the server still creates the patient before them
    body = bundle(
        "transaction",
        post(linked_observation(patient_url, 61)),
        post(linked_observation(patient_url, 62)),
        post(patient_json(ahv=AHV), patient_url),
    )
    response = send(api, "POST", "/fhir/", body)
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in result["entry"]]
    assert statuses == ["201 Created"] * 3
    patient = Patient.objects.get(ahv_number=AHV)
    assert result["entry"][2]["response"]["location"].endswith(
        f"/Patient/{patient.fhir_id}/_history/1"
    )
    values = sorted(int(o.value) for o in Observation.objects.filter(patient=patient))
    assert values == [61, 62]
    subject = result["entry"][0]["resource"]["subject"]["reference"]
    assert subject == f"Patient/{patient.fhir_id}"


def test_transaction_with_one_bad_entry_commits_nothing(
    api: Client, heart_rate: Concept, db: None
) -> None:
    before = counts()
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    bad = linked_observation(patient_url, 63)
    bad["status"] = "done"
    body = bundle(
        "transaction",
        post(patient_json(ahv=AHV), patient_url),
        post(linked_observation(patient_url, 61)),
        post(bad),
    )
    response = send(api, "POST", "/fhir/", body)
    assert response.status_code == 422
    found = response.json()["issue"][0]
    assert found["diagnostics"].startswith("Bundle.entry[2] (POST Observation)")
    assert "Nothing in the transaction was committed" in found["diagnostics"]
    assert found["expression"] == ["Bundle.entry[2].resource.status"]
    assert counts() == before


def test_transaction_conditional_create_links_to_the_existing_patient(
    api: Client, heart_rate: Concept
) -> None:
    existing = send(api, "POST", "/fhir/Patient", patient_json(ahv=AHV)).json()
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    body = bundle(
        "transaction",
        post(patient_json(ahv=AHV), patient_url, ifNoneExist=f"identifier={SYS_AHV}|{AHV}"),
        post(linked_observation(patient_url, 70)),
    )
    response = send(api, "POST", "/fhir/", body)
    assert response.status_code == 200, response.content
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    assert entries[0]["resource"]["id"] == existing["id"]
    assert Patient.objects.filter(ahv_number=AHV).count() == 1
    assert Observation.objects.get().patient.fhir_id == uuid.UUID(existing["id"])


def test_transaction_conditional_put_and_get(
    api: Client, record: Patient, heart_rate: Concept
) -> None:
    body = bundle(
        "transaction",
        {"request": {"method": "GET", "url": f"Patient/{record.fhir_id}"}},
        {
            "resource": patient_json(ahv=AHV, family="Put"),
            "request": {"method": "PUT", "url": f"Patient?identifier={SYS_AHV}|{AHV}"},
        },
    )
    response = send(api, "POST", "/fhir/", body)
    assert response.status_code == 200, response.content
    entries = response.json()["entry"]
    assert entries[0]["resource"]["id"] == str(record.fhir_id)
    assert entries[1]["response"]["status"] == "201 Created"
    assert Patient.objects.get(ahv_number=AHV).family_name == "Put"


def test_transaction_for_a_patient_the_caller_may_not_see_is_404_and_audited(
    fhir_client: Callable[..., Client], record: Patient, outsider: User, heart_rate: Concept
) -> None:
    before = Observation.objects.count()
    body = bundle(
        "transaction",
        post(observation_json(record, value=80)),
        post(observation_json(record, value=81)),
    )
    response = send(fhir_client(outsider, "user/*.cruds"), "POST", "/fhir/", body)
    assert response.status_code == 404
    assert response.json()["issue"][0]["diagnostics"].startswith("Bundle.entry[0]")
    assert Observation.objects.count() == before
    denied = AuditEvent.objects.get(action="denied", object_type="fhir.Observation")
    assert denied.patient_id == str(record.pk) and denied.actor_id == outsider.pk


def test_transaction_with_delete_is_refused(api: Client, record: Patient) -> None:
    body = bundle(
        "transaction",
        {"request": {"method": "DELETE", "url": f"Patient/{record.fhir_id}"}},
    )
    response = send(api, "POST", "/fhir/", body)
    assert response.status_code == 405
    assert "DELETE entries are not supported" in response.json()["issue"][0]["diagnostics"]
    assert Patient.objects.filter(pk=record.pk).exists()


def test_batch_commits_the_good_entries(api: Client, record: Patient, heart_rate: Concept) -> None:
    bad = observation_json(record, value=99)
    del bad["code"]
    body = bundle(
        "batch",
        post(observation_json(record, value=71)),
        post(bad),
        {"request": {"method": "DELETE", "url": f"Patient/{record.fhir_id}"}},
        post(observation_json(record, value=72)),
    )
    response = send(api, "POST", "/fhir/", body)
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in result["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "405 Method Not Allowed", "201 Created"]
    outcome = result["entry"][1]["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"].startswith("Bundle.entry[1]")
    assert sorted(int(o.value) for o in Observation.objects.filter(patient=record)) == [71, 72]


def test_other_bundle_types_are_400(api: Client) -> None:
    response = send(api, "POST", "/fhir/", bundle("collection"))
    assert response.status_code == 400
    assert "transaction or batch" in response.json()["issue"][0]["diagnostics"]


def test_a_resource_other_than_a_bundle_is_400(api: Client) -> None:
    response = send(api, "POST", "/fhir/", patient_json())
    assert response.status_code == 400


def test_reference_cycles_are_400(api: Client, heart_rate: Concept) -> None:
    first, second = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    one = linked_observation(second, 1)
    two = linked_observation(first, 2)
    body = bundle("transaction", post(one, first), post(two, second))
    response = send(api, "POST", "/fhir/", body)
    assert response.status_code == 400
    assert "cycle" in response.json()["issue"][0]["diagnostics"]
