"""Private calendar feeds (secret URL, revocable) and the .ics download of one appointment."""

from __future__ import annotations

import datetime as dt
import re

from django.test import Client
from django.urls import reverse
from icalendar import Calendar

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.records.models import Patient
from apps.scheduling.models import Appointment, AppointmentType, CalendarFeed, Schedule
from apps.scheduling.services.booking import access_for_booking, do_book_appointment
from apps.scheduling.services.feeds import do_create_feed, do_revoke_feed, feed_user, token_hash
from tests.conftest import signed_in_client, verified_client

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def book(by: User, record: Patient, kind: AppointmentType, starts_at: dt.datetime) -> Appointment:
    return do_book_appointment(access_for_booking(by, record.pk), kind, starts_at, [by])


def uids(response: object) -> set[str]:
    calendar = Calendar.from_ical(response.content)  # type: ignore[attr-defined]
    return {str(event["UID"]) for event in calendar.walk("VEVENT")}


def test_a_feed_works_without_login_and_shows_only_the_owners_appointments(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    clinician: User,
) -> None:
    mine = book(clinician, record, consultation, at(next_weekday(0), 9))
    theirs = book(clinician, record2, consultation, at(next_weekday(0), 10))
    token = do_create_feed(patient)

    response = Client().get(reverse("scheduling:feed", args=[token]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    found = uids(response)
    assert any(str(mine.fhir_id) in uid for uid in found)
    assert not any(str(theirs.fhir_id) in uid for uid in found)
    assert "sessionid" not in response.cookies
    feed = CalendarFeed.objects.get(user=patient)
    assert feed.token_hash == token_hash(token) and token not in feed.token_hash
    assert feed.last_used_at is not None
    read = AuditEvent.objects.filter(object_type="scheduling.calendarfeed", action="read").get()
    assert (read.actor_id, read.detail["patients"]) == (patient.pk, [record.pk])


def test_a_staff_feed_lists_the_appointments_they_take_part_in(
    schedule: Schedule,
    nurse_schedule: Schedule,
    video_visit: AppointmentType,
    record: Patient,
    clinician: User,
    nurse: User,
) -> None:
    with_doctor = book(clinician, record, video_visit, at(next_weekday(1), 14))
    with_nurse = book(nurse, record, video_visit, at(next_weekday(1), 15))
    token = do_create_feed(clinician)

    response = Client().get(reverse("scheduling:feed", args=[token]))

    found = uids(response)
    assert any(str(with_doctor.fhir_id) in uid for uid in found)
    assert not any(str(with_nurse.fhir_id) in uid for uid in found)
    assert record.family_name in response.content.decode()


def test_revoked_and_unknown_tokens_get_404_and_are_audited(
    schedule: Schedule, record: Patient, patient: User
) -> None:
    token = do_create_feed(patient)
    do_revoke_feed(patient)

    for candidate in (token, "not-a-token"):
        response = Client().get(reverse("scheduling:feed", args=[candidate]))
        assert response.status_code == 404
    assert feed_user(token) is None
    assert AuditEvent.objects.filter(action="token-revoked", actor_id=patient.pk).exists()
    assert (
        AuditEvent.objects.filter(object_type="scheduling.calendarfeed", action="denied").count()
        == 2
    )


def test_a_new_token_revokes_the_old_one(record: Patient, patient: User) -> None:
    old = do_create_feed(patient)
    new = do_create_feed(patient)

    assert Client().get(reverse("scheduling:feed", args=[old])).status_code == 404
    assert Client().get(reverse("scheduling:feed", args=[new])).status_code == 200
    assert CalendarFeed.objects.filter(user=patient, revoked_at__isnull=True).count() == 1
    assert feed_user(new) == patient


def test_guessing_tokens_is_rate_limited(db: None) -> None:
    client = Client()
    statuses = [
        client.get(reverse("scheduling:feed", args=[f"guess{i}"])).status_code for i in range(61)
    ]
    assert statuses[:60] == [404] * 60
    assert statuses[60] == 429


def test_the_settings_page_shows_the_link_once_and_revokes_it(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    book(clinician, record, consultation, at(next_weekday(2), 9))
    client = signed_in_client(patient)
    page = reverse("scheduling:feed_settings")

    response = client.post(page, {"action": "create"}, follow=True)

    html = response.content.decode()
    match = re.search(r'value="(https?://[^"]+/calendar/([^"/]+)\.ics)"', html)
    assert match is not None
    assert f'href="webcal://{match.group(1).split("://", 1)[1]}"' in html
    token = match.group(2)
    assert Client().get(reverse("scheduling:feed", args=[token])).status_code == 200
    assert token not in client.get(page).content.decode()  # shown once only

    client.post(page, {"action": "revoke"})
    assert Client().get(reverse("scheduling:feed", args=[token])).status_code == 404


def test_staff_have_a_feed_page_too_and_billing_does_not(
    clinician: User, billing_user: User
) -> None:
    assert verified_client(clinician).get(reverse("scheduling:feed_settings")).status_code == 200
    assert verified_client(billing_user).get(reverse("scheduling:feed_settings")).status_code == 404


def test_the_patient_downloads_one_appointment_and_an_outsider_gets_404(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    patient2: User,
    clinician: User,
    outsider: User,
) -> None:
    appointment = book(clinician, record, consultation, at(next_weekday(3), 9))
    url = reverse("scheduling:appointment_ics", args=[appointment.pk])

    response = signed_in_client(patient).get(url)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert response["Content-Disposition"].startswith("attachment;")
    assert any(str(appointment.fhir_id) in uid for uid in uids(response))
    assert AuditEvent.objects.filter(
        object_type="scheduling.appointment", object_id=str(appointment.pk), action="export"
    ).exists()
    assert verified_client(clinician).get(url).status_code == 200
    for stranger in (outsider, patient2):
        client = (
            verified_client(stranger) if stranger.is_staff_member else signed_in_client(stranger)
        )
        assert client.get(url).status_code == 404
        assert AuditEvent.objects.filter(actor_id=stranger.pk, action="denied").exists()
