"""The cast of the signalling tests: a video appointment happening now, its room, sockets."""

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
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.records.models import Patient
from apps.scheduling.models import Appointment, AppointmentType, Participant
from apps.teleconsult.models import Consultation, GuestInvite
from apps.teleconsult.services.rooms import (
    GUEST_SESSION_KEY,
    room_for_appointment,
)
from tests.conftest import verified_client
from tests.scheduling.conftest import *  # noqa: F403 - the record and scheduling cast
from virtualhospital.asgi import application

# What `import *` brings: the fixtures (the helpers are imported by name).
__all__ = ["appointment", "room"]

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
    if not connected:
        # The browser answers the refusal: the consumer ends by itself instead of being
        # cancelled at event-loop teardown, which can hang inside the Redis channel layer.
        await communicator.disconnect()
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
