"""Registering, assigning and retiring devices: who may, and what is audited."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from django.utils import translation

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.devices.models import Device
from apps.devices.protocol import encode_reading
from apps.devices.services import DeviceError
from apps.devices.services.ingest import IngestResult, RawMessage, ingest
from apps.devices.services.registry import (
    do_assign_device,
    do_register_device,
    do_retire_device,
)
from apps.records.models import Observation, Patient
from apps.records.reference import load_reference_data


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """The assertions below read the English messages (the default language is French)."""
    with translation.override("en"):
        yield


def test_care_team_clinician_registers_and_secret_is_shown_once(
    record: Patient, clinician: User
) -> None:
    device, secret = do_register_device("glucometer", record, clinician, serial="G-1")
    assert device.device_id.startswith("dev-")
    assert len(device.device_id) == 24
    assert len(secret) >= 43
    assert device.registered_by == clinician
    event = AuditEvent.objects.get(object_id=device.device_id)
    assert (event.action, event.actor_id, event.patient_id) == (
        "create",
        clinician.pk,
        str(record.pk),
    )
    # the column holds ciphertext, not the secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM devices_device WHERE id = %s", [device.pk])
        [raw] = cursor.fetchone()
    assert secret.encode() not in bytes(raw)


def test_outsider_and_patient_may_not_register(
    record: Patient, outsider: User, patient: User
) -> None:
    with pytest.raises(DeviceError, match="care team"):
        do_register_device("scale", record, outsider)
    with pytest.raises(DeviceError, match="clinical staff"):
        do_register_device("scale", record, patient)
    assert not Device.objects.exists()


def test_unknown_kind_and_details_are_refused(record: Patient) -> None:
    with pytest.raises(DeviceError, match="kind"):
        do_register_device("toaster", record, None)
    with pytest.raises(DeviceError, match="colour"):
        do_register_device("scale", record, None, colour="red")


def test_assign_then_retire(record: Patient, record2: Patient, clinician: User) -> None:
    device, _ = do_register_device("scale", None, clinician)
    do_assign_device(device, record, clinician)
    do_assign_device(device, record2, clinician)
    device.refresh_from_db()
    assert device.patient == record2
    assert device.version == 3  # FHIR Device changed twice
    do_retire_device(device, clinician)
    device.refresh_from_db()
    assert (device.status, device.retired_by) == ("retired", clinician)
    assert device.retired_at is not None
    with pytest.raises(DeviceError, match="already retired"):
        do_retire_device(device, clinician)
    with pytest.raises(DeviceError, match="retired device"):
        do_assign_device(device, record, clinician)
    actions = list(
        AuditEvent.objects.filter(object_id=device.device_id)
        .order_by("seq")
        .values_list("action", "detail")
    )
    assert [a for a, _ in actions] == ["create", "update", "update", "update"]
    assert [d.get("change") for _, d in actions] == ["", "assign", "assign", "retire"]


def test_outsider_may_not_retire(record: Patient, outsider: User) -> None:
    device, _ = do_register_device("scale", record, None)
    with pytest.raises(DeviceError):
        do_retire_device(device, outsider)
    device.refresh_from_db()
    assert device.status == "active"


@pytest.mark.django_db(transaction=True)
def test_two_ingestors_racing_on_one_message_store_it_once(
    make_patient: Callable[..., Patient],
) -> None:
    # given the same message delivered to two ingestors at once (e.g. a redelivery race)
    load_reference_data()
    device, secret = do_register_device("pulse_oximeter", make_patient(), None)
    topic, payload = encode_reading(device.device_id, secret, [("59408-5", 97, "%")], msg_id="r")
    results: list[IngestResult] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            results.append(ingest([RawMessage(payload, "mqtt", topic)]))
        finally:
            connection.close()

    # when both commit concurrently
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then exactly one stored it and the other saw a duplicate
    assert sorted(r.outcomes[0].status for r in results) == ["duplicate", "stored"]
    assert Observation.objects.filter(device_id=device.device_id).count() == 1
