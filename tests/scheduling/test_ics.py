"""iCalendar: one appointment or a whole feed, parsed back with the `icalendar` library."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import translation
from icalendar import Calendar

from apps.accounts.models import User
from apps.records.models import Patient
from apps.scheduling.ics import appointment_ics, feed_ics
from apps.scheduling.models import Appointment, AppointmentType, Location, Schedule
from apps.scheduling.services.booking import (
    access_for_booking,
    do_book_appointment,
    do_cancel_appointment,
)

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def book(
    by: User, record: Patient, kind: AppointmentType, starts_at: dt.datetime, *clinicians: User
) -> Appointment:
    access = access_for_booking(by, record.pk)
    return do_book_appointment(
        access, kind, starts_at, list(clinicians), reason="Douleurs thoraciques"
    )


def events(content: bytes) -> list[dict[str, Any]]:
    calendar = Calendar.from_ical(content)
    return [
        {
            "uid": str(event["UID"]),
            "start": event.decoded("DTSTART"),
            "end": event.decoded("DTEND"),
            "summary": str(event["SUMMARY"]),
            "location": str(event["LOCATION"]),
            "status": str(event["STATUS"]),
            "sequence": event.decoded("SEQUENCE"),
            "url": str(event["URL"]),
        }
        for event in calendar.walk("VEVENT")
    ]


def test_one_appointment_as_a_calendar_file(
    settings: object,
    schedule: Schedule,
    consultation: AppointmentType,
    location: Location,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    settings.SITE_URL = "https://hopital.example"  # type: ignore[attr-defined]
    appointment = book(clinician, record, consultation, at(next_weekday(0), 9), clinician)
    patient.preferred_language = "en"

    content = appointment_ics(appointment, patient)

    calendar = Calendar.from_ical(content)
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert "Virtual hospital" in str(calendar["PRODID"])
    [event] = events(content)
    assert event["uid"] == f"appointment-{appointment.fhir_id}@hopital.example"
    assert event["start"] == appointment.starts_at
    assert event["start"].utcoffset() == dt.timedelta(0)
    assert event["end"] == appointment.starts_at + dt.timedelta(minutes=30)
    assert event["summary"] == f"Follow-up visit — {clinician.get_full_name()}"
    assert event["location"] == location.name
    assert event["status"] == "CONFIRMED"
    assert event["url"] == f"https://hopital.example/appointments/{appointment.pk}/"
    # A calendar is synced to phones and outside services: no reason for the visit in it.
    assert b"Douleurs" not in content and b"thoraciques" not in content


def test_staff_see_the_patient_and_video_visits_say_so(
    schedule: Schedule,
    video_visit: AppointmentType,
    record: Patient,
    clinician: User,
) -> None:
    appointment = book(clinician, record, video_visit, at(next_weekday(1), 14), clinician)
    clinician.preferred_language = "en"

    [event] = events(appointment_ics(appointment, clinician))

    assert event["summary"] == f"Video visit — {record.full_name}"
    assert event["location"] == "Video"
    clinician.preferred_language = "fr"  # the file follows the user, not the request
    with translation.override("en"):
        [event] = events(appointment_ics(appointment, clinician))
    assert event["summary"].startswith("Téléconsultation — ")


def _last_sunday(year: int, month: int) -> dt.date:
    day = dt.date(year, month, 31)
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


@pytest.mark.parametrize("month", [3, 10])
def test_times_are_the_right_instants_across_daylight_saving_changes(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    clinician: User,
    month: int,
) -> None:
    # given: 09:00 in Zurich on the Friday before and the Monday after the clock change
    year = next_weekday(0, 0).year
    while _last_sunday(year, month) - dt.timedelta(days=2) <= next_weekday(0, 0):
        year += 1
    change = _last_sunday(year, month)
    friday, monday = change - dt.timedelta(days=2), change + dt.timedelta(days=1)
    before = book(clinician, record, consultation, at(friday, 9), clinician)
    after = book(clinician, record, consultation, at(monday, 9), clinician)

    # when
    found = {e["start"]: e for e in events(feed_ics(clinician)) if e["start"].year == year}

    # then: 09:00 CET is 08:00 UTC, 09:00 CEST is 07:00 UTC
    winter, summer = dt.time(8, tzinfo=dt.UTC), dt.time(7, tzinfo=dt.UTC)
    expected_before, expected_after = (winter, summer) if month == 3 else (summer, winter)
    assert dt.datetime.combine(friday, expected_before) in found
    assert dt.datetime.combine(monday, expected_after) in found
    assert {before.starts_at, after.starts_at} <= set(found)


def test_a_cancelled_appointment_stays_in_the_feed_as_cancelled(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    appointment = book(clinician, record, consultation, at(next_weekday(2), 10), clinician)
    [before] = events(feed_ics(patient))

    do_cancel_appointment(access_for_booking(clinician, record.pk), appointment)

    [after] = events(feed_ics(patient))
    assert (before["status"], after["status"]) == ("CONFIRMED", "CANCELLED")
    assert after["uid"] == before["uid"]
    assert after["sequence"] > before["sequence"]


def test_the_feed_holds_a_month_back_to_a_year_ahead(
    settings: object,
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    settings.SITE_URL = "https://hopital.example"  # type: ignore[attr-defined]
    soon = book(clinician, record, consultation, at(next_weekday(3), 8), clinician)
    far = book(clinician, record, consultation, at(next_weekday(3, 60), 8), clinician)
    old = book(clinician, record, consultation, at(next_weekday(4), 8), clinician)
    Appointment.objects.filter(pk=old.pk).update(
        starts_at=old.starts_at - dt.timedelta(days=60), ends_at=old.ends_at - dt.timedelta(days=60)
    )

    uids = {e["uid"] for e in events(feed_ics(patient))}

    assert far.starts_at - soon.starts_at > dt.timedelta(days=366)
    assert uids == {f"appointment-{soon.fhir_id}@hopital.example"}
