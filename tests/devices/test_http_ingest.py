"""POST /api/v1/devices/ingest: the same token over HTTPS, the signature as the credential."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.devices.models import DeadLetter, Device
from apps.devices.protocol import encode_reading
from apps.devices.services.registry import do_retire_device
from apps.records.models import Observation, Patient

from .conftest import BP

URL = "/api/v1/devices/ingest"


def post(payload: bytes, content_type: str = "application/jose") -> Any:
    return Client().post(URL, data=payload, content_type=content_type)


def register(patient: Patient, kind: str = "blood_pressure") -> dict[str, str]:
    out = io.StringIO()
    call_command("register_device", patient=str(patient.fhir_id), kind=kind, stdout=out)
    return json.loads(out.getvalue())  # exactly one JSON object, nothing else


def test_register_device_prints_json_and_the_device_can_ingest(
    reference: None, record: Patient
) -> None:
    # given a device registered from the command line
    registered = register(record)
    assert set(registered) == {"device_id", "secret", "topic"}
    assert registered["topic"] == f"vh/devices/{registered['device_id']}/obs"
    device = Device.objects.get(device_id=registered["device_id"])
    assert (device.patient, device.kind, device.status) == (record, "blood_pressure", "active")
    assert device.secret == registered["secret"]  # stored (encrypted), usable for verification
    assert AuditEvent.objects.filter(
        object_id=device.device_id, action="create", patient_id=str(record.pk)
    ).exists()

    # when it posts a reading over HTTPS
    _, token = encode_reading(registered["device_id"], registered["secret"], BP, msg_id="h-1")
    response = post(token)

    # then it is stored, and a redelivery is acknowledged without storing it again
    assert response.status_code == 202
    assert response.json() == {"status": "stored", "stored": 2}
    again = post(token)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "stored": 0}
    assert Observation.objects.filter(device_id=device.device_id).count() == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patient": "not-a-uuid", "kind": "scale"}, "FHIR id"),
        ({"patient": "00000000-0000-4000-8000-000000000000", "kind": "scale"}, "no patient"),
        ({"kind": "toaster"}, "unknown --kind"),
    ],
)
def test_register_device_errors(record: Patient, options: dict[str, str], message: str) -> None:
    options.setdefault("patient", str(record.fhir_id))
    with pytest.raises(CommandError, match=message):
        call_command("register_device", **options, stdout=io.StringIO())
    assert not Device.objects.exists()


def test_bad_token_is_400_with_a_dead_letter(device_and_secret: tuple[Device, str]) -> None:
    device, _secret = device_and_secret
    _, token = encode_reading(device.device_id, "wrong-secret-wrong-secret-wrong-secret!", BP)
    response = post(token)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_signature"
    assert "signature" in response.json()["detail"]
    letter = DeadLetter.objects.get()
    assert (letter.transport, letter.reason, letter.device) == ("http", "bad_signature", device)


def test_impossible_value_over_http(device_and_secret: tuple[Device, str]) -> None:
    device, secret = device_and_secret
    _, token = encode_reading(device.device_id, secret, [("8480-6", 5000, "mm[Hg]")])
    response = post(token)
    assert response.status_code == 400
    assert response.json()["error"] == "impossible_value"


def test_retired_device_is_rejected(device_and_secret: tuple[Device, str]) -> None:
    device, secret = device_and_secret
    do_retire_device(device, None)
    _, token = encode_reading(device.device_id, secret, BP)
    response = post(token)
    assert response.status_code == 400
    assert response.json()["error"] == "retired_device"
    assert not Observation.objects.filter(device_id=device.device_id).exists()


def test_wrong_content_type_is_415(device_and_secret: tuple[Device, str]) -> None:
    device, secret = device_and_secret
    _, token = encode_reading(device.device_id, secret, BP)
    response = post(token, content_type="application/json")
    assert response.status_code == 415
    assert "application/jose" in response.json()["detail"]
    assert not Observation.objects.exists()


def test_oversized_is_413_with_a_dead_letter(db: None, settings: Any) -> None:
    settings.DEVICES_MAX_PAYLOAD_BYTES = 2048
    response = post(b"x" * 100_000)
    assert response.status_code == 413
    assert response.json()["error"] == "oversized"
    letter = DeadLetter.objects.get()
    assert letter.reason == "oversized"
    assert len(bytes(letter.raw)) <= 4096


def test_get_is_not_allowed(db: None) -> None:
    assert Client().get(URL).status_code == 405


def test_rate_limit_per_device(device_and_secret: tuple[Device, str], settings: Any) -> None:
    settings.DEVICES_HTTP_RATE_LIMIT = 2
    device, secret = device_and_secret
    codes = [post(encode_reading(device.device_id, secret, BP)[1]).status_code for _ in range(3)]
    assert codes == [202, 202, 429]


def test_device_readings_in_fhir_search_for_the_care_team(
    device_and_secret: tuple[Device, str],
    fhir_client: Callable[..., Client],
    clinician: User,
    outsider: User,
) -> None:
    # given readings posted by the device
    device, secret = device_and_secret
    post(encode_reading(device.device_id, secret, [("8480-6", 171, "mm[Hg]")])[1])

    # when a care-team clinician searches by device
    api = fhir_client(clinician, "user/Observation.rs", "user/Patient.rs")
    bundle = api.get(f"/fhir/Observation?device={device.device_id}").json()

    # then the reading is there, linked to the device, in its canonical unit
    [entry] = bundle["entry"]
    resource = entry["resource"]
    assert resource["device"]["identifier"]["value"] == device.device_id
    assert resource["valueQuantity"]["value"] == 171
    assert resource["valueQuantity"]["code"] == "mm[Hg]"
    assert resource["subject"]["reference"] == f"Patient/{device.patient.fhir_id}"  # type: ignore[union-attr]
    # and an outsider sees nothing of it
    hidden = fhir_client(outsider, "user/Observation.rs").get(
        f"/fhir/Observation?device={device.device_id}"
    )
    assert hidden.status_code == 200
    assert hidden.json()["resourceType"] == "Bundle"
    assert hidden.json().get("entry", []) == []
