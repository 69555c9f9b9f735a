"""Booking: on free time only, never twice, joint only where all are free; changes by policy."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection
from django.http import Http404
from django.utils import timezone, translation

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.records.models import Patient
from apps.scheduling.models import Appointment, AppointmentType, Participant, Schedule
from apps.scheduling.services import SchedulingError, SlotTaken
from apps.scheduling.services.booking import (
    access_for_booking,
    do_book_appointment,
    do_cancel_appointment,
    do_reschedule_appointment,
    do_set_status,
    get_appointment_for_user,
)

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def test_a_patient_books_a_free_slot_of_the_grid(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    monday = next_weekday(0)
    access = access_for_booking(patient, record.pk)

    appointment = do_book_appointment(access, consultation, at(monday, 8, 30), [clinician])

    assert (appointment.status, appointment.mode) == ("booked", "in_person")
    assert appointment.ends_at - appointment.starts_at == dt.timedelta(minutes=30)
    assert appointment.location is not None
    assert list(appointment.participants.values_list("user", "role")) == [(clinician.pk, "primary")]
    assert AuditEvent.objects.filter(object_type="scheduling.appointment", action="create").exists()
    with pytest.raises(SchedulingError):  # off the grid: patients book the offered slots
        do_book_appointment(access, consultation, at(monday, 9, 10), [clinician])


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (lambda day: at(day, 13), "not free"),  # outside availability
        (lambda day: at(day, 7, 30), "not free"),
        (lambda day: timezone.now() - dt.timedelta(days=1), "closes"),  # the past
    ],
)
def test_bad_times_are_refused_with_a_clear_message(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    when: Any,
    message: str,
) -> None:
    access = access_for_booking(patient, record.pk)
    with translation.override("en"), pytest.raises(SchedulingError, match=message):
        do_book_appointment(access, consultation, when(next_weekday(0)), [clinician])
    assert not Appointment.objects.exists()


def test_a_taken_slot_gives_the_next_free_ones(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    patient2: User,
    clinician: User,
) -> None:
    monday = next_weekday(0)
    do_book_appointment(
        access_for_booking(patient, record.pk), consultation, at(monday, 8), [clinician]
    )

    with pytest.raises(SlotTaken) as taken:
        do_book_appointment(
            access_for_booking(patient2, record2.pk), consultation, at(monday, 8), [clinician]
        )

    assert [s.starts_at for s in taken.value.alternatives][:2] == [at(monday, 8, 30), at(monday, 9)]


def test_a_patient_cannot_be_in_two_places(
    schedule: Schedule,
    nurse_schedule: Schedule,
    consultation: AppointmentType,
    video_visit: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    nurse: User,
) -> None:
    monday = next_weekday(0)
    access = access_for_booking(patient, record.pk)
    do_book_appointment(access, video_visit, at(monday, 14), [clinician])

    with (
        translation.override("en"),
        pytest.raises(SchedulingError, match="already has an appointment"),
    ):
        do_book_appointment(
            access_for_booking(nurse, record.pk), video_visit, at(monday, 14, 10), [nurse]
        )


def test_a_profession_that_does_not_deliver_the_type_is_refused(
    schedule: Schedule,
    nurse_schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    clinician: User,
    nurse: User,
) -> None:
    with translation.override("en"), pytest.raises(SchedulingError, match="does not"):
        do_book_appointment(
            access_for_booking(clinician, record.pk), consultation, at(next_weekday(0), 9), [nurse]
        )


def test_a_joint_appointment_only_where_everyone_is_free(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    video_visit: AppointmentType,
    record: Patient,
    record2: Patient,
    clinician: User,
    nurse: User,
) -> None:
    tuesday = next_weekday(1)
    coordinator = access_for_booking(clinician, record.pk)
    # the nurse is busy at 10:00 with another patient
    do_book_appointment(
        access_for_booking(clinician, record2.pk), video_visit, at(tuesday, 14), [nurse]
    )
    do_book_appointment(
        access_for_booking(clinician, record2.pk), joint_visit, at(tuesday, 10), [nurse, clinician]
    )

    with translation.override("en"), pytest.raises(SlotTaken, match="not free"):
        do_book_appointment(coordinator, joint_visit, at(tuesday, 10, 30), [clinician, nurse])
    joint = do_book_appointment(coordinator, joint_visit, at(tuesday, 8, 15), [clinician, nurse])

    assert {(p.user_id, p.role) for p in joint.participants.all()} == {
        (clinician.pk, "primary"),
        (nurse.pk, "secondary"),
    }


@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_bookings_of_one_slot_make_exactly_one(
    schedule: Schedule,
    consultation: AppointmentType,
    make_patient: Any,
    make_user: Any,
    clinician: User,
) -> None:
    from apps.accounts.models import Role

    monday = next_weekday(0)
    people = []
    for i in range(20):
        user = make_user(Role.PATIENT, email=f"p{i}@example.test")
        people.append((user, make_patient(user)))
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def book(user: User, patient: Patient) -> None:
        try:
            access = access_for_booking(user, patient.pk)
            barrier.wait(timeout=10)
            do_book_appointment(access, consultation, at(monday, 10), [clinician])
            outcomes.append("booked")
        except SlotTaken:
            outcomes.append("taken")
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            outcomes.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=book, args=pair) for pair in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["booked"] + ["taken"] * 19
    assert Appointment.objects.filter(starts_at=at(monday, 10)).count() == 1
    assert Participant.objects.filter(active=True).count() == 1


def test_the_database_refuses_a_double_booking_even_without_the_service(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    clinician: User,
) -> None:
    from django.db import IntegrityError, transaction

    booked = do_book_appointment(
        access_for_booking(patient, record.pk), consultation, at(next_weekday(0), 9), [clinician]
    )
    clash = Appointment.objects.create(
        patient=record2,
        type=consultation,
        starts_at=booked.starts_at + dt.timedelta(minutes=15),
        ends_at=booked.ends_at + dt.timedelta(minutes=15),
        mode="in_person",
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        Participant.objects.create(
            appointment=clash, user=clinician, starts_at=clash.starts_at, ends_at=clash.ends_at
        )


def test_reschedule_and_cancel_follow_the_clinic_policy(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    settings: Any,
) -> None:
    monday = next_weekday(0)
    access = access_for_booking(patient, record.pk)
    first = do_book_appointment(access, consultation, at(monday, 8), [clinician])

    moved = do_reschedule_appointment(access, first, at(monday, 9))
    first.refresh_from_db()

    assert (first.status, moved.rescheduled_from) == ("cancelled", first)
    assert list(moved.participants.values_list("user", flat=True)) == [clinician.pk]
    # the freed 08:00 can be booked again
    assert Participant.objects.filter(appointment=first, active=True).count() == 0

    settings.SCHEDULING_PATIENT_CHANGE_HOURS = 24 * 30
    with translation.override("en"), pytest.raises(SchedulingError, match="until 720 hours"):
        do_cancel_appointment(access, moved)
    staff = access_for_booking(clinician, record.pk)
    cancelled = do_cancel_appointment(staff, moved, reason="Médecin absent")
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "Médecin absent")


def test_no_show_only_once_the_appointment_began(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    staff = access_for_booking(clinician, record.pk)
    appointment = do_book_appointment(staff, consultation, at(next_weekday(0), 11), [clinician])

    with (
        translation.override("en"),
        pytest.raises(SchedulingError, match="once the appointment has begun"),
    ):
        do_set_status(staff, appointment, "noshow")
    with translation.override("en"), pytest.raises(SchedulingError, match="Only the clinic"):
        do_set_status(access_for_booking(patient, record.pk), appointment, "arrived")
    Appointment.objects.filter(pk=appointment.pk).update(
        starts_at=timezone.now() - dt.timedelta(minutes=40),
        ends_at=timezone.now() - dt.timedelta(minutes=10),
    )
    assert do_set_status(staff, appointment, "noshow").status == "noshow"


def test_a_patient_sees_only_their_own_appointments(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    patient2: User,
    outsider: User,
    billing_user: User,
    clinician: User,
) -> None:
    appointment = do_book_appointment(
        access_for_booking(patient, record.pk), consultation, at(next_weekday(0), 8), [clinician]
    )

    for user in (patient2, outsider, billing_user):
        with pytest.raises(Http404):
            get_appointment_for_user(user, appointment.pk)
    assert get_appointment_for_user(patient, appointment.pk)[0] == appointment
    assert AuditEvent.objects.filter(action="denied", actor_id=outsider.pk).exists()
