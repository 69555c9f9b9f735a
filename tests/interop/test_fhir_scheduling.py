"""FHIR Schedule, Slot and Appointment: read and search under the record's rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.records.fhir import validate
from apps.records.models import Patient, Practitioner
from apps.scheduling.fhir import parse_slot_id, slot_id
from apps.scheduling.models import Appointment, AppointmentType, AvailabilityRule, Schedule
from apps.scheduling.services.booking import access_for_booking, do_book_appointment
from tests.interop.conftest import entries
from tests.scheduling.conftest import *  # noqa: F403
from tests.scheduling.conftest import ZURICH, next_weekday

Fhir = Callable[..., Client]


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


def utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def last_sunday_of_march() -> dt.date:
    """The next spring-forward day in Europe/Zurich that is still ahead."""
    year = dt.datetime.now(ZURICH).year + 1
    day = dt.date(year, 3, 31)
    return day - dt.timedelta(days=(day.weekday() - 6) % 7)


@pytest.fixture
def booked(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
) -> Appointment:
    Schedule.objects.filter(pk=schedule.pk).update(
        specialty_code="419192003", specialty="Internal medicine"
    )
    return do_book_appointment(
        access_for_booking(clinician, record.pk),
        consultation,
        at(next_weekday(1), 9),
        [clinician],
        reason="Contrôle tensionnel",
    )


@pytest.fixture
def other_booked(
    schedule: Schedule, consultation: AppointmentType, record2: Patient, clinician: User
) -> Appointment:
    return do_book_appointment(
        access_for_booking(clinician, record2.pk), consultation, at(next_weekday(2), 9), [clinician]
    )


def test_appointment_read_maps_the_booking(
    booked: Appointment, record: Patient, practitioner: Practitioner, fhir_client: Fhir
) -> None:
    response = fhir_client(booked.participants.get().user, "user/*.rs").get(
        f"/fhir/Appointment/{booked.fhir_id}"
    )
    assert response.status_code == 200
    resource = response.json()
    validate(resource)
    assert resource["status"] == "booked"
    assert resource["start"] == utc(booked.starts_at) and resource["minutesDuration"] == 30
    assert resource["serviceType"][0]["coding"][0]["code"] == "follow-up"
    assert resource["appointmentType"]["coding"][0]["code"] == "FOLLOWUP"
    assert resource["reasonCode"] == [{"text": "Contrôle tensionnel"}]
    actors = [p["actor"] for p in resource["participant"]]
    assert actors[0]["reference"] == f"Patient/{record.fhir_id}"
    assert actors[1]["reference"] == f"Practitioner/{practitioner.fhir_id}"
    assert actors[2] == {"display": "Policlinique, salle 3"}
    assert {p["status"] for p in resource["participant"]} == {"accepted"}
    assert resource["participant"][1]["type"][0]["coding"][0]["code"] == "PPRF"


def test_a_participant_without_a_practitioner_is_named_only(
    schedule: Schedule,
    nurse_schedule: Schedule,
    joint_visit: AppointmentType,
    record: Patient,
    clinician: User,
    nurse: User,
    fhir_client: Fhir,
) -> None:
    joint = do_book_appointment(
        access_for_booking(clinician, record.pk),
        joint_visit,
        at(next_weekday(3), 9),
        [clinician, nurse],
    )
    resource = fhir_client(clinician, "user/*.rs").get(f"/fhir/Appointment/{joint.fhir_id}").json()
    validate(resource)
    nurse_actor = resource["participant"][2]["actor"]
    assert "reference" not in nurse_actor and nurse_actor["display"] == nurse.get_full_name()
    assert resource["participant"][2]["type"][0]["coding"][0]["code"] == "SPRF"


def test_an_outsider_gets_404_and_the_denial_is_audited(
    booked: Appointment, outsider: User, fhir_client: Fhir
) -> None:
    client = fhir_client(outsider, "user/*.rs")
    response = client.get(f"/fhir/Appointment/{booked.fhir_id}")
    assert response.status_code == 404
    denial = AuditEvent.objects.order_by("-seq").first()
    assert denial is not None and denial.action == "denied"
    assert denial.object_type == "fhir.Appointment"
    assert client.get("/fhir/Appointment").json()["total"] == 0


def test_a_patient_token_sees_only_its_own_appointments(
    booked: Appointment,
    other_booked: Appointment,
    patient: User,
    patient2: User,
    record: Patient,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(patient, "patient/*.rs")
    bundle = client.get("/fhir/Appointment").json()
    assert [r["id"] for r in entries(bundle)] == [str(booked.fhir_id)]
    assert client.get(f"/fhir/Appointment/{other_booked.fhir_id}").status_code == 404
    # also inside $everything
    everything = client.get(f"/fhir/Patient/{record.fhir_id}/$everything").json()
    assert str(booked.fhir_id) in {
        r["id"] for r in entries(everything) if r["resourceType"] == "Appointment"
    }
    other = fhir_client(patient2, "patient/*.rs")
    assert other.get(f"/fhir/Appointment/{booked.fhir_id}").status_code == 404


def test_appointment_search_by_patient_practitioner_date_status(
    booked: Appointment,
    other_booked: Appointment,
    record: Patient,
    practitioner: Practitioner,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(clinician, "user/*.rs")

    def ids(query: str) -> set[str]:
        response = client.get(f"/fhir/Appointment?{query}")
        assert response.status_code == 200, response.content
        return {r["id"] for r in entries(response.json())}

    mine, theirs = str(booked.fhir_id), str(other_booked.fhir_id)
    assert ids(f"patient=Patient/{record.fhir_id}") == {mine}
    assert ids(f"practitioner=Practitioner/{practitioner.fhir_id}") == {mine, theirs}
    assert ids(f"practitioner={Practitioner().fhir_id}") == set()
    day = booked.starts_at.astimezone(ZURICH).date()
    assert ids(f"date=ge{day}&date=le{day}") == {mine}
    assert ids(f"date={day}") == {mine}
    assert ids("status=booked") == {mine, theirs}
    assert ids("status=cancelled") == set()
    assert ids("service-type=follow-up") == {mine, theirs}
    assert ids("_lastUpdated=ge2000-01-01") == {mine, theirs}
    included = client.get(f"/fhir/Appointment?_id={mine}&_include=Appointment:patient").json()
    assert {r["resourceType"] for r in entries(included)} == {"Appointment", "Patient"}


def test_schedule_is_readable_by_any_caller_with_the_scope(
    booked: Appointment,
    schedule: Schedule,
    practitioner: Practitioner,
    patient2: User,
    settings: Any,
    fhir_client: Fhir,
) -> None:
    schedule.refresh_from_db()
    client = fhir_client(patient2, "patient/Schedule.rs")
    response = client.get(f"/fhir/Schedule/{schedule.fhir_id}")
    assert response.status_code == 200
    resource = response.json()
    validate(resource)
    assert resource["actor"][0]["reference"] == f"Practitioner/{practitioner.fhir_id}"
    assert resource["specialty"][0]["coding"][0]["code"] == "419192003"
    assert {c["coding"][0]["code"] for c in resource["serviceType"]} == {
        "follow-up",
        "video-follow-up",
        "joint",
    }
    horizon = resource["planningHorizon"]
    length = dt.datetime.fromisoformat(horizon["end"]) - dt.datetime.fromisoformat(horizon["start"])
    assert length == dt.timedelta(days=settings.SCHEDULING_SEARCH_DAYS)
    for query, found in (
        (f"actor=Practitioner/{practitioner.fhir_id}", 1),
        ("active=true", 1),
        ("active=false", 0),
        ("specialty=419192003", 1),
        ("specialty=394579002", 0),
        ("service-type=video-follow-up", 1),
        ("service-type=nope", 0),
    ):
        assert client.get(f"/fhir/Schedule?{query}").json()["total"] == found, query
    # without the scope: 403
    assert fhir_client(patient2, "patient/Appointment.rs").get("/fhir/Schedule").status_code == 403


def test_slot_search_walks_over_the_spring_forward_gap(
    schedule: Schedule, video_visit: AppointmentType, patient: User, fhir_client: Fhir
) -> None:
    # given a Sunday night window 01:00-04:00 (clinic time), 20-minute video visits
    AvailabilityRule.objects.create(
        schedule=schedule,
        weekday=6,
        starts=dt.time(1),
        ends=dt.time(4),
        mode="video",
        valid_from=dt.date(2020, 1, 1),
    )
    dst = last_sunday_of_march()
    week_before = dst - dt.timedelta(days=7)
    client = fhir_client(patient, "patient/Slot.rs")

    # when the week up to the change is searched
    response = client.get(
        f"/fhir/Slot?schedule=Schedule/{schedule.fhir_id}&service-type=video-follow-up"
        f"&start=ge{week_before}&start=lt{dst + dt.timedelta(days=1)}"
    )

    # then 02:00-03:00 does not exist on the day of the change: 6 slots instead of 9
    assert response.status_code == 200, response.content
    slots = entries(response.json())
    for slot in slots[:3]:
        validate(slot)

    def local_times(day: dt.date) -> list[str]:
        found = [dt.datetime.fromisoformat(s["start"]).astimezone(ZURICH) for s in slots]
        return [f"{t:%H:%M}" for t in found if t.date() == day]

    assert len(local_times(week_before)) == 9
    assert local_times(dst) == ["01:00", "01:20", "01:40", "03:00", "03:20", "03:40"]
    starts = [s["start"] for s in slots]
    assert f"{week_before}T00:00:00Z" in starts  # 01:00 CET
    assert f"{dst}T01:00:00Z" in starts  # 03:00 CEST, right after the gap
    assert all(s["status"] == "free" for s in slots)
    assert slots[0]["schedule"] == {"reference": f"Schedule/{schedule.fhir_id}"}


def test_slot_search_needs_a_schedule_and_a_short_range(
    schedule: Schedule, patient: User, fhir_client: Fhir
) -> None:
    client = fhir_client(patient, "patient/*.rs")
    ref = f"schedule=Schedule/{schedule.fhir_id}"
    for query, expression in (
        ("start=ge2030-01-01&start=le2030-01-02", "schedule"),
        (f"{ref}&start=ge2030-01-01", "start"),
        (f"{ref}&start=ge2030-01-01&start=le2030-03-01", "start"),
        (f"{ref}&start=ge2030-01-01&start=le2030-01-02&color=blue", "color"),
    ):
        response = client.get(f"/fhir/Slot?{query}")
        assert response.status_code == 400, query
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == [expression]
    assert client.post("/fhir/Slot", {}, content_type="application/fhir+json").status_code == 405
    assert (
        fhir_client(patient, "patient/Appointment.rs").get(f"/fhir/Slot?{ref}").status_code == 403
    )


def test_a_slot_reads_while_free_and_is_gone_once_booked(
    schedule: Schedule,
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(patient, "patient/*.rs")
    monday = next_weekday(0)
    bundle = client.get(
        f"/fhir/Slot?schedule={schedule.fhir_id}&service-type=follow-up"
        f"&start=ge{monday}&start=le{monday}&_count=3"
    ).json()
    assert bundle["total"] == 8 and len(bundle["entry"]) == 3
    assert any(link["relation"] == "next" for link in bundle["link"])
    first = entries(bundle)[0]
    assert first["id"] == slot_id(schedule.fhir_id, consultation.pk, at(monday, 8))
    assert parse_slot_id(first["id"]) == (schedule.fhir_id, consultation.pk, at(monday, 8))
    assert client.get(f"/fhir/Slot/{first['id']}").json() == first

    do_book_appointment(
        access_for_booking(patient, record.pk), consultation, at(monday, 8), [clinician]
    )

    assert client.get(f"/fhir/Slot/{first['id']}").status_code == 404
    assert client.get("/fhir/Slot/not-a-slot").status_code == 404


def test_capability_lists_the_scheduling_types(db: None) -> None:
    statement = Client().get("/fhir/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"Appointment", "Schedule", "Slot"} <= set(resources)
    assert [i["code"] for i in resources["Slot"]["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in resources["Slot"]["searchParam"]} >= {"schedule", "start"}
    assert {p["name"] for p in resources["Appointment"]["searchParam"]} >= {
        "patient",
        "practitioner",
        "date",
        "status",
    }
    assert {p["name"] for p in resources["Schedule"]["searchParam"]} >= {
        "actor",
        "active",
        "specialty",
    }
