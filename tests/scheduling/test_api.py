"""Scheduling REST API: types, free slots, appointments, through the booking gate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from apps.accounts.models import User
from apps.accounts.services import do_issue_token
from apps.audit.models import AuditEvent
from apps.records.models import Patient
from apps.scheduling.models import Appointment, AppointmentType, Schedule
from apps.scheduling.services.booking import access_for_booking, do_book_appointment
from tests.conftest import signed_in_client, verified_client

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def post(client: Client, url: str, data: dict[str, Any]) -> Any:
    return client.post(url, data, content_type="application/json")


def english(client: Client) -> Client:
    """The API answers in the language the person chose (cookie), French by default."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def last_audit() -> AuditEvent:
    found = AuditEvent.objects.order_by("-seq").first()
    assert found is not None
    return found


@pytest.fixture
def booked(
    schedule: Schedule, consultation: AppointmentType, record: Patient, clinician: User
) -> Appointment:
    access = access_for_booking(clinician, record.pk)
    return do_book_appointment(
        access, consultation, at(next_weekday(1), 9), [clinician], reason="Douleurs lombaires"
    )


def test_appointment_types_lists_the_active_ones(
    consultation: AppointmentType, video_visit: AppointmentType, patient: User
) -> None:
    AppointmentType.objects.filter(pk=video_visit.pk).update(active=False)
    client = english(signed_in_client(patient))
    data = client.get(reverse("api:appointment-type-list")).json()
    assert [(t["code"], t["label"], t["minutes"]) for t in data["results"]] == [
        ("follow-up", "Follow-up visit", 30)
    ]


def test_free_slots_in_utc_with_the_clinic_time(
    schedule: Schedule, consultation: AppointmentType, record: Patient, patient: User
) -> None:
    monday = next_weekday(0)
    url = reverse("api:slot-list")
    response = signed_in_client(patient).get(
        url, {"type": "follow-up", "start": monday.isoformat(), "end": monday.isoformat()}
    )
    assert response.status_code == 200
    data = response.json()
    # 08:00-12:00 in 30-minute slots
    assert data["count"] == 8
    first = data["results"][0]
    assert first["start"] == utc(at(monday, 8))
    assert first["local"] == at(monday, 8).isoformat()
    assert first["end"] == utc(at(monday, 8, 30))
    assert first["clinician"] == schedule.clinician_id
    assert first["clinician_name"] == schedule.clinician.get_full_name()
    assert first["location_name"] == "Policlinique, salle 3"
    # by schedule and a date-time range with an offset
    response = signed_in_client(patient).get(
        url,
        {
            "type": "follow-up",
            "start": at(monday, 10).isoformat(),
            "end": at(monday, 11).isoformat(),
            "schedule": str(schedule.pk),
        },
    )
    assert [s["local"] for s in response.json()["results"]] == [
        at(monday, 10).isoformat(),
        at(monday, 10, 30).isoformat(),
    ]


def test_free_slots_refuse_more_than_31_days_and_unknown_types(
    schedule: Schedule, consultation: AppointmentType, patient: User
) -> None:
    client = english(signed_in_client(patient))
    url = reverse("api:slot-list")
    with translation.override("en"):
        too_long = client.get(
            url, {"type": "follow-up", "start": "2030-01-01", "end": "2030-02-01"}
        )
        unknown = client.get(url, {"type": "nope", "start": "2030-01-01", "end": "2030-01-02"})
        garbled = client.get(url, {"type": "follow-up", "start": "soon", "end": "2030-01-02"})
    assert too_long.status_code == 400
    assert too_long.json() == {"end": ["Search at most 31 days at a time."]}
    assert unknown.status_code == 400 and "type" in unknown.json()
    assert garbled.status_code == 400 and "start" in garbled.json()
    # 31 whole days are fine
    ok = client.get(url, {"type": "follow-up", "start": "2030-01-01", "end": "2030-01-31"})
    assert ok.status_code == 200


def test_a_patient_books_reads_and_lists_only_their_own(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    clinician: User,
) -> None:
    # given another patient's appointment
    other = do_book_appointment(
        access_for_booking(clinician, record2.pk), consultation, at(next_weekday(2), 8), [clinician]
    )
    client = signed_in_client(patient)
    start = at(next_weekday(0), 10)

    # when the patient books for themself
    response = post(
        client,
        reverse("api:appointment-list"),
        {"type": "follow-up", "start": start.isoformat(), "clinicians": [clinician.pk]},
    )

    # then
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["patient"] == record.pk and created["status"] == "booked"
    assert created["start"] == utc(start) and created["local"] == start.isoformat()
    assert [(p["user"], p["role"]) for p in created["participants"]] == [(clinician.pk, "primary")]
    assert response["Location"] == reverse("api:appointment-detail", args=[created["id"]])
    listing = client.get(reverse("api:appointment-list")).json()
    assert [a["id"] for a in listing["results"]] == [created["id"]]
    assert client.get(response["Location"]).json()["id"] == created["id"]
    # another patient's appointment is a 404, audited
    assert client.get(reverse("api:appointment-detail", args=[other.pk])).status_code == 404
    assert last_audit().action == "denied"
    assert post(client, reverse("api:appointment-cancel", args=[other.pk]), {}).status_code == 404
    assert Appointment.objects.get(pk=other.pk).status == "booked"


def test_a_patient_cannot_book_for_someone_else(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    clinician: User,
) -> None:
    response = post(
        signed_in_client(patient),
        reverse("api:appointment-list"),
        {
            "type": "follow-up",
            "start": at(next_weekday(0), 10).isoformat(),
            "clinicians": [clinician.pk],
            "patient": record2.pk,
        },
    )
    assert response.status_code == 404
    assert last_audit().action == "denied"
    assert not Appointment.objects.exists()


@pytest.mark.parametrize("who", ["outsider", "patient2", "billing_user"])
def test_outsiders_get_404_and_a_denial_row(
    who: str, booked: Appointment, record: Patient, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    for name in (
        "api:appointment-detail",
        "api:appointment-cancel",
        "api:appointment-move",
        "api:appointment-status",
    ):
        before = AuditEvent.objects.filter(action="denied").count()
        url = reverse(name, args=[booked.pk])
        response = client.get(url) if name.endswith("detail") else post(client, url, {})
        assert response.status_code == 404, name
        assert AuditEvent.objects.filter(action="denied").count() == before + 1
    listing = client.get(reverse("api:appointment-list"), {"patient": record.pk})
    assert listing.status_code == 404
    assert last_audit().action == "denied"
    assert client.get(reverse("api:appointment-list")).json()["count"] == 0
    booked.refresh_from_db()
    assert booked.status == "booked"


def test_staff_book_a_joint_appointment_and_see_it_with_its_reason(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    record: Patient,
    clinician: User,
    nurse: User,
) -> None:
    client = verified_client(clinician)
    start = at(next_weekday(3), 9, 10)  # staff may start off the grid
    response = post(
        client,
        reverse("api:appointment-list"),
        {
            "type": "joint",
            "start": start.isoformat(),
            "clinicians": [clinician.pk, nurse.pk],
            "patient": record.pk,
            "reason": "Bilan de plaie",
        },
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert [(p["user"], p["role"]) for p in created["participants"]] == [
        (clinician.pk, "primary"),
        (nurse.pk, "secondary"),
    ]
    listing = client.get(
        reverse("api:appointment-list"),
        {"patient": str(record.pk), "status": "booked", "start": start.date().isoformat()},
    ).json()
    assert [(a["id"], a["reason"]) for a in listing["results"]] == [
        (created["id"], "Bilan de plaie")
    ]
    assert (
        client.get(reverse("api:appointment-list"), {"status": "cancelled"}).json()["results"] == []
    )


def test_booking_errors_are_400_with_a_message(
    schedule: Schedule,
    consultation: AppointmentType,
    joint_visit: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    url = reverse("api:appointment-list")
    staff = english(verified_client(clinician))
    with translation.override("en"):
        past = post(
            staff,
            url,
            {
                "type": "follow-up",
                "start": at(next_weekday(0, weeks_ahead=-2), 9).isoformat(),
                "clinicians": [clinician.pk],
                "patient": record.pk,
            },
        )
        no_patient = post(
            staff,
            url,
            {"type": "follow-up", "start": "2030-01-07T09:00", "clinicians": [clinician.pk]},
        )
        clinic_only = post(
            english(signed_in_client(patient)),
            url,
            {
                "type": "joint",
                "start": at(next_weekday(0), 9).isoformat(),
                "clinicians": [clinician.pk],
            },
        )
        unknown = post(
            english(signed_in_client(patient)),
            url,
            {"type": "follow-up", "start": "2030-01-07T09:00", "clinicians": [999999]},
        )
    assert past.status_code == 400 and past.json() == {"detail": "This time is in the past."}
    assert no_patient.status_code == 400 and "patient" in no_patient.json()
    assert clinic_only.status_code == 400
    assert clinic_only.json() == {"detail": "This kind of appointment is booked by the clinic."}
    assert unknown.status_code == 400 and unknown.json() == {
        "clinicians": ["Unknown professional."]
    }
    assert not Appointment.objects.exists()


def test_a_taken_slot_is_409_with_alternatives(
    booked: Appointment, record2: Patient, patient2: User, clinician: User
) -> None:
    with translation.override("en"):
        response = post(
            english(signed_in_client(patient2)),
            reverse("api:appointment-list"),
            {
                "type": "follow-up",
                "start": booked.starts_at.isoformat(),
                "clinicians": [clinician.pk],
            },
        )
    assert response.status_code == 409
    data = response.json()
    assert "is not free" in data["detail"]
    assert len(data["alternatives"]) == 5
    assert all(a["clinician"] == clinician.pk for a in data["alternatives"])
    assert utc(booked.starts_at) not in {a["start"] for a in data["alternatives"]}
    assert Appointment.objects.count() == 1


def test_cancel_move_and_status(
    booked: Appointment, record: Patient, patient: User, clinician: User
) -> None:
    client = english(signed_in_client(patient))
    new_start = at(next_weekday(4), 10)

    moved = post(
        client, reverse("api:appointment-move", args=[booked.pk]), {"start": new_start.isoformat()}
    )
    assert moved.status_code == 201, moved.content
    new = moved.json()
    assert new["id"] != booked.pk and new["start"] == utc(new_start)
    assert new["rescheduled_from"] == booked.pk
    booked.refresh_from_db()
    assert booked.status == "cancelled"

    # a patient cannot record an arrival
    with translation.override("en"):
        refused = post(
            client, reverse("api:appointment-status", args=[new["id"]]), {"status": "arrived"}
        )
    assert refused.status_code == 403

    staff = english(verified_client(clinician))
    arrived = post(
        staff, reverse("api:appointment-status", args=[new["id"]]), {"status": "arrived"}
    )
    assert arrived.status_code == 200 and arrived.json()["status"] == "arrived"
    with translation.override("en"):
        again = post(
            staff, reverse("api:appointment-status", args=[new["id"]]), {"status": "noshow"}
        )
    assert again.status_code == 400
    assert again.json()["detail"] == "An appointment that is arrived cannot become no-show."
    bad = post(staff, reverse("api:appointment-status", args=[new["id"]]), {"status": "booked"})
    assert bad.status_code == 400 and "status" in bad.json()

    cancelled = post(
        staff, reverse("api:appointment-cancel", args=[new["id"]]), {"reason": "Grève"}
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "Grève"


def test_a_patient_cannot_cancel_within_the_policy_window(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    settings: Any,
) -> None:
    settings.SCHEDULING_PATIENT_CHANGE_HOURS = 24 * 30
    appointment = do_book_appointment(
        access_for_booking(clinician, record.pk), consultation, at(next_weekday(1), 9), [clinician]
    )
    response = post(
        signed_in_client(patient), reverse("api:appointment-cancel", args=[appointment.pk]), {}
    )
    assert response.status_code == 400 and "detail" in response.json()
    appointment.refresh_from_db()
    assert appointment.status == "booked"


def test_a_bearer_token_works_and_participants_without_the_record_see_no_reason(
    booked: Appointment,
    make_user: Callable[..., User],
    organization: Any,
) -> None:
    from apps.accounts.models import Role
    from apps.scheduling.models import Participant

    colleague = make_user(Role.NURSE, organization=organization)
    Participant.objects.create(
        appointment=booked,
        user=colleague,
        role="secondary",
        starts_at=booked.starts_at,
        ends_at=booked.ends_at,
    )
    secret, _token = do_issue_token(colleague, name="agenda")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    listing = client.get(reverse("api:appointment-list")).json()
    assert [(a["id"], a["reason"]) for a in listing["results"]] == [(booked.pk, "")]
    # the detail needs the record: 404
    assert client.get(reverse("api:appointment-detail", args=[booked.pk])).status_code == 404


def test_the_openapi_schema_documents_the_scheduling_api(patient: User) -> None:
    response = signed_in_client(patient).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/appointment-types/",
        "/api/v1/slots/",
        "/api/v1/appointments/",
        "/api/v1/appointments/{id}/",
        "/api/v1/appointments/{id}/cancel/",
        "/api/v1/appointments/{id}/move/",
        "/api/v1/appointments/{id}/status/",
    ):
        assert path in paths, path
    slot_params = {p["name"] for p in paths["/api/v1/slots/"]["get"]["parameters"]}
    assert {"type", "start", "end", "schedule", "specialty"} <= slot_params
    assert "409" in paths["/api/v1/appointments/"]["post"]["responses"]
