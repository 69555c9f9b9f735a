"""The signalling socket `/ws/consult/<room>/` against the real ASGI application and channel layer:
who may connect, the waiting room, relaying (see also test_consumer_lifecycle.py).

Under CI the layer is channels-redis (REDIS_URL): everything a socket learns about the room
crosses Redis, as it would between two web processes.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from channels.layers import get_channel_layer
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.records.models import Patient
from apps.scheduling.models import AppointmentType
from apps.teleconsult.consumers import (
    CLOSE_NOT_ALLOWED,
    CLOSE_RATE_LIMITED,
    CLOSE_REFUSED,
)
from apps.teleconsult.models import Consultation
from apps.teleconsult.presence import RedisRegistry, get_registry
from apps.teleconsult.services.rooms import (
    room_for_appointment,
)
from tests.conftest import in_ci, signed_in_client
from tests.scheduling.conftest import *  # noqa: F403 - the record and scheduling cast
from tests.teleconsult.sockets import *  # noqa: F403 - the room fixtures
from tests.teleconsult.sockets import (
    attempt,
    cookie_of,
    guest_cookie,
    in_call,
    join,
    make_invite,
    make_video_appointment,
    user_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


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
