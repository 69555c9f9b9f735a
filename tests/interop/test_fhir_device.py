"""FHIR Device: read and search under the record's rules, and Observation's link to it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import AccessToken

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.devices.models import Device
from apps.devices.services.registry import do_register_device, do_retire_device
from apps.interop.fhir_api.oauth import do_create_fhir_client
from apps.records.fhir import SYS_DEVICE, validate
from apps.records.models import Concept, Observation, Patient
from tests.interop.conftest import entries
from tests.interop.test_fhir_bulk import download, finish, kick, manifest

SNOMED = "http://snomed.info/sct"


@pytest.fixture(autouse=True)
def _export_storage(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def make_device() -> Callable[..., tuple[Device, str]]:
    def make(patient: Patient | None, kind: str = "blood_pressure", **details: Any) -> Any:
        return do_register_device(kind, patient, None, **details)

    return make


@pytest.fixture
def monitor(record: Patient, make_device: Callable[..., tuple[Device, str]]) -> Device:
    device, _secret = make_device(
        record, manufacturer="Omron", model="M7 Intelli IT", serial="SN-123"
    )
    Device.objects.filter(pk=device.pk).update(battery=42, last_seen_at=timezone.now())
    device.refresh_from_db()
    return device


def system_client(scopes: str) -> Client:
    """A backend system's client with a token of `scopes`."""
    client, _secret = do_create_fhir_client("Device reader", scopes)
    token = secrets.token_urlsafe(16)
    AccessToken.objects.create(
        application=client.application, token=token, scope=scopes, expires="2999-01-01T00:00Z"
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/fhir+json")


def _from(
    make_observation: Callable[..., Observation], patient: Patient, device: Device, **kw: Any
) -> Observation:
    return make_observation(patient, device_id=device.device_id, source="device", **kw)


def test_device_read_maps_the_registry_and_never_the_secret(
    monitor: Device, record: Patient, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    # when the patient's clinician reads the device
    response = fhir_client(clinician, "user/*.rs").get(f"/fhir/Device/{monitor.fhir_id}")

    # then it is a valid R4 Device with the registry's fields
    assert response.status_code == 200
    assert response["ETag"] == f'W/"{monitor.version}"'
    device = response.json()
    validate(device)
    assert device["id"] == str(monitor.fhir_id)
    assert device["identifier"] == [{"system": SYS_DEVICE, "value": monitor.device_id}]
    assert device["status"] == "active"
    assert device["manufacturer"] == "Omron" and device["serialNumber"] == "SN-123"
    assert device["deviceName"] == [{"name": "M7 Intelli IT", "type": "model-name"}]
    assert device["type"]["coding"][0] == {
        "system": SNOMED,
        "code": "258057004",
        "display": "Non-invasive blood pressure monitor",
    }
    assert device["patient"] == {"reference": f"Patient/{record.fhir_id}"}
    assert device["property"] == [
        {
            "type": {"text": "battery"},
            "valueQuantity": [
                {"value": 42, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
            ],
        }
    ]
    # and the HMAC key is nowhere in the answer
    assert monitor.secret and monitor.secret not in response.content.decode()
    assert "secret" not in response.content.decode().lower()


def test_retired_device_is_inactive_and_searchable_by_status(
    monitor: Device, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    do_retire_device(monitor, None)
    client = fhir_client(clinician, "user/*.rs")

    assert client.get(f"/fhir/Device/{monitor.fhir_id}").json()["status"] == "inactive"
    assert client.get("/fhir/Device", {"status": "inactive"}).json()["total"] == 1
    assert client.get("/fhir/Device", {"status": "active"}).json()["total"] == 0


def test_search_by_patient_identifier_and_type(
    monitor: Device,
    record: Patient,
    record2: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_device: Callable[..., tuple[Device, str]],
) -> None:
    scale, _ = make_device(record2, "scale")
    thermometer, _ = make_device(record, "thermometer")
    client = fhir_client(clinician, "user/*.rs")

    def ids(**params: str) -> set[str]:
        response = client.get("/fhir/Device", params)
        assert response.status_code == 200, response.content
        return {resource["id"] for resource in entries(response.json())}

    assert ids(patient=f"Patient/{record.fhir_id}") == {
        str(monitor.fhir_id),
        str(thermometer.fhir_id),
    }
    assert ids(identifier=f"{SYS_DEVICE}|{scale.device_id}") == {str(scale.fhir_id)}
    assert ids(identifier=f"http://other.example|{scale.device_id}") == set()
    assert ids(type=f"{SNOMED}|19892000") == {str(scale.fhir_id)}
    assert ids(type="thermometer") == {str(thermometer.fhir_id)}
    assert ids(_id=str(monitor.fhir_id)) == {str(monitor.fhir_id)}
    assert ids(manufacturer="omr") == {str(monitor.fhir_id)}
    # _count pages like every other type
    page = client.get("/fhir/Device", {"_count": 2}).json()
    assert page["total"] == 3 and len(page["entry"]) == 2
    assert any(link["relation"] == "next" for link in page["link"])


def test_outsider_clinician_gets_404_and_the_denial_is_audited(
    monitor: Device, outsider: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(outsider, "user/*.rs")

    response = client.get(f"/fhir/Device/{monitor.fhir_id}")

    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert AuditEvent.objects.filter(
        action="denied", object_type="fhir.Device", object_id=str(monitor.fhir_id)
    ).exists()
    assert client.get("/fhir/Device").json()["total"] == 0


def test_read_is_audited_with_the_patient(
    monitor: Device, record: Patient, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    fhir_client(clinician, "user/*.rs").get(f"/fhir/Device/{monitor.fhir_id}")

    assert AuditEvent.objects.filter(
        action="read",
        object_type="fhir.Device",
        object_id=str(monitor.fhir_id),
        patient_id=str(record.pk),
    ).exists()


def test_patient_token_sees_only_its_own_devices(
    monitor: Device,
    record2: Patient,
    patient: User,
    fhir_client: Callable[..., Client],
    make_device: Callable[..., tuple[Device, str]],
) -> None:
    theirs, _ = make_device(record2, "glucometer")
    unassigned, _ = make_device(None, "pulse_oximeter")
    client = fhir_client(patient, "patient/*.rs")

    bundle = client.get("/fhir/Device").json()

    assert [resource["id"] for resource in entries(bundle)] == [str(monitor.fhir_id)]
    assert client.get(f"/fhir/Device/{theirs.fhir_id}").status_code == 404
    assert client.get(f"/fhir/Device/{unassigned.fhir_id}").status_code == 404


def test_unassigned_devices_are_for_system_callers_with_a_device_scope(
    monitor: Device,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_device: Callable[..., tuple[Device, str]],
) -> None:
    unassigned, _ = make_device(None, "pulse_oximeter")
    path = f"/fhir/Device/{unassigned.fhir_id}"

    assert fhir_client(clinician, "user/*.rs").get(path).status_code == 404
    assert system_client("system/Device.rs").get(path).status_code == 200
    assert system_client("system/Observation.rs").get(path).status_code == 403


def test_device_is_read_only(
    monitor: Device, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(clinician, "user/*.cruds")
    body = json.dumps({"resourceType": "Device", "status": "active"})

    response = client.post("/fhir/Device", body, content_type="application/fhir+json")

    assert response.status_code == 405


def test_observation_references_its_device_and_is_searchable_by_it(
    monitor: Device,
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
) -> None:
    # given readings from the monitor, one manual reading and one from an unknown device
    reading = _from(make_observation, record, monitor)
    make_observation(record)
    make_observation(record, device_id="dev-unknown", source="device")
    client = fhir_client(clinician, "user/*.rs")

    # then the reading names the device by reference and by identifier
    resource = client.get(f"/fhir/Observation/{reading.fhir_id}").json()
    identifier = {"system": SYS_DEVICE, "value": monitor.device_id}
    assert resource["device"] == {
        "reference": f"Device/{monitor.fhir_id}",
        "identifier": identifier,
    }

    # and every form of the device parameter finds it
    def found(**params: str) -> list[str]:
        response = client.get("/fhir/Observation", params)
        assert response.status_code == 200, response.content
        return [r["id"] for r in entries(response.json())]

    expected = [str(reading.fhir_id)]
    assert found(device=f"Device/{monitor.fhir_id}") == expected
    assert found(device=str(monitor.fhir_id)) == expected
    assert found(device=f"{SYS_DEVICE}|{monitor.device_id}") == expected
    assert found(**{"device:identifier": f"{SYS_DEVICE}|{monitor.device_id}"}) == expected
    assert found(device=monitor.device_id) == expected
    assert found(device="Device/00000000-0000-0000-0000-000000000000") == []
    # an unknown device keeps its identifier, without a reference
    unknown = client.get("/fhir/Observation", {"device": "dev-unknown"}).json()
    assert entries(unknown)[0]["device"] == {
        "identifier": {"system": SYS_DEVICE, "value": "dev-unknown"}
    }


def test_observation_page_costs_no_query_per_device_reading(
    monitor: Device,
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
    make_device: Callable[..., tuple[Device, str]],
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    _from(make_observation, record, monitor)
    client.get("/fhir/Observation")  # the token's first use writes to it
    with CaptureQueriesContext(connection) as one:
        assert client.get("/fhir/Observation").status_code == 200
    other, _ = make_device(record, "scale")
    for _ in range(5):
        _from(make_observation, record, monitor)
        _from(make_observation, record, other)
    with CaptureQueriesContext(connection) as many:
        bundle = client.get("/fhir/Observation").json()

    assert len(many) == len(one)
    references = {r["device"]["reference"] for r in entries(bundle)}
    assert references == {f"Device/{monitor.fhir_id}", f"Device/{other.fhir_id}"}


def test_revinclude_observations_of_a_device(
    monitor: Device,
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
) -> None:
    reading = _from(make_observation, record, monitor)
    make_observation(record)

    bundle = (
        fhir_client(clinician, "user/*.rs")
        .get("/fhir/Device", {"_id": str(monitor.fhir_id), "_revinclude": "Observation:device"})
        .json()
    )

    included = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert included == [str(reading.fhir_id)]


def test_observation_written_with_a_device_identifier_answers_with_the_reference(
    monitor: Device,
    record: Patient,
    patient: User,
    heart_rate: Concept,
    fhir_client: Callable[..., Client],
) -> None:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{record.fhir_id}"},
        "effectiveDateTime": timezone.now().isoformat(),
        "valueQuantity": {"value": 64, "unit": "/min", "system": "http://unitsofmeasure.org"},
        "device": {"identifier": {"system": SYS_DEVICE, "value": monitor.device_id}},
    }
    client = fhir_client(patient, "patient/*.cruds")

    response = client.post(
        "/fhir/Observation", json.dumps(body), content_type="application/fhir+json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["device"]["reference"] == f"Device/{monitor.fhir_id}"
    stored = Observation.objects.get(fhir_id=response.json()["id"])
    assert stored.device_id == monitor.device_id


def test_everything_and_export_include_the_patients_devices(
    monitor: Device,
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
    make_device: Callable[..., tuple[Device, str]],
) -> None:
    make_device(None, "scale")  # unassigned: in nobody's compartment
    _from(make_observation, record, monitor)
    client = fhir_client(clinician, "user/*.rs")

    everything = client.get(f"/fhir/Patient/{record.fhir_id}/$everything").json()
    devices = [r for r in entries(everything) if r["resourceType"] == "Device"]
    assert [d["id"] for d in devices] == [str(monitor.fhir_id)]

    job_id = kick(client, _type="Device,Observation")
    finish(job_id)
    files = download(client, manifest(client, job_id))
    assert [d["id"] for d in files["Device"]] == [str(monitor.fhir_id)]
    assert files["Observation"][0]["device"]["reference"] == f"Device/{monitor.fhir_id}"


def test_capability_statement_lists_device(db: None) -> None:
    statement = Client().get("/fhir/metadata").json()

    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    device = resources["Device"]
    assert {i["code"] for i in device["interaction"]} == {"read", "vread", "search-type"}
    params = {p["name"] for p in device["searchParam"]}
    assert {"_id", "identifier", "patient", "type", "status", "_lastUpdated"} <= params
    observation = {p["name"]: p for p in resources["Observation"]["searchParam"]}
    assert observation["device"]["type"] == "reference"
    assert "Observation:device" in device.get("searchRevInclude", [])
