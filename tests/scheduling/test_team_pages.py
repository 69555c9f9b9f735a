"""Clinic scheduling pages: team agenda, booking for a patient (joint too), availability."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.models import (
    Appointment,
    AppointmentType,
    AvailabilityException,
    AvailabilityRule,
    Location,
    Schedule,
)
from apps.scheduling.services import SchedulingError
from apps.scheduling.services.availability import (
    do_add_exception,
    do_add_rule,
    do_remove_rule,
    do_set_types,
)
from apps.scheduling.services.booking import access_for_booking, do_book_appointment
from apps.scheduling.services.joint import joint_free_slots
from tests.conftest import signed_in_client, verified_client

from .conftest import ZURICH, next_weekday

AGENDA = reverse("scheduling:team_agenda")
BOOK = reverse("scheduling:staff_book")
AVAILABILITY = reverse("scheduling:availability")


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


@pytest.fixture
def coordinator(
    make_user: Callable[..., User], organization: Organization, record: Patient
) -> User:
    user = make_user(Role.COORDINATOR, email="coord@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


def _denied(user: User) -> bool:
    return AuditEvent.objects.filter(actor_id=user.pk, action="denied").exists()


# --- team agenda ------------------------------------------------------------------------------


def test_the_agenda_is_for_clinical_staff_only(
    patient: User, record: Patient, billing_user: User, clinician: User
) -> None:
    assert signed_in_client(patient).get(AGENDA).status_code == 404
    assert verified_client(billing_user).get(AGENDA).status_code == 404
    assert _denied(billing_user)
    assert verified_client(billing_user).get(BOOK).status_code == 404
    assert verified_client(billing_user).get(AVAILABILITY).status_code == 404
    assert verified_client(clinician).get(AGENDA).status_code == 200


def test_the_agenda_shows_a_joint_appointment_in_both_columns(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    record: Patient,
    clinician: User,
    nurse: User,
) -> None:
    # given a joint appointment next Monday at 09:00
    monday = next_weekday(0)
    access = access_for_booking(clinician, record.pk)
    appointment = do_book_appointment(access, joint_visit, at(monday, 9), [clinician, nurse])

    # when the physician opens the day, with nobody chosen (their care-team circle)
    response = verified_client(clinician).get(AGENDA, {"view": "day", "date": monday.isoformat()})

    # then both are columns and the appointment shows in each, marked joint, with the patient
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<th scope="col" data-clinician="{clinician.pk}"' in page
    assert f'<th scope="col" data-clinician="{nurse.pk}"' in page
    assert page.count(record.family_name) == 2
    assert page.count('class="joint-mark"') >= 2
    event = AuditEvent.objects.filter(actor_id=clinician.pk, detail__what="team-agenda").get()
    assert event.detail["patients"] == [record.pk]
    # and the week view shows it too
    week = verified_client(clinician).get(AGENDA, {"view": "week", "date": monday.isoformat()})
    assert week.content.decode().count(record.family_name) == 2
    assert appointment.participants.count() == 2


def test_the_agenda_hides_patients_who_are_not_on_my_care_teams(
    schedule: Schedule,
    nurse_schedule: Schedule,
    consultation: AppointmentType,
    record2: Patient,
    clinician: User,
    nurse: User,
) -> None:
    # given an appointment of the physician with a patient the nurse does not care for
    monday = next_weekday(0)
    access = access_for_booking(clinician, record2.pk)
    do_book_appointment(access, consultation, at(monday, 10), [clinician])

    # when the nurse looks at the physician's day
    query: dict[str, Any] = {"date": monday.isoformat(), "clinician": [clinician.pk, nurse.pk]}
    response = verified_client(nurse).get(AGENDA, query)

    # then the time shows as busy, without the patient or the kind of appointment
    page = response.content.decode()
    assert response.status_code == 200
    assert record2.family_name not in page
    assert consultation.name not in page
    assert "Occupé" in page or "Busy" in page
    event = AuditEvent.objects.filter(actor_id=nurse.pk, detail__what="team-agenda").get()
    assert event.detail["patients"] == []


def _team(
    size: int,
    make_user: Callable[..., User],
    make_patient: Callable[..., Patient],
    make_schedule: Callable[..., Schedule],
    organization: Organization,
    viewer: User,
    consultation: AppointmentType,
    video_visit: AppointmentType,
    day: dt.date,
) -> list[int]:
    """`size` clinicians with availability and two appointments each (one joint)."""
    people = []
    for i in range(size):
        person = make_user(
            Role.PHYSICIAN, email=f"team{size}-{i}@example.test", organization=organization
        )
        make_schedule(person, consultation, video_visit)
        people.append(person)
    for i, person in enumerate(people):
        chart = make_patient(family_name=f"Agenda{size}x{i}")
        for member in (viewer, person, people[(i + 1) % size]):
            do_add_member(default_team(chart), member)
        access = access_for_booking(viewer, chart.pk)
        do_book_appointment(access, consultation, at(day, 8, 0), [person])
        if i % 2 == 0:  # a joint appointment with the next colleague
            do_book_appointment(access, video_visit, at(day, 14), [person, people[i + 1]])
    return [p.pk for p in people]


def test_the_agenda_reads_a_constant_number_of_queries(
    make_user: Callable[..., User],
    make_patient: Callable[..., Patient],
    make_schedule: Callable[..., Schedule],
    organization: Organization,
    coordinator: User,
    consultation: AppointmentType,
    video_visit: AppointmentType,
) -> None:
    monday = next_weekday(0)
    counts = {}
    for size in (2, 8):
        ids = _team(
            size,
            make_user,
            make_patient,
            make_schedule,
            organization,
            coordinator,
            consultation,
            video_visit,
            monday + dt.timedelta(days=7 * (size // 8)),
        )
        client = verified_client(coordinator)
        day = (monday + dt.timedelta(days=7 * (size // 8))).isoformat()
        for view in ("day", "week"):
            client.get(AGENDA, {"view": view, "date": day, "clinician": ids})  # warm caches
            with CaptureQueriesContext(connection) as queries:
                response = client.get(AGENDA, {"view": view, "date": day, "clinician": ids})
            assert response.status_code == 200
            assert response.content.decode().count("data-agenda-entry") >= size
            counts[(size, view)] = len(queries)
    assert counts[(2, "day")] == counts[(8, "day")]
    assert counts[(2, "week")] == counts[(8, "week")]


# --- booking for a patient --------------------------------------------------------------------


def test_the_clinic_books_a_joint_appointment(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    record: Patient,
    clinician: User,
    nurse: User,
    coordinator: User,
) -> None:
    tuesday = next_weekday(1)
    client = verified_client(coordinator)
    data = {
        "patient": record.pk,
        "type": joint_visit.pk,
        "clinicians": [nurse.pk, clinician.pk],
        "date": tuesday.isoformat(),
        "time": "09:05",
        "reason": "Éducation thérapeutique",
        "action": "book",
    }

    response = client.post(BOOK, data)

    assert response.status_code == 302
    assert reverse("scheduling:team_agenda") in response["Location"]
    appointment = Appointment.objects.get(patient=record)
    assert appointment.starts_at == at(tuesday, 9, 5)
    roles = dict(appointment.participants.values_list("user_id", "role"))
    assert roles == {clinician.pk: "primary", nurse.pk: "secondary"}  # physicians first
    assert appointment.booked_by == coordinator


def test_a_joint_booking_where_one_is_busy_is_refused(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    video_visit: AppointmentType,
    record: Patient,
    record2: Patient,
    clinician: User,
    nurse: User,
) -> None:
    # given the nurse alone has an appointment 09:00–09:45; the physician is free
    tuesday = next_weekday(1)
    do_add_member(default_team(record2), nurse)
    do_book_appointment(access_for_booking(nurse, record2.pk), joint_visit, at(tuesday, 9), [nurse])
    # when the clinic tries a joint appointment at 09:30
    data = {
        "patient": record.pk,
        "type": joint_visit.pk,
        "clinicians": [clinician.pk, nurse.pk],
        "date": tuesday.isoformat(),
        "time": "09:30",
        "action": "book",
    }
    client = verified_client(clinician)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.post(BOOK, data)

    # then it is refused with a clear message and the common free times are offered
    assert response.status_code == 400
    assert b"data-booking-error" in response.content
    assert f"{nurse.get_full_name()} is not free".encode() in response.content
    assert not Appointment.objects.filter(patient=record).exists()
    assert b'name="start"' in response.content


def test_common_free_times_are_offered_and_book_in_one_click(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    record: Patient,
    record2: Patient,
    clinician: User,
    nurse: User,
) -> None:
    wednesday = next_weekday(2)
    access = access_for_booking(clinician, record2.pk)
    do_book_appointment(access, joint_visit, at(wednesday, 8), [clinician])
    client = verified_client(clinician)
    data = {
        "patient": record.pk,
        "type": joint_visit.pk,
        "clinicians": [clinician.pk, nurse.pk],
        "date": wednesday.isoformat(),
        "action": "suggest",
    }

    response = client.post(BOOK, data)

    assert response.status_code == 200
    first = at(wednesday, 8, 45).astimezone(dt.UTC).isoformat()
    assert f'value="{first}"'.encode() in response.content  # 08:00–08:45 is taken
    assert at(wednesday, 8).astimezone(dt.UTC).isoformat().encode() not in response.content
    booked = client.post(BOOK, {**data, "action": "", "start": first})
    assert booked.status_code == 302
    assert Appointment.objects.get(patient=record).starts_at == at(wednesday, 8, 45)


def test_the_patient_list_is_limited_to_my_care_teams(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    make_patient: Callable[..., Patient],
    clinician: User,
) -> None:
    stranger = make_patient(family_name="Inconnu")
    client = verified_client(clinician)

    page = client.get(BOOK, {"q": ""}).content.decode()
    found = client.get(BOOK, {"q": record.family_name[:4]}).content.decode()
    refused = client.post(
        BOOK,
        {
            "patient": stranger.pk,
            "type": consultation.pk,
            "clinicians": [clinician.pk],
            "date": next_weekday(0).isoformat(),
            "time": "09:00",
            "action": "book",
        },
    )

    assert record.family_name in page and "Inconnu" not in page
    assert record.family_name in found
    assert refused.status_code == 400
    assert not Appointment.objects.exists()


# --- joint free time --------------------------------------------------------------------------


def test_joint_free_slots_are_where_everyone_is_free(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    consultation: AppointmentType,
    record2: Patient,
    clinician: User,
    nurse: User,
) -> None:
    # given the physician is booked 09:00–09:30 and the nurse is away 10:30–11:00
    thursday = next_weekday(3)
    access = access_for_booking(clinician, record2.pk)
    do_book_appointment(access, consultation, at(thursday, 9), [clinician])
    AvailabilityException.objects.create(
        schedule=nurse_schedule, starts_at=at(thursday, 10, 30), ends_at=at(thursday, 11)
    )

    # when looking for a 45-minute joint time that day
    with CaptureQueriesContext(connection) as queries:
        slots = joint_free_slots(
            joint_visit, [clinician.pk, nurse.pk], at(thursday, 0), at(thursday, 23)
        )

    # then every start leaves both free for 45 minutes inside the 08:00–12:00 window
    starts = [s.starts_at.astimezone(ZURICH).strftime("%H:%M") for s in slots]
    assert starts == ["08:00", "08:15", "09:30", "09:45", "11:00", "11:15"]
    assert all(s.ends_at - s.starts_at == dt.timedelta(minutes=45) for s in slots)
    assert len(queries) == 4
    # a clinician who does not offer the type: no common time
    assert (
        joint_free_slots(consultation, [clinician.pk, nurse.pk], at(thursday, 0), at(thursday, 23))
        == []
    )
    # limit
    assert (
        len(
            joint_free_slots(
                joint_visit, [clinician.pk], at(thursday, 0), at(thursday, 23), limit=2
            )
        )
        == 2
    )


# --- availability -----------------------------------------------------------------------------


def _rule(location: Location | None = None, **overrides: Any) -> dict[str, Any]:
    data = {
        "action": "add_rule",
        "rule-weekday": 5,
        "rule-starts": "09:00",
        "rule-ends": "12:00",
        "rule-mode": "in_person" if location else "video",
        "rule-location": location.pk if location else "",
    }
    data.update(overrides)
    return data


def test_a_clinician_adds_and_removes_weekly_availability(
    clinician: User, location: Location
) -> None:
    client = verified_client(clinician)

    added = client.post(AVAILABILITY, _rule(location))

    assert added.status_code == 302
    rule = AvailabilityRule.objects.get(schedule__clinician=clinician)  # schedule created
    assert (rule.weekday, rule.location, rule.mode) == (5, location, "in_person")
    page = client.get(AVAILABILITY).content.decode()
    assert f'data-rule="{rule.pk}"' in page
    assert AuditEvent.objects.filter(
        actor_id=clinician.pk, action="create", object_type="scheduling.availabilityrule"
    ).exists()
    removed = client.post(AVAILABILITY, {"action": "remove_rule", "rule": rule.pk})
    assert removed.status_code == 302
    assert not AvailabilityRule.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rule-starts": "12:00", "rule-ends": "09:00"}, "The end must come after the start."),
        ({"rule-mode": "in_person"}, "Choose the place of in-person appointments."),
        ({"rule-starts": "11:00", "rule-ends": "13:00"}, "It overlaps the availability"),
    ],
)
def test_invalid_availability_is_refused_clearly(
    clinician: User, overrides: dict[str, str], message: str
) -> None:
    # given a Saturday video window 09:00–12:00
    do_add_rule(clinician, clinician, weekday=5, starts=dt.time(9), ends=dt.time(12), mode="video")
    client = verified_client(clinician)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    response = client.post(AVAILABILITY, _rule(None, **overrides))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert AvailabilityRule.objects.count() == 1


def test_the_services_validate_rules(clinician: User, location: Location) -> None:
    with translation.override("en"):
        do_add_rule(
            clinician,
            clinician,
            weekday=0,
            starts=dt.time(8),
            ends=dt.time(12),
            mode="in_person",
            location=location,
        )
        # the same hours by video are another mode: allowed
        do_add_rule(
            clinician, clinician, weekday=0, starts=dt.time(8), ends=dt.time(12), mode="video"
        )
        with pytest.raises(SchedulingError, match="overlaps"):
            do_add_rule(
                clinician,
                clinician,
                weekday=0,
                starts=dt.time(11),
                ends=dt.time(13),
                mode="in_person",
                location=location,
            )
        # a rule that stops applying before the other begins does not overlap
        do_add_rule(
            clinician,
            clinician,
            weekday=0,
            starts=dt.time(8),
            ends=dt.time(12),
            mode="video",
            valid_from=dt.date(2020, 1, 1),
            valid_until=dt.date(2020, 12, 31),
        )
        with pytest.raises(SchedulingError, match="no longer exists"):
            do_remove_rule(clinician, clinician, 999999)


def test_a_coordinator_manages_a_clinicians_availability(
    coordinator: User, clinician: User, location: Location, consultation: AppointmentType
) -> None:
    client = verified_client(coordinator)
    url = f"{AVAILABILITY}?clinician={clinician.pk}"

    chooser = client.get(AVAILABILITY)
    assert clinician.get_full_name() in chooser.content.decode()
    assert client.get(url).status_code == 200
    added = client.post(url, _rule(location))
    typed = client.post(
        url,
        {
            "action": "set_types",
            "types-types": [consultation.pk],
            "types-specialty": "Cardiologie",
            "types-specialty_code": "394579002",
        },
    )

    assert (added.status_code, typed.status_code) == (302, 302)
    assert added["Location"] == url
    schedule = Schedule.objects.get(clinician=clinician)
    assert schedule.rules.count() == 1
    assert list(schedule.appointment_types.all()) == [consultation]
    assert schedule.specialty == "Cardiologie"
    assert AuditEvent.objects.filter(
        actor_id=coordinator.pk, action="update", object_type="scheduling.schedule"
    ).exists()


def test_a_physician_cannot_manage_a_colleagues_availability(
    outsider: User, clinician: User, location: Location, make_user: Callable[..., User]
) -> None:
    url = f"{AVAILABILITY}?clinician={clinician.pk}"

    assert verified_client(outsider).get(url).status_code == 404
    assert verified_client(outsider).post(url, _rule(location)).status_code == 404
    assert _denied(outsider)
    # nor a coordinator of another organisation
    elsewhere = Organization.objects.create(name="Autre hôpital")
    stranger = make_user(Role.COORDINATOR, email="c2@example.test", organization=elsewhere)
    assert verified_client(stranger).get(url).status_code == 404
    assert not AvailabilityRule.objects.exists()


def test_an_absence_over_booked_appointments_warns_and_keeps_them(
    schedule: Schedule, consultation: AppointmentType, record: Patient, clinician: User
) -> None:
    friday = next_weekday(4)
    booked = do_book_appointment(
        access_for_booking(clinician, record.pk), consultation, at(friday, 9), [clinician]
    )
    client = verified_client(clinician)

    response = client.post(
        AVAILABILITY,
        {
            "action": "add_exception",
            "exception-starts_at": f"{friday.isoformat()}T08:00",
            "exception-ends_at": f"{friday.isoformat()}T12:00",
            "exception-kind": "absence",
            "exception-reason": "Formation",
        },
        follow=True,
    )

    assert response.status_code == 200
    warning = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
    assert len(warning) == 1 and "09:00" in warning[0]
    booked.refresh_from_db()
    assert booked.status == "booked"
    exception = AvailabilityException.objects.get()
    assert exception.starts_at == at(friday, 8)
    _exception, conflicts = do_add_exception(
        clinician, clinician, starts_at=at(friday, 8, 30), ends_at=at(friday, 9, 15)
    )
    assert conflicts == [booked]
    removed = client.post(AVAILABILITY, {"action": "remove_exception", "exception": exception.pk})
    assert removed.status_code == 302
    assert AvailabilityException.objects.count() == 1


def test_a_clinician_offers_only_types_their_profession_delivers(
    nurse: User, consultation: AppointmentType, video_visit: AppointmentType
) -> None:
    with translation.override("en"), pytest.raises(SchedulingError, match="cannot deliver"):
        do_set_types(nurse, nurse, [consultation])
    schedule = do_set_types(nurse, nurse, [video_visit], specialty="Soins")
    assert list(schedule.appointment_types.all()) == [video_visit]


def test_a_free_cell_of_the_agenda_prefills_the_booking_form(
    schedule: Schedule, clinician: User
) -> None:
    monday = next_weekday(0)
    client = verified_client(clinician)

    page = client.get(AGENDA, {"date": monday.isoformat()}).content.decode()
    link = f"{BOOK}?clinicians={clinician.pk}&amp;date={monday.isoformat()}&amp;time=08%3A30"
    form = client.get(link.replace("&amp;", "&")).content.decode()

    assert link in page
    assert f'value="{clinician.pk}" id="id_clinicians_0" checked' in form
    assert 'value="08:30"' in form and f'value="{monday.isoformat()}"' in form
