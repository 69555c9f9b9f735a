"""Follow-ups to book: linked when booked in time, overdue (and the requester told) when not."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.notifications.models import Notification
from apps.records.models import Patient
from apps.scheduling.models import AppointmentType, FollowUpRequest, Schedule
from apps.scheduling.services import SchedulingError
from apps.scheduling.services.booking import (
    access_for_booking,
    do_book_appointment,
    do_cancel_appointment,
    do_reschedule_appointment,
)
from apps.scheduling.services.follow_ups import clinic_today, do_request_follow_up, mark_overdue
from apps.scheduling.tasks import mark_follow_ups_overdue
from tests.conftest import verified_client

from .conftest import ZURICH, next_weekday

Status = FollowUpRequest.Status


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def ask(
    clinician: User, record: Patient, kind: AppointmentType, due_by: dt.date
) -> FollowUpRequest:
    return do_request_follow_up(access_for_booking(clinician, record.pk), kind, due_by)


def test_a_booking_in_time_fulfils_the_request_and_a_cancellation_reopens_it(
    schedule: Schedule,
    consultation: AppointmentType,
    video_visit: AppointmentType,
    record: Patient,
    clinician: User,
) -> None:
    monday = next_weekday(0)
    follow_up = ask(clinician, record, consultation, monday + dt.timedelta(days=1))
    assert follow_up.status == Status.OPEN
    access = access_for_booking(clinician, record.pk)

    # another type, or too late: still to book
    do_book_appointment(access, video_visit, at(monday, 14), [clinician])
    late = do_book_appointment(
        access, consultation, at(monday + dt.timedelta(days=3), 9), [clinician]
    )
    follow_up.refresh_from_db()
    assert (follow_up.status, follow_up.appointment) == (Status.OPEN, None)

    in_time = do_book_appointment(access, consultation, at(monday, 9), [clinician])
    follow_up.refresh_from_db()
    assert (follow_up.status, follow_up.appointment) == (Status.BOOKED, in_time)

    moved = do_reschedule_appointment(access, in_time, at(monday, 11))
    follow_up.refresh_from_db()
    assert follow_up.appointment == moved

    do_cancel_appointment(access, moved)
    follow_up.refresh_from_db()
    assert (follow_up.status, follow_up.appointment) == (Status.OPEN, None)
    assert late.follow_ups.count() == 0


def test_an_appointment_already_booked_fulfils_a_new_request_at_once(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    monday = next_weekday(0)
    access = access_for_booking(clinician, record.pk)
    booked = do_book_appointment(access, consultation, at(monday, 9), [clinician])

    follow_up = ask(clinician, record, consultation, monday)

    assert (follow_up.status, follow_up.appointment) == (Status.BOOKED, booked)
    with pytest.raises(SchedulingError):
        ask(clinician, record, consultation, clinic_today() - dt.timedelta(days=1))
    with pytest.raises(SchedulingError):
        do_request_follow_up(access_for_booking(patient, record.pk), consultation, monday)


def test_overdue_requests_are_flagged_and_the_requester_told_once(
    schedule: Schedule, consultation: AppointmentType, record: Patient, clinician: User
) -> None:
    follow_up = ask(clinician, record, consultation, clinic_today())
    later = ask(clinician, record, consultation, clinic_today() + dt.timedelta(days=5))

    assert mark_overdue() == 0  # due today: not yet
    assert mark_overdue(clinic_today() + dt.timedelta(days=1)) == 1
    assert mark_follow_ups_overdue.delay().get() == 0  # a second run tells nobody again

    follow_up.refresh_from_db()
    later.refresh_from_db()
    assert (follow_up.status, later.status) == (Status.OVERDUE, Status.OPEN)
    [notice] = Notification.objects.filter(user=clinician, kind="care.task")
    assert notice.link == reverse("scheduling:follow_ups")
    assert record.family_name not in notice.title + notice.body

    # then booked late: the overdue request takes it
    appointment = do_book_appointment(
        access_for_booking(clinician, record.pk),
        consultation,
        at(next_weekday(0, 2), 9),
        [clinician],
    )
    follow_up.refresh_from_db()
    assert (follow_up.status, follow_up.appointment) == (Status.BOOKED, appointment)


def test_the_page_lists_my_patients_follow_ups_in_constant_queries(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    clinician: User,
) -> None:
    client = verified_client(clinician)
    url = reverse("scheduling:follow_ups")
    ask(clinician, record, consultation, clinic_today() + dt.timedelta(days=7))
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        response = client.get(url)
    assert record.family_name in response.content.decode()
    for days in range(4):
        ask(clinician, record2, consultation, clinic_today() + dt.timedelta(days=days))
    with CaptureQueriesContext(connection) as five:
        response = client.get(url)

    assert response.status_code == 200
    assert response.content.decode().count("data-follow-up=") == 5
    assert len(five) == len(one)
    read = AuditEvent.objects.filter(object_type="scheduling.followuprequest", action="read")
    assert read.order_by("seq").last().detail["patients"] == sorted([record.pk, record2.pk])  # type: ignore[union-attr]


def test_a_clinician_asks_for_a_follow_up_from_the_page(
    schedule: Schedule, consultation: AppointmentType, record: Patient, clinician: User
) -> None:
    due = clinic_today() + dt.timedelta(days=10)

    response = verified_client(clinician).post(
        reverse("scheduling:follow_ups"),
        {"patient": record.pk, "type": consultation.pk, "due_by": due.isoformat(), "note": "Bilan"},
    )

    assert response.status_code == 302
    follow_up = FollowUpRequest.objects.get()
    assert (follow_up.patient, follow_up.requested_by, follow_up.due_by) == (record, clinician, due)
    assert AuditEvent.objects.filter(
        object_type="scheduling.followuprequest", action="create", patient_id=str(record.pk)
    ).exists()


def test_an_outsider_sees_nothing_and_is_denied_404_audited(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    clinician: User,
    outsider: User,
    patient: User,
) -> None:
    follow_up = ask(clinician, record, consultation, clinic_today() + dt.timedelta(days=7))
    client = verified_client(outsider)
    url = reverse("scheduling:follow_ups")

    assert record.family_name not in client.get(url).content.decode()
    post = {"patient": record.pk, "type": consultation.pk, "due_by": "2099-01-01"}
    assert client.post(url, post).status_code == 404
    assert client.post(url, {"action": "cancel", "follow_up": follow_up.pk}).status_code == 404
    assert AuditEvent.objects.filter(actor_id=outsider.pk, action="denied").count() == 2
    follow_up.refresh_from_db()
    assert follow_up.status == Status.OPEN
    assert FollowUpRequest.objects.count() == 1
    assert verified_client(patient).get(url).status_code == 404


def test_the_care_team_cancels_a_follow_up_no_longer_needed(
    schedule: Schedule, consultation: AppointmentType, record: Patient, clinician: User
) -> None:
    follow_up = ask(clinician, record, consultation, clinic_today() + dt.timedelta(days=7))

    response = verified_client(clinician).post(
        reverse("scheduling:follow_ups"), {"action": "cancel", "follow_up": follow_up.pk}
    )

    assert response.status_code == 302
    follow_up.refresh_from_db()
    assert follow_up.status == Status.CANCELLED
