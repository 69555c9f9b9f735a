"""Reminders: 24 h and 1 h before, to the patient and the clinicians, once, never late."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from apps.accounts.models import User
from apps.notifications.models import Notification
from apps.records.models import Patient
from apps.scheduling.models import Appointment, AppointmentType, Reminder, Schedule
from apps.scheduling.services.booking import access_for_booking, do_book_appointment
from apps.scheduling.services.reminders import send_due_reminders

from .conftest import ZURICH, next_weekday

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def book(
    clinician: User, record: Patient, kind: AppointmentType, *, booked_before: dt.timedelta
) -> Appointment:
    """An appointment next week, as if booked `booked_before` its start."""
    appointment = do_book_appointment(
        access_for_booking(clinician, record.pk),
        kind,
        at(next_weekday(0), 9),
        [clinician],
        reason="Suivi diabète",
    )
    Appointment.objects.filter(pk=appointment.pk).update(
        created_at=appointment.starts_at - booked_before
    )
    return appointment


def reminders_of(user: User) -> list[Notification]:
    return list(Notification.objects.filter(user=user, title__startswith="Reminder"))


@pytest.fixture
def appointment(
    settings: object,
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> Appointment:
    settings.SCHEDULING_REMINDER_MINUTES = [1440, 60]  # type: ignore[attr-defined]
    patient.preferred_language = clinician.preferred_language = "en"
    patient.save()
    clinician.save()
    return book(clinician, record, consultation, booked_before=dt.timedelta(days=5))


def test_each_reminder_goes_once_to_the_patient_and_the_clinician(
    appointment: Appointment, patient: User, clinician: User
) -> None:
    start = appointment.starts_at

    assert send_due_reminders(start - 25 * HOUR) == 0  # not yet
    assert send_due_reminders(start - 24 * HOUR + MINUTE) == 2
    assert send_due_reminders(start - 24 * HOUR + 2 * MINUTE) == 0  # the task runs again
    assert send_due_reminders(start - 2 * HOUR) == 0
    assert send_due_reminders(start - HOUR + 3 * MINUTE) == 2
    assert send_due_reminders(start - HOUR + 8 * MINUTE) == 0

    assert len(reminders_of(patient)) == len(reminders_of(clinician)) == 2
    assert set(Reminder.objects.values_list("user_id", "lead_minutes")) == {
        (patient.pk, 1440),
        (patient.pk, 60),
        (clinician.pk, 1440),
        (clinician.pk, 60),
    }
    [first, *_] = reminders_of(patient)
    assert "Policlinique" in first.body and "Follow-up visit" in first.body
    assert "diabète" not in first.title + first.body  # may leave by SMS: no clinical detail
    assert first.link == f"/appointments/{appointment.pk}/"


def test_the_24_hour_reminder_is_not_sent_late(
    appointment: Appointment, schedule: Schedule, patient: User
) -> None:
    start = appointment.starts_at

    # the workers were down when it was due (four hours ago): skipped, not sent late
    assert send_due_reminders(start - 20 * HOUR) == 0
    # booked 30 minutes before: neither reminder, the confirmation was enough
    Appointment.objects.filter(pk=appointment.pk).update(created_at=start - 30 * MINUTE)
    assert send_due_reminders(start - 29 * MINUTE) == 0
    # booked 10 hours before: no 24-hour reminder, the 1-hour one as usual
    Appointment.objects.filter(pk=appointment.pk).update(created_at=start - 10 * HOUR)
    assert send_due_reminders(start - 10 * HOUR + MINUTE) == 0
    assert send_due_reminders(start - HOUR + MINUTE) == 2
    assert set(Reminder.objects.values_list("lead_minutes", flat=True)) == {60}


def test_cancelled_appointments_get_no_reminder(appointment: Appointment) -> None:
    Appointment.objects.filter(pk=appointment.pk).update(status="cancelled")

    assert send_due_reminders(appointment.starts_at - HOUR + MINUTE) == 0


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_the_same_moment_send_each_reminder_once(
    appointment: Appointment, patient: User, clinician: User
) -> None:
    now = appointment.starts_at - 24 * HOUR + MINUTE
    barrier = threading.Barrier(2)
    results: list[int | str] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(send_due_reminders(now))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert all(isinstance(result, int) for result in results), results
    assert sum(results) == 2  # type: ignore[arg-type]
    assert Reminder.objects.count() == 2
    assert len(reminders_of(patient)) == len(reminders_of(clinician)) == 1
