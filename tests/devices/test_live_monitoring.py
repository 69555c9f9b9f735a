"""Readings and alerts reach the care team's sockets (not outsiders'), after commit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.core import presence
from apps.core.realtime import EVENT_TYPES
from apps.devices.models import Alert, ThresholdRule
from apps.devices.services.alerts import do_acknowledge_alert
from apps.devices.services.ingest import ingest
from apps.records.models import Patient
from tests.notifications.test_live_push import open_socket

from .conftest import ago

pytestmark = pytest.mark.django_db(transaction=True)


async def next_of_type(socket: Any, kind: str) -> dict[str, Any]:
    while True:
        event = await socket.receive_json_from(timeout=5)
        if event["type"] == kind:
            return event


async def test_a_high_reading_reaches_the_care_team_live_then_its_alert(
    device: Any, message: Any, record: Patient, clinician: User, outsider: User, patient: User
) -> None:
    await database_sync_to_async(ThresholdRule.objects.create)(
        patient=record, code="8480-6", kind="above", limit=Decimal(160), severity="critical"
    )
    doctor = await open_socket(clinician)
    stranger = await open_socket(outsider)
    owner = await open_socket(patient)

    raw = message([("8480-6", 182, "mm[Hg]"), ("8462-4", 95, "mm[Hg]")], ts=ago(minutes=1))
    await database_sync_to_async(ingest)([raw])

    reading = await next_of_type(doctor, "monitoring.reading")
    assert set(reading) == {"type", *EVENT_TYPES["monitoring.reading"]}
    assert reading["patient"] == record.pk
    assert {(r["code"], r["value"], r["status"]) for r in reading["readings"]} == {
        ("8480-6", 182.0, "critical"),
        ("8462-4", 95.0, "high"),
    }
    alert = await next_of_type(doctor, "monitoring.alert")
    assert set(alert) == {"type", *EVENT_TYPES["monitoring.alert"]}
    stored = await database_sync_to_async(Alert.objects.get)()
    assert (alert["id"], alert["state"], alert["severity"]) == (stored.pk, "open", "critical")
    assert alert["url"] == f"/clinic/alerts/{stored.pk}/"
    # the patient sees their readings live, not the alert; an outsider sees nothing
    assert (await next_of_type(owner, "monitoring.reading"))["patient"] == record.pk
    assert await owner.receive_nothing(timeout=0.5)
    assert await stranger.receive_nothing(timeout=0.5)

    # when a colleague acknowledges it, every member's banner learns it
    await database_sync_to_async(do_acknowledge_alert)(stored, clinician, "on it")
    update = await next_of_type(doctor, "monitoring.alert")
    assert (update["id"], update["state"]) == (stored.pk, "acknowledged")
    assert update["handled_by"] == clinician.get_full_name()
    for socket in (doctor, stranger, owner):
        await socket.disconnect()


async def test_presence_counts_open_sockets(clinician: User) -> None:
    first = await open_socket(clinician)
    second = await open_socket(clinician)
    assert await database_sync_to_async(presence.online)([clinician.pk]) == {clinician.pk}

    await first.disconnect()
    assert await database_sync_to_async(presence.online)([clinician.pk]) == {clinician.pk}
    await second.disconnect()

    assert await database_sync_to_async(presence.online)([clinician.pk]) == set()


async def test_nobody_online_costs_no_event(device: Any, message: Any, record: Patient) -> None:
    from apps.devices.services.live import push_readings
    from apps.records.models import Observation

    await database_sync_to_async(ingest)([message(ts=ago(minutes=2))])
    observations = await database_sync_to_async(list)(Observation.objects.select_related("code"))

    queued = await database_sync_to_async(push_readings)(
        observations, {o.code_id: o.code.code for o in observations}
    )

    assert queued == 0


async def test_a_hundred_events_for_one_clinician_arrive_all_and_in_order(
    clinician: User,
) -> None:
    from apps.core.realtime import send_events_on_commit, user_group

    socket = await open_socket(clinician)

    @database_sync_to_async
    def push() -> None:
        from django.db import transaction

        with transaction.atomic():
            send_events_on_commit(
                ("monitoring.reading", {"patient": n, "readings": []}, [user_group(clinician.pk)])
                for n in range(150)  # more than a channel's capacity (100) if sent one by one
            )

    await push()

    received = [(await socket.receive_json_from(timeout=5))["patient"] for _n in range(150)]
    assert received == list(range(150))
    await socket.disconnect()


async def test_a_page_heartbeat_keeps_its_presence_and_anyone_online_follows_sockets(
    clinician: User,
) -> None:
    from django.core.cache import cache

    assert not await database_sync_to_async(presence.anyone_online)()
    socket = await open_socket(clinician)
    assert await database_sync_to_async(presence.anyone_online)()
    await database_sync_to_async(cache.touch)(f"presence:{clinician.pk}", 1)  # about to expire

    await socket.send_json_to({"type": "ping"})
    await socket.send_json_to({"type": "something else"})  # ignored, the socket stays open

    assert await socket.receive_nothing(timeout=1.5)  # past the shortened expiry
    assert await database_sync_to_async(presence.online)([clinician.pk]) == {clinician.pk}
    await socket.disconnect()
    assert not await database_sync_to_async(presence.anyone_online)()
