"""Constant query counts: a FHIR search page or read costs the same whatever its size."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.records.models import (
    BreakGlassAccess,
    CareTeam,
    CareTeamMember,
    ClinicalNote,
    Concept,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    Observation,
    ObservationNote,
    Patient,
    Practitioner,
)
from apps.records.services.care_team import default_team, do_add_member, do_remove_member

from .conftest import entries

ROWS = 50
SMALL = 5
# What a page may cost at most, whatever the type: token, the searched patient and the grant
# check, count, rows and prefetches per model (DocumentReference has two), audit row. Above
# this something is loaded row by row.
CEILING = 18

Builder = Callable[[Patient, list[User], int], list[Any]]


@pytest.fixture
def staff(make_user: Callable[..., User]) -> list[User]:
    """Three clinicians with Practitioner resources: the recorders, authors and members."""
    people = []
    for n in range(3):
        user = make_user(Role.NURSE if n else Role.PHYSICIAN, email=f"staff{n}@example.test")
        Practitioner.objects.create(user=user, registration_number=f"76010000{n:05d}")
        people.append(user)
    return people


def _encounter(patient: Patient, by: User, at: dt.datetime) -> Encounter:
    return Encounter.objects.create(
        patient=patient, status="finished", practitioner=by, started_at=at, recorded_by=by
    )


def _report(patient: Patient, code: Concept, by: User, at: dt.datetime) -> DiagnosticReport:
    document = _document(patient, by, at)
    return DiagnosticReport.objects.create(
        patient=patient,
        code=code,
        category="LAB",
        issued_at=at,
        document=document,
        encounter=_encounter(patient, by, at),
        recorded_by=by,
    )


def _document(patient: Patient, by: User, at: dt.datetime) -> DocumentReference:
    return DocumentReference.objects.create(
        patient=patient,
        title="Lab report",
        category=DocumentReference.Category.REPORT,
        content_type="application/pdf",
        size=1000,
        sha256="0" * 64,
        filename="report.pdf",
        storage_name=secrets.token_hex(16),
        key_id="k1",
        encounter=_encounter(patient, by, at),
        recorded_by=by,
        recorded_at=at,
    )


def _observations(patient: Patient, staff: list[User], n: int) -> list[Any]:
    code = Concept.objects.get(code="8867-4")
    now = timezone.now()
    rows = []
    for i in range(n):
        at = now - dt.timedelta(hours=i)
        by = staff[i % len(staff)]
        observation = Observation.objects.create(
            patient=patient,
            code=code,
            category="vital-signs",
            value=Decimal(70 + i % 20),
            unit="/min",
            ref_low=Decimal(50),
            ref_high=Decimal(100),
            effective_at=at,
            recorded_by=by,
            report=_report(patient, code, by, at) if i % 5 == 0 else None,
            encounter=_encounter(patient, by, at),
        )
        for author in staff[: 1 + i % len(staff)]:
            ObservationNote.objects.create(observation=observation, author=author, text="seen")
        rows.append(observation)
    return rows


def _conditions(patient: Patient, staff: list[User], n: int) -> list[Any]:
    now = timezone.now()
    return [
        Condition.objects.create(
            patient=patient,
            code=Concept.objects.get_or_create(
                system="http://snomed.info/sct", code=f"3800{i:04d}", defaults={"display": "x"}
            )[0],
            onset_date=dt.date(2020, 1, 1 + i % 28),
            encounter=_encounter(patient, staff[i % 3], now),
            recorded_by=staff[i % 3],
            recorded_at=now - dt.timedelta(hours=i),
        )
        for i in range(n)
    ]


def _reports(patient: Patient, staff: list[User], n: int) -> list[Any]:
    code = Concept.objects.get(code="8867-4")
    now = timezone.now()
    rows = []
    for i in range(n):
        report = _report(patient, code, staff[i % 3], now - dt.timedelta(hours=i))
        for _ in range(1 + i % 3):
            Observation.objects.create(
                patient=patient,
                code=code,
                category="vital-signs",
                value=Decimal(80),
                unit="/min",
                effective_at=now,
                report=report,
            )
        rows.append(report)
    return rows


def _documents(patient: Patient, staff: list[User], n: int) -> list[Any]:
    """Half uploaded files, half signed notes (some amending an earlier one)."""
    now = timezone.now()
    rows: list[Any] = []
    previous: ClinicalNote | None = None
    for i in range(n):
        at = now - dt.timedelta(hours=i)
        by = staff[i % 3]
        if i % 2:
            rows.append(_document(patient, by, at))
            continue
        previous = ClinicalNote.objects.create(
            patient=patient,
            title=f"Note {i}",
            text="Patient seen.",
            signed_at=at,
            signature="s" * 64,
            amends=previous if i % 4 == 0 else None,
            encounter=_encounter(patient, by, at),
            recorded_by=by,
            recorded_at=at,
        )
        rows.append(previous)
    return rows


def _care_teams(patient: Patient, staff: list[User], n: int) -> list[Any]:
    rows = [default_team(patient)]
    for i in range(n - 1):
        team = CareTeam.objects.create(
            patient=patient, name=f"Team {i}", organization=patient.organization
        )
        for user in staff[: 1 + i % 3]:
            CareTeamMember.objects.create(care_team=team, user=user, role=user.role)
        rows.append(team)
    return rows


def _patients(patient: Patient, staff: list[User], n: int) -> list[Any]:
    """`patient` and n - 1 more on the same clinician's care team (the first staff member)."""
    clinician = CareTeamMember.objects.filter(care_team__patient=patient).first()
    assert clinician is not None
    rows: list[Any] = [patient]
    for i in range(n - 1):
        user = User.objects.create_user(
            email=f"p{i}@example.test", role=Role.PATIENT, first_name="P", last_name=f"N{i}"
        )
        chart = Patient.objects.create(
            user=user if i % 2 else None,
            organization=patient.organization,
            family_name=f"Family{i:03d}",
            given_names="Given",
            birth_date=dt.date(1970, 1, 1 + i % 28),
        )
        do_add_member(default_team(chart), clinician.user)
        rows.append(chart)
    return rows


BUILDERS: dict[str, Builder] = {
    "Observation": _observations,
    "Condition": _conditions,
    "DiagnosticReport": _reports,
    "DocumentReference": _documents,
    "CareTeam": _care_teams,
    "Patient": _patients,
}


def _queries(client: Client, url: str, params: dict[str, Any] | None = None) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200, response.content
    return len(captured)


def _token_client(
    kind: str, patient: User, clinician: User, fhir_client: Callable[..., Client]
) -> Client:
    client = fhir_client(patient, "patient/*.rs") if kind == "patient" else None
    client = client or fhir_client(clinician, "user/*.rs")
    client.get("/fhir/Patient", {"_summary": "count"})  # the token's first use is written once
    return client


@pytest.mark.parametrize("type_name", sorted(BUILDERS))
@pytest.mark.parametrize("kind", ["user", "patient"])
def test_a_search_page_costs_the_same_whatever_its_size(
    type_name: str,
    kind: str,
    record: Patient,
    patient: User,
    clinician: User,
    staff: list[User],
    heart_rate: Concept,
    fhir_client: Callable[..., Client],
    django_assert_num_queries: Any,
) -> None:
    rows = BUILDERS[type_name](record, staff, ROWS)
    client = _token_client(kind, patient, clinician, fhir_client)
    params: dict[str, Any] = {} if type_name == "Patient" else {"patient": str(record.fhir_id)}
    expected = ROWS if type_name != "Patient" or kind == "user" else 1
    small = _queries(client, f"/fhir/{type_name}", {**params, "_count": SMALL})
    assert small <= CEILING, f"{type_name}: {small} queries for {SMALL} rows"
    with django_assert_num_queries(small):
        response = client.get(f"/fhir/{type_name}", {**params, "_count": ROWS})
    bundle = response.json()
    assert bundle["total"] >= expected
    assert len(entries(bundle)) == min(expected, ROWS)
    assert {e["id"] for e in entries(bundle)} <= {str(row.fhir_id) for row in rows} | {
        str(p) for p in Patient.objects.values_list("fhir_id", flat=True)
    }


@pytest.mark.parametrize("type_name", sorted(BUILDERS))
@pytest.mark.parametrize("kind", ["user", "patient"])
def test_a_read_costs_the_same_whatever_the_resource_holds(
    type_name: str,
    kind: str,
    record: Patient,
    patient: User,
    clinician: User,
    staff: list[User],
    heart_rate: Concept,
    fhir_client: Callable[..., Client],
    django_assert_num_queries: Any,
) -> None:
    rows = BUILDERS[type_name](record, staff, 9)
    client = _token_client(kind, patient, clinician, fhir_client)
    # Rows 0 and 5 have the same links but differ in the lists that hang off them (notes,
    # members, results); a patient token reads its own Patient only.
    first, last = rows[0], rows[5]
    if type_name == "Patient" and kind == "patient":
        first = last = record
    if type_name == "DocumentReference":
        # Two notes amending another (a note is looked for among the files first).
        first, last = rows[4], rows[8]
    cost = _queries(client, f"/fhir/{type_name}/{first.fhir_id}")
    assert cost <= CEILING
    with django_assert_num_queries(cost):
        response = client.get(f"/fhir/{type_name}/{last.fhir_id}")
    assert response.status_code == 200
    assert response.json()["id"] == str(last.fhir_id)


def test_a_user_token_sees_break_glass_patients_and_not_revoked_ones(
    record: Patient,
    record2: Patient,
    outsider: User,
    clinician: User,
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
) -> None:
    """The direct permission filter keeps the semantics of `patients_for_user`."""
    mine = make_observation(record)
    make_observation(record2)
    client = fhir_client(outsider, "user/*.rs")
    assert client.get("/fhir/Observation").json()["total"] == 0
    BreakGlassAccess.objects.create(
        user=outsider,
        patient=record,
        reason="Unconscious patient in the emergency room.",
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    bundle = client.get("/fhir/Observation").json()
    assert [e["id"] for e in entries(bundle)] == [str(mine.fhir_id)]
    BreakGlassAccess.objects.filter(user=outsider).update(
        started_at=timezone.now() - dt.timedelta(hours=2),
        expires_at=timezone.now() - dt.timedelta(minutes=1),
    )
    assert client.get("/fhir/Observation").json()["total"] == 0
    clinician_client = fhir_client(clinician, "user/*.rs")
    assert clinician_client.get("/fhir/Observation").json()["total"] == 2
    do_remove_member(CareTeamMember.objects.get(user=clinician, care_team__patient=record2))
    assert clinician_client.get("/fhir/Observation").json()["total"] == 1


def test_a_user_token_sees_sensitive_rows_only_if_the_role_may(
    record: Patient,
    clinician: User,
    make_user: Callable[..., User],
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
) -> None:
    nurse = make_user(Role.NURSE, email="nurse@example.test", organization=record.organization)
    do_add_member(default_team(record), nurse)
    make_observation(record)
    make_observation(record, sensitivity="mental_health")
    assert fhir_client(clinician, "user/*.rs").get("/fhir/Observation").json()["total"] == 2
    assert fhir_client(nurse, "user/*.rs").get("/fhir/Observation").json()["total"] == 1


@pytest.mark.parametrize(("count", "offset"), [(0, 0), (3, 0), (10, 0), (3, 6), (3, 9), (3, 12)])
def test_the_total_is_right_with_or_without_the_count_query(
    count: int,
    offset: int,
    record: Patient,
    clinician: User,
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
) -> None:
    """A page that is not full gives the total without a COUNT; the total must not change."""
    for _ in range(8):
        make_observation(record)
    client = fhir_client(clinician, "user/*.rs")
    bundle = client.get("/fhir/Observation", {"_count": count, "_offset": offset}).json()
    assert bundle["total"] == 8
    assert len(entries(bundle)) == max(0, min(count, 8 - offset))
