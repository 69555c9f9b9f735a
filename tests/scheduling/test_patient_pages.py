"""The patient's booking pages: search, book, race, appointment page, move, cancel, waiting list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.forms_patient import SlotChoice
from apps.scheduling.models import (
    Appointment,
    AppointmentType,
    Participant,
    Schedule,
    WaitingListEntry,
)
from apps.scheduling.services.booking import access_for_booking, do_book_appointment
from tests.conftest import signed_in_client, verified_client

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def token(appointment_type: AppointmentType, schedule: Schedule, starts_at: dt.datetime) -> str:
    return SlotChoice(appointment_type.pk, schedule.pk, starts_at).token


def english(user: User) -> Client:
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def book_as(user: User, record: Patient, kind: AppointmentType, when: dt.datetime) -> Appointment:
    first = Schedule.objects.filter(appointment_types=kind).order_by("pk").first()
    assert first is not None
    return do_book_appointment(access_for_booking(user, record.pk), kind, when, [first.clinician])


def denied(user: User, object_id: Any) -> bool:
    return AuditEvent.objects.filter(
        actor_id=user.pk, action="denied", object_id=str(object_id), outcome="denied"
    ).exists()


# Search


def test_search_lists_free_slots_by_day_in_the_clinic_zone(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    monday = next_weekday(0)

    response = english(patient).get(
        reverse("scheduling:book"), {"type": str(consultation.pk), "date": monday.isoformat()}
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert token(consultation, schedule, at(monday, 8)) in body
    assert token(consultation, schedule, at(monday, 11, 30)) in body
    assert token(consultation, schedule, at(monday, 12)) not in body  # the window ends at 12:00
    assert f"Monday {monday.day}" in body
    assert ">08:00<" in body
    assert schedule.clinician.get_full_name() in body


def test_search_by_video_lists_only_video_slots(
    schedule: Schedule,
    consultation: AppointmentType,
    video_visit: AppointmentType,
    record: Patient,
    patient: User,
) -> None:
    monday = next_weekday(0)

    response = english(patient).get(
        reverse("scheduling:book"), {"mode": "video", "date": monday.isoformat()}
    )

    body = response.content.decode()
    assert token(video_visit, schedule, at(monday, 14)) in body
    assert token(consultation, schedule, at(monday, 8)) not in body


def test_search_costs_the_same_queries_for_one_or_five_schedules(
    schedule: Schedule,
    consultation: AppointmentType,
    make_schedule: Callable[..., Schedule],
    make_user: Callable[..., User],
    organization: Organization,
    record: Patient,
    patient: User,
) -> None:
    client = signed_in_client(patient)
    query = {"type": str(consultation.pk), "date": next_weekday(0).isoformat()}
    client.get(reverse("scheduling:book"), query)  # warm the session and caches
    with CaptureQueriesContext(connection) as one:
        response = client.get(reverse("scheduling:book"), query)
    assert response.status_code == 200
    for _ in range(4):
        make_schedule(make_user(Role.PHYSICIAN, organization=organization), consultation)

    with CaptureQueriesContext(connection) as five:
        response = client.get(reverse("scheduling:book"), query)

    assert response.content.decode().count('name="slot"') > 20
    # A first page reads a day of busy time, then two, four… until it has enough slots: the
    # count depends on how soon the page fills, never on how many schedules there are.
    bound = len(one)
    assert len(five) <= bound, [q["sql"] for q in five.captured_queries]


def test_staff_are_sent_to_the_clinic_booking_page(clinician: User, schedule: Schedule) -> None:
    response = verified_client(clinician).get(reverse("scheduling:book"))

    try:
        assert response.status_code == 302
        assert response["Location"] == reverse("scheduling:staff_book")
    except NoReverseMatch:
        assert response.status_code == 404


def test_billing_cannot_book(billing_user: User, schedule: Schedule) -> None:
    response = verified_client(billing_user).get(reverse("scheduling:book"))

    assert response.status_code in (302, 404)
    if response.status_code == 302:  # the clinic's booking page, which refuses them in turn
        assert "/accounts/login/" not in response["Location"]


# Booking


def test_a_patient_books_through_the_pages(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    client = english(patient)
    chosen = token(consultation, schedule, at(next_weekday(0), 9))

    confirm = client.get(reverse("scheduling:book"), {"slot": chosen})
    assert confirm.status_code == 200
    assert "Book this appointment" in confirm.content.decode()
    assert "Policlinique, salle 3" in confirm.content.decode()
    assert "Changes online until 24 h before" in confirm.content.decode()

    response = client.post(reverse("scheduling:book"), {"slot": chosen, "reason": "Contrôle"})

    appointment = Appointment.objects.get(patient=record)
    assert response.status_code == 302
    assert response["Location"] == reverse("scheduling:appointment", args=[appointment.pk])
    assert (appointment.starts_at, appointment.reason) == (at(next_weekday(0), 9), "Contrôle")
    page = client.get(response["Location"])
    assert "Your appointment is booked" in page.content.decode()


def test_the_loser_of_a_race_sees_slot_taken_and_other_times(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    patient2: User,
) -> None:
    monday = next_weekday(0)
    chosen = token(consultation, schedule, at(monday, 9))
    client = english(patient)
    assert client.get(reverse("scheduling:book"), {"slot": chosen}).status_code == 200
    # another patient books the same time while the first one reads the confirm page
    book_as(patient2, record2, consultation, at(monday, 9))

    response = client.post(reverse("scheduling:book"), {"slot": chosen})

    body = response.content.decode()
    assert response.status_code == 409
    assert "This time was just taken" in body
    assert "is not free" in body
    assert token(consultation, schedule, at(monday, 9, 30)) in body
    assert not Appointment.objects.filter(patient=record).exists()


def test_a_taken_slot_is_caught_at_the_confirm_step(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    patient2: User,
) -> None:
    monday = next_weekday(0)
    book_as(patient2, record2, consultation, at(monday, 9))

    response = english(patient).get(
        reverse("scheduling:book"), {"slot": token(consultation, schedule, at(monday, 9))}
    )

    assert response.status_code == 409
    assert token(consultation, schedule, at(monday, 9, 30)) in response.content.decode()


def test_an_overlapping_booking_is_a_form_error(
    schedule: Schedule,
    consultation: AppointmentType,
    make_schedule: Callable[..., Schedule],
    make_user: Callable[..., User],
    organization: Organization,
    record: Patient,
    patient: User,
) -> None:
    other = make_schedule(make_user(Role.PHYSICIAN, organization=organization), consultation)
    monday = next_weekday(0)
    book_as(patient, record, consultation, at(monday, 9))

    response = english(patient).post(
        reverse("scheduling:book"), {"slot": token(consultation, other, at(monday, 9))}
    )

    assert response.status_code == 200
    assert "already has an appointment at that time" in response.content.decode()
    assert Appointment.objects.filter(patient=record).count() == 1


# The appointment page


def test_a_patient_cannot_see_another_patients_appointment(
    schedule: Schedule,
    consultation: AppointmentType,
    record2: Patient,
    patient: User,
    patient2: User,
    record: Patient,
) -> None:
    theirs = book_as(patient2, record2, consultation, at(next_weekday(0), 9))
    client = signed_in_client(patient)

    for name in ("scheduling:appointment", "scheduling:reschedule"):
        assert client.get(reverse(name, args=[theirs.pk])).status_code == 404
    response = client.post(
        reverse("scheduling:appointment", args=[theirs.pk]),
        {"action": "cancel", "cancel-confirm": "on"},
    )

    assert response.status_code == 404
    assert denied(patient, record2.pk)
    theirs.refresh_from_db()
    assert theirs.status == "booked"


@pytest.mark.parametrize("who", ["outsider", "billing_user"])
def test_staff_outside_the_care_team_get_404_and_are_audited(
    request: pytest.FixtureRequest,
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    who: str,
) -> None:
    appointment = book_as(patient, record, consultation, at(next_weekday(0), 9))
    user: User = request.getfixturevalue(who)

    response = verified_client(user).get(reverse("scheduling:appointment", args=[appointment.pk]))

    assert response.status_code == 404
    assert denied(user, record.pk)


def test_the_patient_sees_the_details_and_the_policy(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    appointment = book_as(patient, record, consultation, at(next_weekday(0), 9))

    response = english(patient).get(reverse("scheduling:appointment", args=[appointment.pk]))

    body = response.content.decode()
    assert "Follow-up visit" in body
    assert "30 minutes" in body
    assert "Policlinique, salle 3" in body
    assert "Changes online until 24 h before" in body
    assert reverse("scheduling:reschedule", args=[appointment.pk]) in body
    assert 'value="cancel"' in body
    assert 'name="status"' not in body  # arrivals are for the clinic
    assert AuditEvent.objects.filter(
        actor_id=patient.pk, action="read", object_id=str(appointment.pk)
    ).exists()


def test_the_care_team_marks_arrival_and_sees_only_valid_transitions(
    schedule: Schedule, consultation: AppointmentType, record: Patient, clinician: User
) -> None:
    appointment = book_as(clinician, record, consultation, at(next_weekday(0), 9))
    client = english(clinician)

    page = client.get(reverse("scheduling:appointment", args=[appointment.pk])).content.decode()
    assert 'value="arrived"' in page
    assert 'value="noshow"' not in page  # not before it has begun
    response = client.post(
        reverse("scheduling:appointment", args=[appointment.pk]),
        {"action": "status", "status": "arrived"},
    )

    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == "arrived"
    page = client.get(reverse("scheduling:appointment", args=[appointment.pk])).content.decode()
    assert 'value="arrived"' not in page
    assert 'value="fulfilled"' in page


def test_a_patient_cancels_within_the_policy(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    appointment = book_as(patient, record, consultation, at(next_weekday(0), 9))
    client = english(patient)

    unconfirmed = client.post(
        reverse("scheduling:appointment", args=[appointment.pk]), {"action": "cancel"}
    )
    assert unconfirmed.status_code == 400
    response = client.post(
        reverse("scheduling:appointment", args=[appointment.pk]),
        {"action": "cancel", "cancel-confirm": "on", "cancel-reason": "Empêchée"},
    )

    assert response.status_code == 302
    appointment.refresh_from_db()
    assert (appointment.status, appointment.cancel_reason) == ("cancelled", "Empêchée")
    assert appointment.cancelled_by == patient
    page = client.get(response["Location"]).content.decode()
    assert "The appointment is cancelled" in page
    assert 'value="cancel"' not in page


def test_too_late_to_cancel_online_hides_the_actions_and_refuses(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    starts_at = timezone.now() + dt.timedelta(hours=3)
    appointment = Appointment.objects.create(
        patient=record,
        type=consultation,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(minutes=30),
        mode="in_person",
    )
    Participant.objects.create(
        appointment=appointment,
        user=schedule.clinician,
        starts_at=starts_at,
        ends_at=appointment.ends_at,
    )
    client = english(patient)
    url = reverse("scheduling:appointment", args=[appointment.pk])

    page = client.get(url).content.decode()
    assert "too late to change this appointment online" in page
    assert 'value="cancel"' not in page
    assert reverse("scheduling:reschedule", args=[appointment.pk]) not in page
    response = client.post(url, {"action": "cancel", "cancel-confirm": "on"})

    assert response.status_code == 400
    assert "please call the clinic" in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == "booked"
    moved = client.get(reverse("scheduling:reschedule", args=[appointment.pk]))
    assert moved.status_code == 302


def test_a_patient_moves_an_appointment(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    monday = next_weekday(0)
    appointment = book_as(patient, record, consultation, at(monday, 9))
    client = english(patient)
    url = reverse("scheduling:reschedule", args=[appointment.pk])
    new_time = token(consultation, schedule, at(monday, 10))

    page = client.get(url, {"date": monday.isoformat()})
    assert new_time in page.content.decode()
    response = client.post(url, {"slot": new_time})

    moved = Appointment.objects.get(patient=record, status="booked")
    assert response.status_code == 302
    assert response["Location"] == reverse("scheduling:appointment", args=[moved.pk])
    assert moved.starts_at == at(monday, 10)
    assert moved.rescheduled_from == appointment
    appointment.refresh_from_db()
    assert appointment.status == "cancelled"


def test_moving_to_a_taken_time_shows_other_times(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    patient2: User,
) -> None:
    monday = next_weekday(0)
    appointment = book_as(patient, record, consultation, at(monday, 9))
    book_as(patient2, record2, consultation, at(monday, 10))

    response = english(patient).post(
        reverse("scheduling:reschedule", args=[appointment.pk]),
        {"slot": token(consultation, schedule, at(monday, 10))},
    )

    assert response.status_code == 409
    assert "is not free" in response.content.decode()
    assert token(consultation, schedule, at(monday, 10, 30)) in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == "booked"


# Lists


def test_my_appointments_lists_upcoming_and_past_with_links(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    upcoming = book_as(patient, record, consultation, at(next_weekday(0), 9))
    past_start = timezone.now() - dt.timedelta(days=3)
    past = Appointment.objects.create(
        patient=record,
        type=consultation,
        starts_at=past_start,
        ends_at=past_start + dt.timedelta(minutes=30),
        mode="in_person",
        status="fulfilled",
    )

    response = english(patient).get(reverse("scheduling:my_appointments"))

    body = response.content.decode()
    assert response.status_code == 200
    assert body.index(reverse("scheduling:appointment", args=[upcoming.pk])) < body.index(
        "Past and cancelled"
    )
    assert body.index(reverse("scheduling:appointment", args=[past.pk])) > body.index(
        "Past and cancelled"
    )
    assert reverse("scheduling:book") in body
    assert f'href="{reverse("scheduling:my_appointments")}"' in body  # in the portal menu


def test_staff_have_no_patient_appointment_list(clinician: User) -> None:
    for name in ("scheduling:my_appointments", "scheduling:waiting_list"):
        assert verified_client(clinician).get(reverse(name)).status_code == 404
    assert denied(clinician, "")


# Waiting list


def test_a_patient_joins_and_leaves_the_waiting_list(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    client = english(patient)
    latest = next_weekday(0, weeks_ahead=3)

    response = client.post(
        reverse("scheduling:waiting_list"),
        {
            "action": "join",
            "schedule": schedule.pk,
            "type": consultation.pk,
            "latest": latest.isoformat(),
        },
    )

    entry = WaitingListEntry.objects.get(patient=record)
    assert response.status_code == 302
    assert entry.status == "waiting"
    assert entry.latest == at(latest + dt.timedelta(days=1), 0)
    twice = client.post(
        reverse("scheduling:waiting_list"),
        {"action": "join", "schedule": schedule.pk, "type": consultation.pk, "latest": latest},
        follow=True,
    )
    assert "already on the waiting list" in twice.content.decode()
    client.post(reverse("scheduling:waiting_list"), {"action": "withdraw", "entry": entry.pk})
    entry.refresh_from_db()
    assert entry.status == "withdrawn"


def offered(record: Patient, schedule: Schedule, kind: AppointmentType, when: dt.datetime,
            **fields: Any) -> WaitingListEntry:  # fmt: skip
    return WaitingListEntry.objects.create(
        patient=record,
        schedule=schedule,
        type=kind,
        latest=when + dt.timedelta(days=7),
        status="offered",
        offered_start=when,
        offer_expires_at=timezone.now() + dt.timedelta(hours=1),
        **fields,
    )


def test_a_patient_takes_an_offered_time(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    when = at(next_weekday(0), 10)
    entry = offered(record, schedule, consultation, when)
    client = english(patient)
    assert "Book this time" in client.get(reverse("scheduling:waiting_list")).content.decode()

    response = client.post(
        reverse("scheduling:waiting_list"), {"action": "accept", "entry": entry.pk}
    )

    appointment = Appointment.objects.get(patient=record)
    assert response["Location"] == reverse("scheduling:appointment", args=[appointment.pk])
    assert appointment.starts_at == when
    entry.refresh_from_db()
    assert entry.status == "booked"


def test_an_offer_moves_the_appointment_the_entry_names(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    later = book_as(patient, record, consultation, at(next_weekday(0, weeks_ahead=2), 9))
    entry = offered(record, schedule, consultation, at(next_weekday(0), 10), current=later)

    english(patient).post(
        reverse("scheduling:waiting_list"), {"action": "accept", "entry": entry.pk}
    )

    later.refresh_from_db()
    assert later.status == "cancelled"
    assert Appointment.objects.get(rescheduled_from=later).starts_at == at(next_weekday(0), 10)


def test_an_offered_time_taken_meanwhile_puts_the_entry_back_to_waiting(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    patient2: User,
) -> None:
    when = at(next_weekday(0), 10)
    entry = offered(record, schedule, consultation, when)
    book_as(patient2, record2, consultation, when)

    response = english(patient).post(
        reverse("scheduling:waiting_list"), {"action": "accept", "entry": entry.pk}, follow=True
    )

    assert "is not free" in response.content.decode()
    entry.refresh_from_db()
    assert (entry.status, entry.offered_start) == ("waiting", None)
    assert not Appointment.objects.filter(patient=record).exists()


def test_a_patient_cannot_touch_another_patients_entry(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
) -> None:
    theirs = offered(record2, schedule, consultation, at(next_weekday(0), 10))

    response = signed_in_client(patient).post(
        reverse("scheduling:waiting_list"), {"action": "accept", "entry": theirs.pk}
    )

    assert response.status_code == 404
    assert denied(patient, record2.pk)
    theirs.refresh_from_db()
    assert theirs.status == "offered"


def test_a_nurse_of_the_team_sees_the_appointment_page(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    make_user: Callable[..., User],
    organization: Organization,
) -> None:
    nurse = make_user(Role.NURSE, organization=organization)
    do_add_member(default_team(record), nurse)
    appointment = book_as(patient, record, consultation, at(next_weekday(0), 9))

    response = verified_client(nurse).get(reverse("scheduling:appointment", args=[appointment.pk]))

    assert response.status_code == 200
    assert str(record) in response.content.decode()


def test_the_first_visit_searches_from_today_with_an_iso_date(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    today = dt.datetime.now(ZURICH).date()

    response = signed_in_client(patient).get(reverse("scheduling:book"))

    body = response.content.decode()
    assert f'value="{today.isoformat()}"' in body  # what a date input understands, any language
    assert 'name="slot"' in body


def test_an_expired_offer_cannot_be_taken(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    entry = offered(record, schedule, consultation, at(next_weekday(0), 10))
    WaitingListEntry.objects.filter(pk=entry.pk).update(
        offer_expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    client = english(patient)
    assert "Book this time" not in client.get(reverse("scheduling:waiting_list")).content.decode()

    response = client.post(
        reverse("scheduling:waiting_list"), {"action": "accept", "entry": entry.pk}, follow=True
    )

    assert "This offer has expired" in response.content.decode()
    entry.refresh_from_db()
    assert entry.status == "offered"  # the expiry job marks it and passes the time on
    assert not Appointment.objects.exists()
