"""Appointments in the patient timeline, for the patient and for the care team."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from apps.accounts.models import User
from apps.records.access import get_patient_for_user
from apps.records.models import Patient
from apps.records.timeline import timeline_page
from apps.scheduling.models import AppointmentType, Schedule
from apps.scheduling.services.booking import access_for_booking, do_book_appointment
from tests.conftest import signed_in_client, verified_client

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def test_appointments_show_with_their_clinicians_in_one_query_per_kind(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    nurse: User,
) -> None:
    access = access_for_booking(clinician, record.pk)
    joint = do_book_appointment(access, joint_visit, at(next_weekday(1), 8, 15), [clinician, nurse])
    for day in range(3):
        do_book_appointment(access, consultation, at(next_weekday(2, 1 + day), 9), [clinician])

    with translation.override("en"), CaptureQueriesContext(connection) as queries:
        _page, entries = timeline_page(get_patient_for_user(patient, record.pk, action=None))

    appointments = [e for e in entries if e.kind == "appointment"]
    assert len(appointments) == 4
    [entry] = [e for e in appointments if e.url.endswith(f"/{joint.pk}/")]
    assert entry.title == "Joint visit — booked"
    assert entry.detail == f"{clinician.get_full_name()} and 1 more"
    assert entry.url == reverse("scheduling:appointment", args=[joint.pk])
    assert len(queries) == 4  # count, page, appointments (names included), ... no query per row


def test_the_timeline_pages_show_appointments(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    appointment = do_book_appointment(
        access_for_booking(clinician, record.pk), consultation, at(next_weekday(0), 9), [clinician]
    )
    link = reverse("scheduling:appointment", args=[appointment.pk])

    mine = signed_in_client(patient).get(reverse("records:my_timeline"), {"kind": "appointment"})
    theirs = verified_client(clinician).get(reverse("records:timeline", args=[record.pk]))

    for response in (mine, theirs):
        assert response.status_code == 200
        assert link in response.content.decode()
        assert "Consultation de suivi" in response.content.decode()
