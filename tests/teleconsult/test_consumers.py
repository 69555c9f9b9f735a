"""The signalling socket `/ws/consult/<room>/` against the real ASGI application and channel layer.

Under CI the layer is channels-redis (REDIS_URL): everything a socket learns about the room
crosses Redis, as it would between two web processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from apps.records.access import check_patient_access
from apps.records.models import Encounter, Patient
from apps.scheduling.models import Appointment, AppointmentType, Participant
from apps.scheduling.services.booking import do_cancel_appointment
from apps.teleconsult.consumers import (
    CLOSE_NOT_ALLOWED,
    CLOSE_RATE_LIMITED,
    CLOSE_REFUSED,
    CLOSE_REPLACED,
    CLOSE_ROOM_CLOSED,
)
from apps.teleconsult.models import Consultation, GuestInvite
from apps.teleconsult.presence import LocalRegistry, RedisRegistry, get_registry
from apps.teleconsult.services.rooms import (
    GUEST_SESSION_KEY,
    get_room_for_user,
    room_changed,
    room_for_appointment,
)
from tests.conftest import in_ci, signed_in_client, verified_client
from tests.scheduling.conftest import *  # noqa: F403 - the record and scheduling cast
from virtualhospital.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


# ---------------------------------------------------------------------------------------------
# The cast: a video appointment happening now, its room, and a way to open sockets


def make_video_appointment(
    patient: Patient, appointment_type: AppointmentType, *clinicians: User
) -> Appointment:
    starts = timezone.now() - dt.timedelta(minutes=2)
    ends = starts + dt.timedelta(minutes=appointment_type.minutes)
    appointment = Appointment.objects.create(
        patient=patient, type=appointment_type, starts_at=starts, ends_at=ends, mode="video"
    )
    for clinician in clinicians:
        Participant.objects.create(
            appointment=appointment, user=clinician, starts_at=starts, ends_at=ends
        )
    return appointment


@pytest.fixture
def appointment(record: Patient, video_visit: AppointmentType, clinician: User) -> Appointment:
    return make_video_appointment(record, video_visit, clinician)


@pytest.fixture
def room(appointment: Appointment) -> Consultation:
    return room_for_appointment(appointment)


def cookie_of(client: Client) -> str:
    return f"sessionid={client.cookies['sessionid'].value}"


def guest_cookie(invite: GuestInvite) -> str:
    session = SessionStore()
    session[GUEST_SESSION_KEY] = invite.pk
    session.create()
    return f"sessionid={session.session_key}"


def make_invite(room: Consultation, by: User, **fields: Any) -> GuestInvite:
    fields.setdefault("expires_at", timezone.now() + dt.timedelta(hours=1))
    fields.setdefault("used_at", timezone.now())
    return GuestInvite.objects.create(
        consultation=room,
        name="Ana Interprète",
        relation=GuestInvite.Relation.INTERPRETER,
        token_hash=secrets.token_hex(32),
        created_by=by,
        **fields,
    )


@dataclass
class Socket:
    """A browser's socket: reads until the message it waits for, keeping the others."""

    communicator: WebsocketCommunicator
    welcome: dict[str, Any]

    async def send(self, message: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(message))

    async def expect(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"no {kind} within {timeout} s"
            output = await self.communicator.receive_output(timeout=left)
            if output["type"] == "websocket.close":
                raise AssertionError(f"closed ({output.get('code')}) while waiting for {kind}")
            message = json.loads(output["text"])
            if message["type"] == kind:
                return message

    async def expect_close(self, timeout: float = 5) -> int:
        """Reads until the server closes the socket; its close code."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"not closed within {timeout} s"
            output = await self.communicator.receive_output(timeout=left)
            if output["type"] == "websocket.close":
                await self.communicator.disconnect()  # the browser answers the close
                return int(output["code"])

    async def types_received(self, within: float = 0.5) -> list[str]:
        """The types of every message that arrives within `within` seconds."""
        kinds = []
        while not await self.communicator.receive_nothing(timeout=within):
            output = await self.communicator.receive_output()
            kinds.append(json.loads(output["text"])["type"] if "text" in output else output["type"])
        return kinds

    async def close(self) -> None:
        await self.communicator.disconnect()


async def attempt(room: str, cookie: str) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(
        application,
        f"/ws/consult/{room}/",
        headers=[(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1")],
    )
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def join(room: str, cookie: str) -> Socket:
    communicator, connected, code = await attempt(room, cookie)
    assert connected, f"refused with {code}"
    welcome = json.loads((await communicator.receive_output(timeout=5))["text"])
    assert welcome["type"] == "welcome"
    return Socket(communicator, welcome)


async def user_cookie(user: User) -> str:
    return cookie_of(await db(verified_client)(user))


async def in_call(room: Consultation, patient: User, clinician: User) -> tuple[Socket, Socket]:
    """The clinician in the room, then the patient, admitted."""
    doctor = await join(room.room, await user_cookie(clinician))
    sick = await join(room.room, await user_cookie(patient))
    await doctor.send({"type": "admit", "key": f"u{patient.pk}"})
    await sick.expect("admitted")
    await doctor.expect("peer.admitted")
    return doctor, sick


async def poll(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await db(condition)():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_ci_uses_the_redis_channel_layer() -> None:
    if in_ci():
        assert type(get_channel_layer()).__module__.startswith("channels_redis")
        assert isinstance(get_registry(), RedisRegistry)


# ---------------------------------------------------------------------------------------------
# Who may connect


async def test_anonymous_sockets_are_refused(room: Consultation) -> None:
    _communicator, connected, code = await attempt(room.room, "sessionid=nothing")

    assert not connected
    assert code == 4401


async def test_staff_without_their_second_factor_are_refused(
    room: Consultation, clinician: User
) -> None:
    client = await db(signed_in_client)(clinician)

    _communicator, connected, code = await attempt(room.room, cookie_of(client))

    assert not connected
    assert code == 4401


async def test_an_outsider_clinician_is_refused_and_the_denial_is_audited(
    room: Consultation, outsider: User
) -> None:
    _communicator, connected, code = await attempt(room.room, await user_cookie(outsider))

    assert not connected
    assert code == CLOSE_NOT_ALLOWED
    denied = await db(
        lambda: AuditEvent.objects.filter(actor_id=outsider.pk, action=Action.DENIED).count()
    )()
    assert denied == 1


async def test_another_patient_is_refused(
    room: Consultation, patient2: User, record2: Patient
) -> None:
    _communicator, connected, code = await attempt(room.room, await user_cookie(patient2))

    assert not connected
    assert code == CLOSE_NOT_ALLOWED


async def test_an_unknown_room_is_refused(clinician: User, room: Consultation) -> None:
    _communicator, connected, code = await attempt("no-such-room", await user_cookie(clinician))

    assert not connected
    assert code == CLOSE_NOT_ALLOWED


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_at": timezone.now() - dt.timedelta(minutes=1)},
        {"revoked_at": timezone.now()},
        {"used_at": None},
    ],
    ids=["expired", "revoked", "never-redeemed"],
)
async def test_a_guest_without_a_valid_invitation_is_refused(
    room: Consultation, clinician: User, fields: dict[str, Any]
) -> None:
    invite = await db(make_invite)(room, clinician, **fields)

    _communicator, connected, code = await attempt(room.room, await db(guest_cookie)(invite))

    assert not connected
    assert code == CLOSE_NOT_ALLOWED


async def test_a_guest_with_a_valid_invitation_joins_and_waits(
    room: Consultation, clinician: User
) -> None:
    invite = await db(make_invite)(room, clinician)
    doctor = await join(room.room, await user_cookie(clinician))

    guest = await join(room.room, await db(guest_cookie)(invite))

    assert guest.welcome["you"] == {
        "key": f"g{invite.pk}",
        "seat": "guest",
        "name": "Ana Interprète",
        "admitted": False,
    }
    assert guest.welcome["peers"] == []  # nobody is shown to someone waiting
    joined = await doctor.expect("peer.joined")
    assert joined["peer"]["key"] == f"g{invite.pk}"
    await guest.close()
    await doctor.close()


# ---------------------------------------------------------------------------------------------
# The waiting room


async def test_the_patient_waits_until_a_clinician_admits_them(
    room: Consultation, patient: User, clinician: User
) -> None:
    doctor = await join(room.room, await user_cookie(clinician))
    assert doctor.welcome["you"]["admitted"] is True
    assert doctor.welcome["ice_servers"] == []
    assert doctor.welcome["call"] == {"status": "open", "started_at": None}

    sick = await join(room.room, await user_cookie(patient))

    assert sick.welcome["you"]["admitted"] is False
    assert sick.welcome["peers"] == []
    joined = await doctor.expect("peer.joined")
    assert joined["peer"] == {
        "key": f"u{patient.pk}",
        "seat": "patient",
        "name": patient.get_full_name(),
        "admitted": False,
    }
    # The clinician's pages hear who is waiting (through their user group).
    waiting = await doctor.expect("consult.waiting")
    assert waiting["waiting"] == [
        {"key": f"u{patient.pk}", "name": patient.get_full_name(), "seat": "patient"}
    ]
    assert waiting["url"] == f"/consult/{room.room}/"
    # Waiting: no signalling yet.
    await sick.send({"type": "signal", "to": f"u{clinician.pk}", "data": {"sdp": "x"}})
    assert (await sick.expect("error"))["code"] == "not_allowed"

    await doctor.send({"type": "admit", "key": f"u{patient.pk}"})

    admitted = await sick.expect("admitted")
    assert [p["key"] for p in admitted["peers"]] == [f"u{clinician.pk}"]
    assert (await doctor.expect("peer.admitted"))["peer"]["admitted"] is True
    assert (await doctor.expect("consult.waiting"))["waiting"] == []
    await sick.close()
    await doctor.close()


async def test_an_admitted_patient_who_reconnects_is_in_at_once(
    room: Consultation, patient: User, clinician: User
) -> None:
    doctor, sick = await in_call(room, patient, clinician)
    await sick.close()
    await doctor.expect("peer.left")

    again = await join(room.room, await user_cookie(patient))

    assert again.welcome["you"]["admitted"] is True
    assert [p["key"] for p in again.welcome["peers"]] == [f"u{clinician.pk}"]
    await again.close()
    await doctor.close()


async def test_only_clinicians_admit_or_deny(
    room: Consultation, patient: User, clinician: User
) -> None:
    invite = await db(make_invite)(room, clinician)
    doctor, sick = await in_call(room, patient, clinician)
    guest = await join(room.room, await db(guest_cookie)(invite))

    await sick.send({"type": "admit", "key": f"g{invite.pk}"})
    await guest.send({"type": "admit", "key": f"g{invite.pk}"})

    assert (await sick.expect("error"))["code"] == "not_allowed"
    assert (await guest.expect("error"))["code"] == "not_allowed"
    assert "admitted" not in await guest.types_received()
    attendance_admitted = await db(
        lambda: room.attendances.get(guest=invite).admitted_at is not None
    )()
    assert not attendance_admitted
    await guest.close()
    await sick.close()
    await doctor.close()


async def test_a_denied_guest_is_told_and_disconnected(room: Consultation, clinician: User) -> None:
    invite = await db(make_invite)(room, clinician)
    doctor = await join(room.room, await user_cookie(clinician))
    guest = await join(room.room, await db(guest_cookie)(invite))

    await doctor.send({"type": "deny", "key": f"g{invite.pk}"})

    await guest.expect("denied")
    assert await guest.expect_close() == CLOSE_REFUSED
    assert (await doctor.expect("peer.left"))["key"] == f"g{invite.pk}"
    await doctor.close()


async def test_admitting_nobody_is_an_error(room: Consultation, clinician: User) -> None:
    doctor = await join(room.room, await user_cookie(clinician))

    await doctor.send({"type": "admit", "key": "u999999"})
    error = await doctor.expect("error")
    await doctor.send({"type": "admit", "key": "'; drop table"})

    assert error["code"] == "not_allowed"
    assert (await doctor.expect("error"))["code"] == "not_allowed"
    await doctor.close()


# ---------------------------------------------------------------------------------------------
# Relaying


async def test_signals_go_between_admitted_members_of_the_room_only(
    room: Consultation,
    patient: User,
    clinician: User,
    patient2: User,
    record2: Patient,
    video_visit: AppointmentType,
) -> None:
    other_appointment = await db(make_video_appointment)(record2, video_visit)
    other_room = await db(room_for_appointment)(other_appointment)
    invite = await db(make_invite)(room, clinician)
    doctor, sick = await in_call(room, patient, clinician)
    guest = await join(room.room, await db(guest_cookie)(invite))  # waiting
    elsewhere = await join(other_room.room, await user_cookie(patient2))

    offer = {"description": {"type": "offer", "sdp": "v=0..."}}
    await doctor.send({"type": "signal", "to": f"u{patient.pk}", "data": offer})
    relayed = await sick.expect("signal")
    await sick.send({"type": "signal", "to": f"u{clinician.pk}", "data": {"candidate": "c"}})
    answer = await doctor.expect("signal")
    # Not to someone waiting, nor to anyone of another room.
    await doctor.send({"type": "signal", "to": f"g{invite.pk}", "data": offer})
    to_waiting = await doctor.expect("error")
    await doctor.send({"type": "signal", "to": f"u{patient2.pk}", "data": offer})
    to_other_room = await doctor.expect("error")

    assert relayed == {"type": "signal", "from": f"u{clinician.pk}", "data": offer}
    assert answer == {"type": "signal", "from": f"u{patient.pk}", "data": {"candidate": "c"}}
    assert to_waiting["code"] == to_other_room["code"] == "not_allowed"
    assert "signal" not in await guest.types_received()
    assert "signal" not in await elsewhere.types_received(within=0.1)
    for socket in (elsewhere, guest, sick, doctor):
        await socket.close()


async def test_annotations_and_state_reach_the_admitted_only(
    room: Consultation, patient: User, clinician: User
) -> None:
    invite = await db(make_invite)(room, clinician)
    doctor, sick = await in_call(room, patient, clinician)
    guest = await join(room.room, await db(guest_cookie)(invite))
    stroke = {"tool": "arrow", "color": "#d00", "points": [[0.1, 0.2], [0.5, 0.5]]}

    await doctor.send({"type": "annotation", "data": stroke})
    await sick.send({"type": "state", "data": {"audio": False, "video": True, "sharing": False}})
    await guest.send({"type": "annotation", "data": stroke})

    assert await sick.expect("annotation") == {
        "type": "annotation",
        "from": f"u{clinician.pk}",
        "data": stroke,
    }
    assert (await doctor.expect("state"))["data"]["audio"] is False
    assert (await guest.expect("error"))["code"] == "not_allowed"
    assert {"annotation", "state"}.isdisjoint(await guest.types_received())
    assert "annotation" not in await doctor.types_received(within=0.1)  # not back to the sender
    for socket in (guest, sick, doctor):
        await socket.close()


async def test_bad_messages_get_an_error_and_the_socket_lives_on(
    room: Consultation, clinician: User
) -> None:
    doctor = await join(room.room, await user_cookie(clinician))

    await doctor.communicator.send_to(text_data="{not json")
    await doctor.communicator.send_to(bytes_data=b"\x00\x01")
    await doctor.send({"type": "signal", "to": "u1", "data": "x" * (65 * 1024)})
    await doctor.send({"type": "dance"})
    await doctor.send({"type": "signal", "to": 5, "data": []})
    await doctor.communicator.send_to(text_data="[1, 2]")

    for _ in range(6):
        assert (await doctor.expect("error"))["code"] == "bad_message"
    await doctor.send({"type": "ping"})
    assert await doctor.expect("pong") == {"type": "pong"}
    await doctor.close()


async def test_the_rate_limit_drops_then_closes(
    room: Consultation, clinician: User, settings: Any
) -> None:
    settings.TELECONSULT_SIGNAL_RATE = 10  # per 10 s: one more message allowed each second
    doctor = await join(room.room, await user_cookie(clinician))

    for _ in range(12):
        await doctor.send({"type": "ping"})
    answers = []
    for _ in range(12):
        output = await doctor.communicator.receive_output(timeout=5)
        answers.append(json.loads(output["text"]))
    # Three times the rate in a burst: the socket is closed.
    for _ in range(25):
        await doctor.send({"type": "ping"})

    assert [a["type"] for a in answers[:10]] == ["pong"] * 10
    assert {"type": "error", "code": "rate_limited"}.items() <= answers[-1].items()
    assert await doctor.expect_close() == CLOSE_RATE_LIMITED


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

    from apps.teleconsult.bench import Server, free_port

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
