"""The cast of the record-side tests (chat, consent, recordings, guests, JSON API, FHIR).

A video appointment happening now between `patient` (record `record`) and `clinician`, with a
second participating clinician (`colleague`); its room; helpers that put people in the call as
the signalling consumer would (arrive, admit). Outsiders come from the shared cast: `patient2`
(another patient), `outsider` (a clinician taking no part), a guest of another room, anonymous.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone, translation
from PIL import Image

from apps.accounts.models import Organization, Role, User
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.models import Appointment, AppointmentType, Participant
from apps.teleconsult.models import Attendance, Consultation, GuestInvite
from apps.teleconsult.services.guests import do_invite
from apps.teleconsult.services.rooms import (
    GUEST_SESSION_KEY,
    Member,
    arrive,
    call_connected,
    do_admit,
    do_end_call,
    get_room_for_user,
    room_for_appointment,
)
from tests.scheduling.conftest import *  # noqa: F403 - the record and scheduling cast

# The first bytes of a WebM file (EBML header) and a recognisable cluster after them.
WEBM = (
    b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
    b"\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02"
)


def webm_chunk(n: int, size: int = 4096) -> bytes:
    """A chunk as MediaRecorder uploads it: header on the first, cluster data after."""
    body = (f"cluster-{n:04d}-".encode() + os.urandom(16)) * (size // 30)
    return (WEBM if n == 0 else b"\x1f\x43\xb6\x75") + body[: size - 4]


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (20, 120, 200, 255)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """Messages are matched in English (the default language is French)."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def colleague(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    """A nurse on the patient's care team who takes part in the appointment too."""
    user = make_user(Role.NURSE, email="colleague@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


@pytest.fixture
def appointment(
    record: Patient, video_visit: AppointmentType, clinician: User, colleague: User
) -> Appointment:
    starts = timezone.now() - dt.timedelta(minutes=2)
    ends = starts + dt.timedelta(minutes=video_visit.minutes)
    appointment = Appointment.objects.create(
        patient=record, type=video_visit, starts_at=starts, ends_at=ends, mode="video"
    )
    for user, role in ((clinician, "primary"), (colleague, "secondary")):
        Participant.objects.create(
            appointment=appointment, user=user, role=role, starts_at=starts, ends_at=ends
        )
    return appointment


@pytest.fixture
def room(appointment: Appointment) -> Consultation:
    return room_for_appointment(appointment)


def member(room: Consultation, user: User | None, guest: GuestInvite | None = None) -> Member:
    return get_room_for_user(user, room.room, guest_id=guest.pk if guest else None, action=None)


def in_call(room: Consultation, user: User, guest: GuestInvite | None = None) -> Member:
    """`user` (or the guest) in the room and admitted by the clinician of the room."""
    someone = member(room, user, guest)
    attendance: Attendance = arrive(someone)
    if attendance.admitted_at is None:
        host = room.appointment.participants.first().user if room.appointment else room.opened_by
        do_admit(member(room, host), someone.key)
    return someone


@pytest.fixture
def call(room: Consultation, clinician: User, patient: User) -> dict[str, Member]:
    """The call has started: clinician and patient admitted and connected."""
    people = {"clinician": in_call(room, clinician), "patient": in_call(room, patient)}
    call_connected(room, clinician)
    room.refresh_from_db()
    for someone in people.values():
        someone.consultation = room
    return people


def end(room: Consultation, clinician: User) -> Consultation:
    do_end_call(member(room, clinician))
    room.refresh_from_db()
    return room


def guest_invite(room: Consultation, clinician: User) -> GuestInvite:
    """An invitation already opened in a browser (bound to its session)."""
    invite, _token = do_invite(member(room, clinician), "Ana Interprète", "interpreter")
    invite.used_at = timezone.now()
    invite.session_key_hash = "0" * 64
    invite.save(update_fields=["used_at", "session_key_hash"])
    return invite


def guest_client(invite: GuestInvite) -> Client:
    """A browser whose session holds a redeemed invitation."""
    client = Client()
    session = client.session
    session[GUEST_SESSION_KEY] = invite.pk
    session.save()
    return client


@pytest.fixture
def other_room(
    make_patient: Callable[..., Patient],
    video_visit: AppointmentType,
    outsider: User,
) -> Consultation:
    """Another patient's room, run by the outsider clinician (for a guest of another room)."""
    chart = make_patient()
    do_add_member(default_team(chart), outsider)
    starts = timezone.now() - dt.timedelta(minutes=2)
    ends = starts + dt.timedelta(minutes=20)
    appointment = Appointment.objects.create(
        patient=chart, type=video_visit, starts_at=starts, ends_at=ends, mode="video"
    )
    Participant.objects.create(
        appointment=appointment, user=outsider, starts_at=starts, ends_at=ends
    )
    return room_for_appointment(appointment)
