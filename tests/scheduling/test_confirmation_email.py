"""The confirmation email of a booking carries the appointment as an .ics attachment."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core import mail
from icalendar import Calendar

from apps.accounts.models import User
from apps.notifications.models import Notification
from apps.records.models import Patient
from apps.scheduling.models import AppointmentType, Schedule
from apps.scheduling.services.booking import (
    access_for_booking,
    do_book_appointment,
    do_cancel_appointment,
    do_reschedule_appointment,
)

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def calendar_parts(message: Any) -> list[Calendar]:
    found = []
    for _name, content, mimetype in message.attachments:
        assert mimetype.startswith("text/calendar")
        found.append(Calendar.from_ical(content))
    return found


def test_the_patient_booking_gets_an_email_with_the_event(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    access = access_for_booking(patient, record.pk)

    with django_capture_on_commit_callbacks(execute=True):
        appointment = do_book_appointment(
            access, consultation, at(next_weekday(0), 9), [clinician], reason="Toux persistante"
        )

    to_patient = [m for m in mail.outbox if m.to == [patient.email]]
    assert len(to_patient) == 1
    [calendar] = calendar_parts(to_patient[0])
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]).startswith(f"appointment-{appointment.fhir_id}@")
    assert event.decoded("DTSTART") == appointment.starts_at
    assert str(event["STATUS"]) == "CONFIRMED"
    assert "Toux" not in to_patient[0].body and b"Toux" not in calendar.to_ical()
    notice = Notification.objects.get(user=patient)
    assert notice.ref == f"scheduling.appointment:{appointment.pk}"
    # The clinician is told too, with the event for their own calendar.
    [to_clinician] = [m for m in mail.outbox if m.to == [clinician.email]]
    assert record.full_name in str(calendar_parts(to_clinician)[0].walk("VEVENT")[0]["SUMMARY"])


def test_moves_and_cancellations_send_the_updates(
    settings: Any,
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.SITE_URL = "https://hopital.example"
    access = access_for_booking(clinician, record.pk)
    appointment = do_book_appointment(access, consultation, at(next_weekday(1), 9), [clinician])

    with django_capture_on_commit_callbacks(execute=True):
        moved = do_reschedule_appointment(access, appointment, at(next_weekday(1), 10))
    [move_mail] = [m for m in mail.outbox if m.to == [patient.email]]
    statuses = {
        str(event["UID"]): str(event["STATUS"])
        for calendar in calendar_parts(move_mail)
        for event in calendar.walk("VEVENT")
    }
    assert statuses == {
        f"appointment-{moved.fhir_id}@hopital.example": "CONFIRMED",
        f"appointment-{appointment.fhir_id}@hopital.example": "CANCELLED",
    }

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        do_cancel_appointment(access, moved)
    [cancel_mail] = [m for m in mail.outbox if m.to == [patient.email]]
    [calendar] = calendar_parts(cancel_mail)
    assert [str(e["STATUS"]) for e in calendar.walk("VEVENT")] == ["CANCELLED"]
    assert not [m for m in mail.outbox if m.to == [clinician.email]]  # who cancelled knows


def test_notices_without_a_provider_still_go_as_plain_email(patient: User) -> None:
    from apps.notifications.services import deliver, notify

    notification = notify(patient, "message", "New message", "Open the portal", "/x/")
    deliver(notification.pk)

    [message] = mail.outbox
    assert message.attachments == []
    assert message.subject == "New message"
