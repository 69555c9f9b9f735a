"""The signalling socket, continued: sockets closed when access ends, the call's start and end,
the registry of connected people, two web processes, the benchmark."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.records.access import check_patient_access
from apps.records.models import Encounter
from apps.scheduling.models import Appointment, AppointmentType, Participant
from apps.scheduling.services.booking import do_cancel_appointment
from apps.teleconsult.consumers import (
    CLOSE_NOT_ALLOWED,
    CLOSE_REFUSED,
    CLOSE_REPLACED,
    CLOSE_ROOM_CLOSED,
)
from apps.teleconsult.models import Consultation, GuestInvite
from apps.teleconsult.presence import LocalRegistry, RedisRegistry, get_registry
from apps.teleconsult.services.rooms import (
    get_room_for_user,
    room_changed,
)
from tests.conftest import verified_client
from tests.scheduling.conftest import *  # noqa: F403 - the record and scheduling cast
from tests.teleconsult.sockets import *  # noqa: F403 - the room fixtures
from tests.teleconsult.sockets import (
    attempt,
    cookie_of,
    guest_cookie,
    in_call,
    join,
    make_invite,
    poll,
    user_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


# ---------------------------------------------------------------------------------------------
# Sockets closed when access ends


async def test_logging_out_closes_the_socket(room: Consultation, patient: User) -> None:
    client = await db(verified_client)(patient)
    sick = await join(room.room, cookie_of(client))

    await db(client.post)("/accounts/logout/")

    assert (await sick.expect("session.closed"))["reason"] == "logout"
    assert await sick.expect_close() == 4408


async def test_cancelling_the_appointment_closes_the_room(
    room: Consultation, appointment: Appointment, patient: User, clinician: User
) -> None:
    doctor, sick = await in_call(room, patient, clinician)

    def cancel() -> None:
        access = check_patient_access(clinician, appointment.patient_id)
        assert access is not None
        do_cancel_appointment(access, appointment, reason="Indisponible")

    await db(cancel)()

    for socket in (doctor, sick):
        assert (await socket.expect("consult.closed"))["reason"] == "cancelled"
        assert await socket.expect_close() == CLOSE_ROOM_CLOSED
    _communicator, connected, code = await attempt(room.room, await user_cookie(patient))
    assert (connected, code) == (False, CLOSE_NOT_ALLOWED)


async def test_a_no_show_closes_the_room(
    room: Consultation, appointment: Appointment, clinician: User
) -> None:
    doctor = await join(room.room, await user_cookie(clinician))

    def no_show() -> None:
        appointment.status = Appointment.Status.NOSHOW
        appointment.save(update_fields=["status"])

    await db(no_show)()

    assert await doctor.expect_close() == CLOSE_ROOM_CLOSED


async def test_a_revoked_guest_is_disconnected_on_the_recheck(
    room: Consultation, clinician: User
) -> None:
    invite = await db(make_invite)(room, clinician)
    doctor = await join(room.room, await user_cookie(clinician))
    guest = await join(room.room, await db(guest_cookie)(invite))

    def revoke() -> None:
        GuestInvite.objects.filter(pk=invite.pk).update(revoked_at=timezone.now())
        room_changed(room)

    await db(revoke)()

    assert (await guest.expect("error"))["code"] == "not_allowed"
    assert await guest.expect_close() == CLOSE_REFUSED
    assert (await doctor.expect("peer.left"))["key"] == f"g{invite.pk}"
    await doctor.close()


async def test_a_clinician_taken_off_the_appointment_is_disconnected(
    room: Consultation, appointment: Appointment, clinician: User, nurse: User
) -> None:
    await db(Participant.objects.create)(
        appointment=appointment,
        user=nurse,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        role=Participant.Role.SECONDARY,
    )
    doctor = await join(room.room, await user_cookie(clinician))
    colleague = await join(room.room, await user_cookie(nurse))

    def take_off() -> None:
        participant = Participant.objects.get(appointment=appointment, user=nurse)
        participant.active = False
        participant.save(update_fields=["active"])

    await db(take_off)()

    assert await colleague.expect_close() == CLOSE_REFUSED
    assert "consult.closed" not in await doctor.types_received(within=0.3)
    await doctor.close()


async def test_a_guest_socket_closes_when_the_invitation_expires(
    room: Consultation, clinician: User
) -> None:
    invite = await db(make_invite)(
        room, clinician, expires_at=timezone.now() + dt.timedelta(seconds=3)
    )
    guest = await join(room.room, await db(guest_cookie)(invite))

    error = await guest.expect("error", timeout=10)

    assert error["code"] == "not_allowed"
    assert await guest.expect_close() == CLOSE_REFUSED


async def test_a_second_tab_replaces_the_first(room: Consultation, patient: User) -> None:
    first = await join(room.room, await user_cookie(patient))

    second = await join(room.room, await user_cookie(patient))

    assert await first.expect_close() == CLOSE_REPLACED
    await second.send({"type": "ping"})
    await second.expect("pong")

    def left_at() -> Any:
        return room.attendances.get(user=patient).last_left_at

    assert await db(left_at)() is None  # still there, in the second tab
    await second.close()
    assert await db(left_at)() is not None


async def test_a_second_tab_replaces_the_first_for_the_others_too(
    room: Consultation, patient: User, clinician: User
) -> None:
    doctor, first = await in_call(room, patient, clinician)

    second = await join(room.room, await user_cookie(patient))

    assert await first.expect_close() == CLOSE_REPLACED
    assert second.welcome["you"]["admitted"] is True
    # The clinician drops the old tab's peer connection and meets the new one.
    assert (await doctor.expect("peer.left"))["key"] == f"u{patient.pk}"
    assert (await doctor.expect("peer.joined"))["peer"]["key"] == f"u{patient.pk}"
    await doctor.send({"type": "signal", "to": f"u{patient.pk}", "data": {"n": 1}})
    assert (await second.expect("signal"))["data"] == {"n": 1}
    assert "peer.left" not in await doctor.types_received(within=0.3)
    await second.close()
    await doctor.close()


# ---------------------------------------------------------------------------------------------
# The call


async def test_the_call_starts_when_patient_and_clinician_are_both_in(
    room: Consultation, appointment: Appointment, patient: User, clinician: User
) -> None:
    doctor, sick = await in_call(room, patient, clinician)

    def started() -> bool:
        room.refresh_from_db()
        return room.started_at is not None

    await poll(started)

    def check() -> None:
        room.refresh_from_db()
        appointment.refresh_from_db()
        assert room.status == Consultation.Status.LIVE
        assert room.encounter is not None
        assert room.encounter.started_at == room.started_at
        assert room.encounter.status == Encounter.Status.IN_PROGRESS
        assert room.encounter.kind == Encounter.Kind.VIRTUAL
        assert appointment.status == Appointment.Status.ARRIVED

    await db(check)()
    # A clinician joining later sees a call in progress; the start does not move.
    first_start = room.started_at
    await sick.close()
    again = await join(room.room, await user_cookie(patient))
    assert again.welcome["call"]["status"] == "live"
    await db(room.refresh_from_db)()
    assert room.started_at == first_start
    assert await db(Encounter.objects.filter(patient_id=room.patient_id).count)() == 1
    await again.close()
    await doctor.close()


async def test_ending_the_call_closes_every_socket(
    room: Consultation, patient: User, clinician: User
) -> None:
    from apps.teleconsult.services.rooms import do_end_call

    doctor, sick = await in_call(room, patient, clinician)

    def end() -> None:
        do_end_call(get_room_for_user(clinician, room.room, action=None))

    await db(end)()

    for socket in (sick, doctor):
        assert (await socket.expect("consult.closed"))["reason"] == "ended"
        assert await socket.expect_close() == CLOSE_ROOM_CLOSED


async def test_room_events_reach_the_admitted_and_other_events_nobody(
    room: Consultation, patient: User, clinician: User
) -> None:
    from apps.core.realtime import send_event_on_commit, user_group

    invite = await db(make_invite)(room, clinician)
    doctor, sick = await in_call(room, patient, clinician)
    guest = await join(room.room, await db(guest_cookie)(invite))
    recording = {"room": room.room, "consents": {"patient": True}, "recording": None}

    def push() -> None:
        send_event_on_commit(
            "consult.recording", {**recording, "allowed": False}, [f"consult.{room.room}"]
        )
        send_event_on_commit("notification.read", {"unread_count": 3}, [user_group(patient.pk)])

    await db(push)()

    assert (await sick.expect("consult.recording"))["consents"] == {"patient": True}
    assert (await doctor.expect("consult.recording"))["allowed"] is False
    assert "consult.recording" not in await guest.types_received()
    assert "notification.read" not in await sick.types_received(within=0.1)
    for socket in (guest, sick, doctor):
        await socket.close()


# ---------------------------------------------------------------------------------------------
# The registry of connected people (shared by web processes through Redis)


@pytest.mark.parametrize("kind", ["redis", "local"])
async def test_the_registry_keeps_the_newest_connection_and_forgets_the_dead(kind: str) -> None:
    if kind == "redis" and not isinstance(get_registry(), RedisRegistry):
        pytest.fail("set REDIS_URL to test the Redis registry")
    registry = get_registry() if kind == "redis" else LocalRegistry()
    room = secrets.token_urlsafe(12)
    now = timezone.now().timestamp()
    entry = {"key": "u1", "seat": Role.PATIENT, "name": "Zoë", "admitted": False, "seen": now}

    await registry.put(room, {**entry, "channel": "old"})
    await registry.put(room, {**entry, "channel": "new"})
    await registry.remove(room, "u1", "old")  # the old tab's goodbye comes late
    await registry.set_admitted(room, "u1", True)
    await registry.put(room, {**entry, "key": "u2", "channel": "dead", "seen": now - 3600})
    members = await registry.members(room)

    assert [(m["key"], m["channel"], m["admitted"], m["name"]) for m in members] == [
        ("u1", "new", True, "Zoë")
    ]
    await registry.remove(room, "u1", "new")
    assert await registry.members(room) == []


# ---------------------------------------------------------------------------------------------
# Two web processes, one room


async def test_two_server_processes_serve_one_room(
    room: Consultation, patient: User, clinician: User, settings: Any
) -> None:
    """The clinician on one daphne, the patient on another: the room works across them."""
    from websockets.asyncio.client import ClientConnection, connect

    from apps.core.processes import free_port
    from apps.teleconsult.bench import Server

    if not settings.REDIS_URL:
        pytest.fail("two processes share a room through Redis: set REDIS_URL")
    doctor_cookie, patient_cookie = await user_cookie(clinician), await user_cookie(patient)
    servers = [Server(free_port()), Server(free_port())]
    sockets: list[ClientConnection] = []

    async def open_on(server: Server, cookie: str) -> tuple[ClientConnection, dict[str, Any]]:
        socket = await connect(
            f"ws://127.0.0.1:{server.port}/ws/consult/{room.room}/",
            origin=f"http://127.0.0.1:{server.port}",  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie},
            proxy=None,
        )
        sockets.append(socket)
        return socket, json.loads(await socket.recv(decode=True))

    async def next_of(socket: ClientConnection, kind: str) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(decode=True), timeout=10))
            if message["type"] == kind:
                return message

    try:
        for server in servers:
            await asyncio.to_thread(server.wait_ready)
        doctor, _welcome = await open_on(servers[0], doctor_cookie)
        sick, sick_welcome = await open_on(servers[1], patient_cookie)
        assert sick_welcome["you"]["admitted"] is False

        joined = await next_of(doctor, "peer.joined")
        await doctor.send(json.dumps({"type": "admit", "key": joined["peer"]["key"]}))
        admitted = await next_of(sick, "admitted")
        await sick.send(json.dumps({"type": "signal", "to": f"u{clinician.pk}", "data": {"a": 1}}))
        relayed = await next_of(doctor, "signal")
        # A second tab of the patient, on the other process: the first one closes.
        second, second_welcome = await open_on(servers[0], patient_cookie)
        await asyncio.wait_for(sick.wait_closed(), timeout=10)

        assert [p["key"] for p in admitted["peers"]] == [f"u{clinician.pk}"]
        assert relayed == {"type": "signal", "from": f"u{patient.pk}", "data": {"a": 1}}
        assert sick.close_code == CLOSE_REPLACED
        assert second_welcome["you"]["admitted"] is True
        assert [p["key"] for p in second_welcome["peers"]] == [f"u{clinician.pk}"]
    finally:
        for socket in sockets:
            await socket.close()
        for server in servers:
            await asyncio.to_thread(server.stop)


# ---------------------------------------------------------------------------------------------
# The benchmark


def test_bench_signalling_relays_every_message_and_cleans_up() -> None:
    from io import StringIO

    from django.core.management import call_command

    from apps.accounts.models import Organization
    from apps.teleconsult.bench import ORGANIZATION_NAME, TYPE_CODE

    stdout, stderr = StringIO(), StringIO()
    call_command(
        "bench_signalling",
        "--rooms=3",
        "--messages=5",
        "--rate=10",
        stdout=stdout,
        stderr=stderr,
    )

    result = json.loads(stdout.getvalue())
    assert "bench_signalling:" in stderr.getvalue()  # progress on stderr, not in the JSON
    assert (result["rooms"], result["clients"], result["messages"]) == (3, 6, 30)
    assert result["errors"] == 0
    assert 0 < result["relay_p50_ms"] <= result["relay_p99_ms"] <= result["relay_max_ms"]
    assert 0 < result["connect_p50_ms"] <= result["connect_p99_ms"]
    assert result["server_rss_mb"] > 0
    assert not Organization.objects.filter(name=ORGANIZATION_NAME).exists()
    assert not User.objects.filter(email__startswith="bench-signalling-").exists()
    assert not Consultation.objects.exists()
    assert not AppointmentType.objects.filter(code=TYPE_CODE).exists()
