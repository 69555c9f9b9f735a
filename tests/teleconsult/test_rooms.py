"""Who may enter a consultation room, the waiting room, and the call's start and end
(apps/teleconsult/services/rooms.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent, Outcome
from apps.records.models import Encounter, Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.models import Appointment, AppointmentType, Participant
from apps.teleconsult.models import Attendance, Consultation, GuestInvite, Seat
from apps.teleconsult.services import ConsultError
from apps.teleconsult.services.rooms import (
    arrive,
    call_connected,
    do_admit,
    do_deny,
    do_end_call,
    do_open_adhoc_room,
    get_room_for_user,
    is_admitted,
    leave,
    resolve_member,
    room_for_appointment,
    room_group,
    still_allowed,
)
from tests.scheduling.conftest import *  # noqa: F403 - the record and scheduling cast

START = dt.datetime(2031, 3, 4, 14, 0, tzinfo=dt.UTC)


def make_appointment(
    patient: Patient,
    appointment_type: AppointmentType,
    *clinicians: User,
    starts: dt.datetime = START,
    mode: str = "video",
) -> Appointment:
    ends = starts + dt.timedelta(minutes=appointment_type.minutes)
    appointment = Appointment.objects.create(
        patient=patient, type=appointment_type, starts_at=starts, ends_at=ends, mode=mode
    )
    for clinician in clinicians:
        Participant.objects.create(
            appointment=appointment, user=clinician, starts_at=starts, ends_at=ends
        )
    return appointment


@pytest.fixture
def appointment(record: Patient, video_visit: AppointmentType, clinician: User) -> Appointment:
    return make_appointment(record, video_visit, clinician)


@pytest.fixture
def room(appointment: Appointment) -> Consultation:
    return room_for_appointment(appointment)


def make_invite(room: Consultation, by: User, **fields: Any) -> GuestInvite:
    fields.setdefault("expires_at", START + dt.timedelta(hours=2))
    fields.setdefault("used_at", START - dt.timedelta(minutes=5))
    return GuestInvite.objects.create(
        consultation=room,
        name="Marc Proche",
        relation=GuestInvite.Relation.FAMILY,
        token_hash=secrets.token_hex(32),
        created_by=by,
        **fields,
    )


def audits(**filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("seq"))


# ---------------------------------------------------------------------------------------------
# Rooms


def test_a_video_appointment_has_one_room(appointment: Appointment) -> None:
    first = room_for_appointment(appointment)
    again = room_for_appointment(appointment)

    assert first.pk == again.pk
    assert first.patient_id == appointment.patient_id
    assert len(first.room) >= 16  # random, says nothing about the patient


def test_an_in_person_appointment_has_no_room(
    record: Patient, consultation: AppointmentType, clinician: User
) -> None:
    appointment = make_appointment(record, consultation, clinician, mode="in_person")

    with pytest.raises(ConsultError):
        room_for_appointment(appointment)
    assert not Consultation.objects.exists()


def test_a_care_team_clinician_opens_an_urgent_room(record: Patient, clinician: User) -> None:
    consultation = do_open_adhoc_room(clinician, record.pk, reason="Douleur thoracique")

    assert consultation.urgent and consultation.appointment is None
    assert consultation.opened_by == clinician
    assert audits(actor_id=clinician.pk, action=Action.CREATE, object_id=str(consultation.pk))


def test_an_outsider_cannot_open_an_urgent_room(
    record: Patient, outsider: User, patient: User
) -> None:
    with pytest.raises(Http404):
        do_open_adhoc_room(outsider, record.pk)
    with pytest.raises(Http404):
        do_open_adhoc_room(patient, record.pk)

    assert not Consultation.objects.exists()
    denied = audits(action=Action.DENIED, outcome=Outcome.DENIED)
    assert [e.actor_id for e in denied] == [outsider.pk, patient.pk]


# ---------------------------------------------------------------------------------------------
# Who may enter


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (START - dt.timedelta(minutes=31), False),
        (START - dt.timedelta(minutes=30), True),
        (START + dt.timedelta(minutes=10), True),
        (START + dt.timedelta(minutes=20 + 60), True),
        (START + dt.timedelta(minutes=20 + 61), False),
    ],
    ids=["too-early", "earliest", "during", "latest", "too-late"],
)
def test_the_patient_enters_in_the_appointment_window(
    room: Consultation, patient: User, moment: dt.datetime, allowed: bool
) -> None:
    member = resolve_member(room, patient, now=moment)

    assert (member is not None) is allowed
    if member is not None:
        assert member.seat == Seat.PATIENT and member.key == f"u{patient.pk}"


def test_the_patient_of_an_urgent_room_enters_any_time(record: Patient, clinician: User) -> None:
    consultation = do_open_adhoc_room(clinician, record.pk)
    patient = record.user
    assert patient is not None

    member = resolve_member(consultation, patient, now=timezone.now() + dt.timedelta(days=3))

    assert member is not None and member.is_patient


def test_a_call_in_progress_keeps_the_patient_past_the_window(
    room: Consultation, patient: User, clinician: User
) -> None:
    _in_call(room, patient, clinician)
    call_connected(room, clinician)
    room.refresh_from_db()
    late = START + dt.timedelta(hours=3)

    assert resolve_member(room, patient, now=late) is not None
    assert resolve_member(room, patient, now=START - dt.timedelta(minutes=31)) is None


def test_another_patient_never_enters(room: Consultation, patient2: User, record2: Patient) -> None:
    assert resolve_member(room, patient2, now=START) is None


def test_participating_clinicians_enter_other_clinicians_do_not(
    room: Consultation, clinician: User, nurse: User, outsider: User
) -> None:
    # The nurse is on the patient's care team but does not take part in the appointment.
    member = resolve_member(room, clinician, now=START)

    assert member is not None and member.is_clinician
    assert member.access is not None and member.access.via == "care-team"
    assert resolve_member(room, nurse, now=START) is None
    assert resolve_member(room, outsider, now=START) is None


def test_a_participant_without_access_to_the_patient_does_not_enter(
    record: Patient, video_visit: AppointmentType, outsider: User
) -> None:
    appointment = make_appointment(record, video_visit, outsider)

    assert resolve_member(room_for_appointment(appointment), outsider, now=START) is None


def test_an_inactive_participant_does_not_enter(
    room: Consultation, appointment: Appointment, clinician: User
) -> None:
    appointment.participants.update(active=False)

    assert resolve_member(room, clinician, now=START) is None


def test_only_the_opener_enters_an_urgent_room(
    record: Patient, clinician: User, nurse: User
) -> None:
    consultation = do_open_adhoc_room(clinician, record.pk)

    assert resolve_member(consultation, clinician) is not None
    assert resolve_member(consultation, nurse) is None


def test_billing_staff_and_admins_do_not_enter(
    room: Consultation, billing_user: User, admin_user: User
) -> None:
    assert resolve_member(room, billing_user, now=START) is None
    assert resolve_member(room, admin_user, now=START) is None


@pytest.mark.parametrize("status", ["cancelled", "noshow", "fulfilled"])
def test_nobody_enters_the_room_of_a_closed_appointment(
    room: Consultation,
    appointment: Appointment,
    patient: User,
    clinician: User,
    status: str,
) -> None:
    invite = make_invite(room, clinician)
    appointment.status = status
    appointment.save(update_fields=["status"])
    room.refresh_from_db()

    assert resolve_member(room, patient, now=START) is None
    assert resolve_member(room, clinician, now=START) is None
    assert resolve_member(room, None, invite.pk, now=START) is None


@pytest.mark.parametrize("status", ["ended", "cancelled"])
def test_nobody_enters_a_closed_consultation(
    room: Consultation, patient: User, clinician: User, status: str
) -> None:
    invite = make_invite(room, clinician)
    Consultation.objects.filter(pk=room.pk).update(status=status)
    room.refresh_from_db()

    assert resolve_member(room, patient, now=START) is None
    assert resolve_member(room, clinician, now=START) is None
    assert resolve_member(room, None, invite.pk, now=START) is None


def test_a_guest_with_a_redeemed_valid_invitation_enters(
    room: Consultation, clinician: User
) -> None:
    invite = make_invite(room, clinician)

    member = resolve_member(room, None, str(invite.pk), now=START)

    assert member is not None
    assert (member.seat, member.key, member.display_name) == (
        "guest",
        f"g{invite.pk}",
        "Marc Proche",
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_at": START - dt.timedelta(seconds=1)},
        {"revoked_at": START - dt.timedelta(minutes=1)},
        {"used_at": None},
    ],
    ids=["expired", "revoked", "never-redeemed"],
)
def test_a_guest_without_a_valid_invitation_does_not_enter(
    room: Consultation, clinician: User, fields: dict[str, Any]
) -> None:
    invite = make_invite(room, clinician, **fields)

    assert resolve_member(room, None, invite.pk, now=START) is None


def test_an_invitation_opens_its_own_room_only(
    room: Consultation, clinician: User, record: Patient
) -> None:
    other = do_open_adhoc_room(clinician, record.pk)
    invite = make_invite(other, clinician)

    assert resolve_member(room, None, invite.pk, now=START) is None
    assert resolve_member(room, None, "1; drop", now=START) is None


def test_entering_is_audited_and_a_refusal_too(
    room: Consultation, clinician: User, outsider: User, rf: Any
) -> None:
    # The appointment window is in the future: the clinician may enter any time.
    member = get_room_for_user(clinician, room.room, request=rf.get("/"))
    with pytest.raises(Http404):
        get_room_for_user(outsider, room.room)
    with pytest.raises(Http404):
        get_room_for_user(clinician, "not-a-room")

    assert member.is_clinician
    read = audits(actor_id=clinician.pk, action=Action.READ)
    assert [(e.object_id, e.patient_id, e.detail["seat"]) for e in read] == [
        (str(room.pk), str(room.patient_id), "clinician")
    ]
    denied = audits(action=Action.DENIED, outcome=Outcome.DENIED)
    assert [(e.actor_id, e.object_id, e.patient_id) for e in denied] == [
        (outsider.pk, room.room, str(room.patient_id)),
        (clinician.pk, "not-a-room", ""),
    ]


def test_still_allowed_follows_changes(
    room: Consultation, appointment: Appointment, clinician: User
) -> None:
    invite = make_invite(room, clinician, expires_at=timezone.now() + dt.timedelta(hours=1))
    doctor = get_room_for_user(clinician, room.room, action=None)
    guest = get_room_for_user(None, room.room, guest_id=invite.pk, action=None)
    assert still_allowed(doctor) and still_allowed(guest)

    GuestInvite.objects.filter(pk=invite.pk).update(revoked_at=timezone.now())
    appointment.participants.update(active=False)

    assert not still_allowed(guest)
    assert not still_allowed(doctor)


# ---------------------------------------------------------------------------------------------
# The waiting room


def test_clinicians_are_admitted_on_arrival_others_wait(
    room: Consultation, patient: User, clinician: User
) -> None:
    doctor = resolve_member(room, clinician, now=START)
    sick = resolve_member(room, patient, now=START)
    assert doctor is not None and sick is not None

    doctor_attendance = arrive(doctor)
    patient_attendance = arrive(sick)
    arrive(sick)  # a reload

    assert is_admitted(doctor_attendance) and doctor_attendance.admitted_by == clinician
    assert not is_admitted(patient_attendance)
    assert Attendance.objects.filter(consultation=room, user=patient).count() == 1
    assert patient_attendance.seat == Seat.PATIENT
    assert patient_attendance.display_name == patient.get_full_name()


def test_a_clinician_admits_and_denies(room: Consultation, patient: User, clinician: User) -> None:
    doctor = resolve_member(room, clinician, now=START)
    sick = resolve_member(room, patient, now=START)
    assert doctor is not None and sick is not None
    arrive(sick)

    denied = do_deny(doctor, f"u{patient.pk}")
    assert not is_admitted(denied) and denied.denied_at is not None
    admitted = do_admit(doctor, f"u{patient.pk}")

    assert is_admitted(admitted) and admitted.admitted_by == clinician
    assert admitted.denied_at is None
    details = [e.detail for e in audits(actor_id=clinician.pk, action=Action.UPDATE)]
    assert [d.get("denied") or d.get("admitted") for d in details] == [
        f"u{patient.pk}",
        f"u{patient.pk}",
    ]
    assert "denied" in details[0] and "admitted" in details[1]


def test_a_clinician_cannot_be_turned_away(
    room: Consultation, appointment: Appointment, clinician: User, nurse: User
) -> None:
    Participant.objects.create(
        appointment=appointment,
        user=nurse,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        role=Participant.Role.SECONDARY,
    )
    doctor = resolve_member(room, clinician, now=START)
    colleague = resolve_member(room, nurse, now=START)
    assert doctor is not None and colleague is not None
    arrive(colleague)

    with pytest.raises(ConsultError):
        do_deny(doctor, f"u{nurse.pk}")

    assert is_admitted(arrive(colleague))


def test_leaving_is_recorded_and_coming_back_clears_it(room: Consultation, patient: User) -> None:
    sick = resolve_member(room, patient, now=START)
    assert sick is not None
    arrive(sick)

    leave(sick)
    left = Attendance.objects.get(consultation=room, user=patient).last_left_at
    back = arrive(sick)

    assert left is not None
    assert back.last_left_at is None


def test_patients_and_guests_cannot_admit(
    room: Consultation, patient: User, clinician: User
) -> None:
    invite = make_invite(room, clinician)
    sick = resolve_member(room, patient, now=START)
    guest = resolve_member(room, None, invite.pk, now=START)
    assert sick is not None and guest is not None
    arrive(guest)
    arrive(sick)

    for who in (sick, guest):
        with pytest.raises(ConsultError):
            do_admit(who, f"g{invite.pk}")
        with pytest.raises(ConsultError):
            do_deny(who, f"u{patient.pk}")

    assert not Attendance.objects.filter(admitted_at__isnull=False).exists()
    assert not Attendance.objects.filter(denied_at__isnull=False).exists()


@pytest.mark.parametrize("key", ["u999999", "x1", "u", "", "g1; drop", None])
def test_admitting_someone_who_is_not_there_fails(
    room: Consultation, clinician: User, key: Any
) -> None:
    doctor = resolve_member(room, clinician, now=START)
    assert doctor is not None

    with pytest.raises(ConsultError):
        do_admit(doctor, key)


def test_admitting_is_limited_to_the_room(
    room: Consultation, clinician: User, record: Patient, patient: User
) -> None:
    other = do_open_adhoc_room(clinician, record.pk)
    elsewhere = resolve_member(other, patient)
    assert elsewhere is not None
    arrive(elsewhere)  # the patient waits in the urgent room, not in this one
    doctor = resolve_member(room, clinician, now=START)
    assert doctor is not None

    with pytest.raises(ConsultError):
        do_admit(doctor, f"u{patient.pk}")


# ---------------------------------------------------------------------------------------------
# The call


def _in_call(room: Consultation, patient: User, clinician: User) -> Any:
    doctor = resolve_member(room, clinician, now=START)
    sick = resolve_member(room, patient, now=START)
    assert doctor is not None and sick is not None
    arrive(doctor)
    arrive(sick)
    do_admit(doctor, f"u{patient.pk}")
    return doctor, sick


def test_the_call_starts_once(
    room: Consultation, appointment: Appointment, patient: User, clinician: User
) -> None:
    _in_call(room, patient, clinician)

    first = call_connected(room, clinician)
    second = call_connected(room, clinician)

    assert first.started_at is not None and second.started_at == first.started_at
    assert first.status == Consultation.Status.LIVE
    encounter = Encounter.objects.get(patient=room.patient)
    assert (encounter.status, encounter.kind) == (Encounter.Status.IN_PROGRESS, "VR")
    assert encounter.started_at == first.started_at and encounter.practitioner == clinician
    assert second.encounter_id == encounter.pk
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.ARRIVED
    created = audits(action=Action.CREATE, object_type="records.encounter")
    assert [(e.actor_id, e.object_id) for e in created] == [(clinician.pk, str(encounter.pk))]


def test_ending_the_call_closes_the_encounter_and_the_appointment(
    room: Consultation,
    appointment: Appointment,
    patient: User,
    clinician: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    doctor, _sick = _in_call(room, patient, clinician)
    invite = make_invite(room, clinician)
    call_connected(room, clinician)

    def end() -> Consultation:
        with django_capture_on_commit_callbacks(execute=True):
            return do_end_call(doctor)

    async def end_and_listen() -> tuple[Consultation, dict[str, Any]]:
        # One event loop for listening and sending, whatever the channel layer.
        layer = get_channel_layer()
        listener = await layer.new_channel()
        await layer.group_add(room_group(room.room), listener)
        ended = await sync_to_async(end)()
        message = await asyncio.wait_for(layer.receive(listener), timeout=5)
        await layer.group_discard(room_group(room.room), listener)
        return ended, message

    ended, message = async_to_sync(end_and_listen)()

    room.refresh_from_db()
    encounter = Encounter.objects.get(pk=room.encounter_id)
    assert ended.status == room.status == Consultation.Status.ENDED
    assert room.ended_by == clinician
    assert room.started_at is not None and room.ended_at is not None
    assert room.ended_at >= room.started_at
    assert (encounter.started_at, encounter.ended_at) == (room.started_at, room.ended_at)
    assert encounter.status == Encounter.Status.FINISHED
    assert room.duration == room.ended_at - room.started_at
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.FULFILLED
    invite.refresh_from_db()
    assert invite.revoked_at is not None
    ended_rows = audits(actor_id=clinician.pk, action=Action.UPDATE, object_id=str(room.pk))
    assert ended_rows[-1].detail["ended"] is True
    assert message["event"] == {"type": "consult.closed", "room": room.room, "reason": "ended"}
    # Ending twice changes nothing.
    assert do_end_call(doctor).ended_at == room.ended_at


def test_a_call_nobody_joined_ends_without_an_encounter(
    room: Consultation, appointment: Appointment, clinician: User
) -> None:
    doctor = resolve_member(room, clinician, now=START)
    assert doctor is not None

    do_end_call(doctor)

    room.refresh_from_db()
    appointment.refresh_from_db()
    assert room.status == Consultation.Status.ENDED and room.encounter is None
    assert room.duration is None
    assert appointment.status == Appointment.Status.BOOKED  # the clinic records the no-show


def test_only_a_clinician_ends_the_call(room: Consultation, patient: User, clinician: User) -> None:
    _doctor, sick = _in_call(room, patient, clinician)
    call_connected(room, clinician)

    with pytest.raises(ConsultError):
        do_end_call(sick)

    room.refresh_from_db()
    assert room.status == Consultation.Status.LIVE


def test_a_nurse_taking_part_is_a_clinician_of_the_room(
    record: Patient, video_visit: AppointmentType, nurse: User, make_user: Any
) -> None:
    physio = make_user(Role.ALLIED, email="physio@example.test")
    do_add_member(default_team(record), physio)
    appointment = make_appointment(record, video_visit, nurse, physio)
    room = room_for_appointment(appointment)

    for user in (nurse, physio):
        member = resolve_member(room, user, now=START)
        assert member is not None and member.is_clinician
