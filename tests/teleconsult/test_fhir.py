"""A finished video consultation in the record: a FHIR Encounter of class VR with the call's
real period, its participants, appointment and length; and one entry in the timeline."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.records.access import get_patient_for_user
from apps.records.fhir import to_fhir, validate
from apps.records.fhir.batch import dumps_line, encounter_lines
from apps.records.fhir.clinical import load_encounter_extras
from apps.records.models import Encounter, Practitioner
from apps.records.timeline import timeline_page
from apps.teleconsult.models import Consultation
from apps.teleconsult.services.rooms import Member
from tests.conftest import signed_in_client
from tests.teleconsult.records_cast import *  # noqa: F403
from tests.teleconsult.records_cast import end, guest_invite, in_call

PPRF = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def finished_call(
    call: dict[str, Member], room: Consultation, clinician: User, colleague: User
) -> Consultation:
    """The physician and the nurse attended; a guest too; the call lasted 23 minutes."""
    in_call(room, colleague)
    in_call(room, None, guest_invite(room, clinician))  # type: ignore[arg-type]
    room = end(room, clinician)
    started = room.started_at
    assert started is not None
    # The real times as the call would have given them (23 minutes 20 seconds).
    ended = started + dt.timedelta(minutes=23, seconds=20)
    Consultation.objects.filter(pk=room.pk).update(ended_at=ended)
    Encounter.objects.filter(pk=room.encounter_id).update(ended_at=ended)
    room.refresh_from_db()
    return room


def test_a_finished_consultation_is_a_virtual_encounter_with_its_real_period(
    call: dict[str, Member], room: Consultation, clinician: User, colleague: User
) -> None:
    Practitioner.objects.create(user=clinician, registration_number="7601000123456")
    room = finished_call(call, room, clinician, colleague)
    encounter = Encounter.objects.get(pk=room.encounter_id)

    resource = to_fhir(encounter)

    validate(resource)
    assert resource["resourceType"] == "Encounter"
    assert resource["status"] == "finished"
    assert resource["class"]["code"] == "VR"
    assert resource["period"] == {
        "start": room.started_at.isoformat(),  # type: ignore[union-attr]
        "end": room.ended_at.isoformat(),  # type: ignore[union-attr]
    }
    assert resource["length"] == {
        "value": 23,
        "unit": "min",
        "system": "http://unitsofmeasure.org",
        "code": "min",
    }
    assert room.appointment is not None
    assert resource["appointment"] == [{"reference": f"Appointment/{room.appointment.fhir_id}"}]
    # the physician who connected the call first, then the nurse; never the patient or the guest
    people = [
        (p["type"][0]["coding"][0]["code"], p["individual"]["identifier"]["value"])
        for p in resource["participant"]
    ]
    assert people == [("PPRF", str(clinician.pk)), ("SPRF", str(colleague.pk))]
    assert resource["participant"][0]["individual"]["reference"].startswith("Practitioner/")
    assert resource["participant"][1]["type"][0]["coding"][0]["system"] == PPRF
    assert resource["participant"][1]["individual"]["display"] == colleague.get_full_name()


def test_an_ongoing_call_has_no_length_yet(call: dict[str, Member], room: Consultation) -> None:
    resource = to_fhir(Encounter.objects.get(pk=room.encounter_id))
    assert resource["status"] == "in-progress"
    assert "end" not in resource["period"] and "length" not in resource
    assert [p["type"][0]["coding"][0]["code"] for p in resource["participant"]] == ["PPRF"]


def test_encounters_without_a_consultation_are_unchanged(record: Any, clinician: User) -> None:
    plain = Encounter.objects.create(
        patient=record,
        status="finished",
        kind="AMB",
        practitioner=clinician,
        started_at=dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC),
        ended_at=dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC),
    )
    resource = to_fhir(plain)
    assert "length" not in resource and "appointment" not in resource
    assert len(resource["participant"]) == 1


def test_export_lines_equal_to_fhir_byte_for_byte(
    call: dict[str, Member], room: Consultation, clinician: User, colleague: User, record: Any
) -> None:
    Practitioner.objects.create(user=colleague, registration_number="7601000654321")
    finished_call(call, room, clinician, colleague)
    Encounter.objects.create(
        patient=record,
        status="finished",
        kind="AMB",
        started_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    )

    lines = [line for block in encounter_lines(Encounter.objects.all(), 1) for line in block]

    assert len(lines) == 2
    for line in lines:
        expected = to_fhir(Encounter.objects.get(fhir_id=json.loads(line)["id"]))
        assert line == dumps_line(expected)
    assert any(b'"length"' in line and b'"SPRF"' in line for line in lines)


def test_export_queries_do_not_grow_with_the_calls(
    call: dict[str, Member], room: Consultation, clinician: User, colleague: User
) -> None:
    finished_call(call, room, clinician, colleague)
    with CaptureQueriesContext(connection) as one:
        list(encounter_lines(Encounter.objects.all(), 100))
    for _n in range(3):
        encounter = Encounter.objects.create(
            patient=room.patient,
            status="finished",
            started_at=room.started_at,
            practitioner=colleague,
        )
        Consultation.objects.create(
            patient=room.patient,
            opened_by=colleague,
            status="ended",
            encounter=encounter,
            started_at=room.started_at,
            ended_at=room.ended_at,
        )
    with CaptureQueriesContext(connection) as four:
        lines = [line for block in encounter_lines(Encounter.objects.all(), 100) for line in block]
    assert len(lines) == 4
    assert len(four) <= len(one)


def test_a_page_of_encounters_loads_its_extras_at_once(
    call: dict[str, Member], room: Consultation, clinician: User, colleague: User
) -> None:
    finished_call(call, room, clinician, colleague)
    page = list(Encounter.objects.select_related("practitioner__practitioner", "patient"))
    load_encounter_extras(page)
    with CaptureQueriesContext(connection) as mapping:
        resource = to_fhir(page[0])
    assert resource["length"]["value"] == 23
    # the consultation is not looked up again, row by row
    assert not [q for q in mapping.captured_queries if "teleconsult_" in q["sql"]]


def test_the_call_is_in_the_timeline_once(
    call: dict[str, Member], room: Consultation, clinician: User, colleague: User, patient: User
) -> None:
    room = finished_call(call, room, clinician, colleague)

    for user in (clinician, patient):
        _page, entries = timeline_page(get_patient_for_user(user, room.patient_id))
        calls = [e for e in entries if e.kind in ("consultation", "encounter")]
        assert [e.kind for e in calls] == ["consultation"]
        entry = calls[0]
        assert entry.at == room.started_at
        assert "23" in entry.title
        assert entry.url == f"/consult/{room.room}/summary/"
        assert clinician.get_full_name() in entry.detail


def test_the_timeline_page_costs_the_same_with_more_calls(
    call: dict[str, Member], room: Consultation, clinician: User, colleague: User, patient: User
) -> None:
    room = finished_call(call, room, clinician, colleague)
    access = get_patient_for_user(clinician, room.patient_id)
    with CaptureQueriesContext(connection) as one:
        timeline_page(access, kinds_wanted=["consultation"])
    for _n in range(4):
        Consultation.objects.create(
            patient=room.patient,
            opened_by=clinician,
            status="ended",
            started_at=room.started_at,
            ended_at=room.ended_at,
        )
    with CaptureQueriesContext(connection) as five:
        _page, entries = timeline_page(access, kinds_wanted=["consultation"])
    assert len(entries) == 5
    assert len(five) <= len(one)


def test_the_timeline_shows_no_call_to_an_outsider(
    call: dict[str, Member],
    room: Consultation,
    clinician: User,
    colleague: User,
    patient2: User,
) -> None:
    finished_call(call, room, clinician, colleague)
    other: Client = signed_in_client(patient2)
    response = other.get("/record/timeline/")
    assert room.room.encode() not in response.content
