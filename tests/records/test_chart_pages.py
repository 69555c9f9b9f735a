"""The chart's pages in both portals: who gets 200, who gets 404, and the audit rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent
from apps.records.models import ClinicalNote, Observation, Patient
from apps.records.services.care_team import current_members, do_remove_member
from tests.conftest import signed_in_client, verified_client

CLINIC_PAGES = ["chart", "results", "reports", "notes", "timeline", "care_team"]
PATIENT_PAGES = ["my_record", "my_results", "my_reports", "my_timeline", "access_log"]


def _last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


@pytest.mark.parametrize("name", CLINIC_PAGES)
def test_care_team_member_opens_each_page_and_is_audited(
    name: str, record: Patient, clinician: User, make_observation: Callable[..., Observation]
) -> None:
    make_observation(record)
    client = verified_client(clinician)
    response = client.get(reverse(f"records:{name}", args=[record.pk]))
    assert response.status_code == 200
    assert record.family_name in response.content.decode()
    event = AuditEvent.objects.filter(patient_id=str(record.pk), action="read").last()
    assert event is not None and event.actor_id == clinician.pk


@pytest.mark.parametrize("name", CLINIC_PAGES + ["observation"])
@pytest.mark.parametrize("who", ["outsider", "removed", "billing", "admin", "patient2"])
def test_anyone_else_gets_404_and_a_denial_row(
    name: str,
    who: str,
    record: Patient,
    clinician: User,
    outsider: User,
    billing_user: User,
    admin_user: User,
    patient2: User,
    make_observation: Callable[..., Observation],
    make_user: Callable[..., User],
) -> None:
    observation = make_observation(record)
    if who == "removed":
        nurse = make_user(Role.NURSE, organization=clinician.organization)
        from apps.records.services.care_team import default_team, do_add_member

        do_add_member(default_team(record), nurse)
        member = next(m for m in current_members(record) if m.user_id == nurse.pk)
        do_remove_member(member)
        client = verified_client(nurse)
    elif who == "patient2":
        client = signed_in_client(patient2)
    else:
        user = {"outsider": outsider, "billing": billing_user, "admin": admin_user}[who]
        client = verified_client(user)
    arg = observation.pk if name == "observation" else record.pk
    response = client.get(reverse(f"records:{name}", args=[arg]))
    assert response.status_code == 404
    event = _last_event()
    assert event.action == "denied" and event.outcome == "denied"


@pytest.mark.parametrize("name", PATIENT_PAGES)
def test_patient_reads_own_record_pages(
    name: str, record: Patient, patient: User, make_observation: Callable[..., Observation]
) -> None:
    make_observation(record)
    response = signed_in_client(patient).get(reverse(f"records:{name}"))
    assert response.status_code == 200


def test_patient_without_a_linked_record_is_told_so(patient2: User) -> None:
    response = signed_in_client(patient2).get(reverse("records:my_record"))
    assert response.status_code == 200
    assert "pas encore relié" in response.content.decode()


@pytest.mark.parametrize("name", ["my_results", "my_timeline", "access_log"])
def test_staff_have_no_patient_portal_record(name: str, clinician: User) -> None:
    assert verified_client(clinician).get(reverse(f"records:{name}")).status_code == 404


def test_patient_cannot_open_the_clinic_chart_of_their_own_record(
    record: Patient, patient: User
) -> None:
    response = signed_in_client(patient).get(reverse("records:chart", args=[record.pk]))
    assert response.status_code == 404


def test_nurse_does_not_see_sensitive_notes(
    record: Patient, clinician: User, make_user: Callable[..., User]
) -> None:
    from apps.records.access import get_patient_for_user
    from apps.records.services.care_team import default_team, do_add_member
    from apps.records.services.clinical import do_write_note

    access = get_patient_for_user(clinician, record.pk)
    do_write_note(
        access,
        clinician,
        kind="progress",
        title="Suivi psy",
        text="Idées noires",
        sensitivity="mental_health",
    )
    do_write_note(access, clinician, kind="progress", title="Suivi TA", text="Stable")
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    do_add_member(default_team(record), nurse)
    page = verified_client(nurse).get(reverse("records:notes", args=[record.pk])).content.decode()
    assert "Suivi TA" in page and "Suivi psy" not in page
    page = (
        verified_client(clinician).get(reverse("records:notes", args=[record.pk])).content.decode()
    )
    assert "Suivi psy" in page
    note = ClinicalNote.objects.get(title="Suivi psy")
    response = verified_client(nurse).get(reverse("records:note_amend", args=[record.pk, note.pk]))
    assert response.status_code == 404


def _count_queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("name", ["chart", "results", "timeline", "reports", "notes"])
def test_pages_use_a_constant_number_of_queries(
    name: str,
    record: Patient,
    clinician: User,
    make_observation: Callable[..., Observation],
    concept: Callable[..., Any],
) -> None:
    client = verified_client(clinician)
    url = reverse(f"records:{name}", args=[record.pk])
    make_observation(record)
    small = _count_queries(client, url)
    from apps.records.access import get_patient_for_user
    from apps.records.services.clinical import do_write_note

    access = get_patient_for_user(clinician, record.pk)
    for n in range(40):
        make_observation(record, value=60 + n, code=concept(f"9999-{n % 5}", unit="mmol/L"))
        do_write_note(access, clinician, kind="progress", title=f"Note {n}", text="…")
    large = _count_queries(client, url)
    assert large <= small + 1, f"{name}: {small} queries with 1 row, {large} with many"
    assert large <= 30
