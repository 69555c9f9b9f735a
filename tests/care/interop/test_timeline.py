"""Care coordination in the patient timeline: plans, tasks, signed meeting decisions, questionnaire
responses and decided proposals, each with its audience (the patient never sees tasks, decisions
or proposals; outsiders and billing staff see nothing), at a constant cost per page."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.models import Role, User
from apps.care.models import (
    CarePlan,
    Meeting,
    MeetingCase,
    MeetingDecision,
    Proposal,
    QuestionnaireResponse,
    Rule,
    Task,
)
from apps.records.access import Level, get_patient_for_user
from apps.records.models import BreakGlassAccess, DocumentReference, Patient
from apps.records.timeline import Entry, timeline_page
from tests.conftest import signed_in_client, verified_client

from .conftest import last_audit

CARE_KINDS = ["care-plan", "care-task", "care-decision", "questionnaire", "care-proposal"]


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def care_entries(user: User, chart: Patient, **options: Any) -> list[Entry]:
    need = Level.ADMINISTRATIVE if user.role == Role.BILLING else Level.CLINICAL
    access = get_patient_for_user(user, chart.pk, need=need)
    _page, entries = timeline_page(access, kinds_wanted=CARE_KINDS, **options)
    return entries


def by_kind(entries: list[Entry]) -> dict[str, list[Entry]]:
    found: dict[str, list[Entry]] = {}
    for entry in entries:
        found.setdefault(entry.kind, []).append(entry)
    return found


@pytest.fixture
def decision(record: Patient, clinician: User, nurse: User) -> MeetingDecision:
    """A signed decision of a tumour board, archived as a PDF in the record."""
    at = timezone.now() - dt.timedelta(days=2)
    meeting = Meeting.objects.create(
        organization=clinician.organization,
        title="RCP oncologie",
        kind=Meeting.Kind.TUMOUR_BOARD,
        starts_at=at,
        ends_at=at + dt.timedelta(hours=1),
        chair=clinician,
        created_by=clinician,
    )
    case = MeetingCase.objects.create(
        meeting=meeting, patient=record, question="Chimiothérapie adjuvante ?", presented_by=nurse
    )
    document = DocumentReference.objects.create(
        patient=record,
        title="Décision RCP",
        category=DocumentReference.Category.REPORT,
        content_type="application/pdf",
        size=1000,
        sha256="0" * 64,
        filename="decision.pdf",
        storage_name=secrets.token_hex(16),
        key_id="k1",
        recorded_by=clinician,
        recorded_at=at,
    )
    return MeetingDecision.objects.create(
        case=case,
        patient=record,
        text="Chimiothérapie adjuvante, 6 cycles.",
        recorded_by=clinician,
        signed_by=clinician,
        signed_at=at + dt.timedelta(minutes=50),
        signature="a" * 64,
        document=document,
    )


@pytest.fixture
def unsigned(decision: MeetingDecision, record: Patient, clinician: User) -> MeetingDecision:
    other = MeetingCase.objects.create(
        meeting=decision.case.meeting,
        patient=Patient.objects.create(
            family_name="Autre", given_names="Cas", birth_date=dt.date(1950, 1, 1), sex="male"
        ),
        question="Pas encore signé",
        presented_by=clinician,
    )
    return MeetingDecision.objects.create(
        case=other, patient=other.patient, text="Brouillon", recorded_by=clinician
    )


@pytest.fixture
def proposals(record: Patient, clinician: User) -> tuple[Proposal, Proposal, Proposal]:
    """An accepted, a dismissed and a still open proposal."""
    rule = Rule.objects.create(
        code="bp-sustained",
        kind=Rule.Kind.SUSTAINED,
        title="Tension au-dessus de la cible",
        title_en="Blood pressure above target",
        rationale="La tension est restée au-dessus de {target} pendant {days} jours.",
    )
    now = timezone.now()

    def make(fingerprint: str, **fields: Any) -> Proposal:
        return Proposal.objects.create(
            patient=record, rule=rule, rule_code=rule.code, fingerprint=fingerprint, **fields
        )

    accepted = make("a", status=Proposal.Status.ACCEPTED, decided_by=clinician, decided_at=now)
    dismissed = make(
        "b",
        status=Proposal.Status.DISMISSED,
        decided_by=clinician,
        decided_at=now - dt.timedelta(hours=1),
        dismiss_reason="Mesures prises après l'effort.",
    )
    return accepted, dismissed, make("c")


@pytest.fixture
def everything(
    plan: CarePlan,
    task: Task,
    make_task: Callable[..., Task],
    response: QuestionnaireResponse,
    decision: MeetingDecision,
    proposals: tuple[Proposal, Proposal, Proposal],
) -> dict[str, Any]:
    overdue = make_task(
        title="Rappeler pour le contrôle",
        assignee_role=Role.PHYSICIAN,
        due_at=timezone.now() - dt.timedelta(hours=3),
    )
    return {"plan": plan, "task": task, "overdue": overdue, "response": response}


def test_the_care_team_sees_every_care_source(
    everything: dict[str, Any],
    decision: MeetingDecision,
    unsigned: MeetingDecision,
    proposals: tuple[Proposal, Proposal, Proposal],
    record: Patient,
    nurse: User,
) -> None:
    found = by_kind(care_entries(nurse, record))

    (plan,) = found["care-plan"]
    assert plan.title == "Insuffisance cardiaque — suivi"
    assert plan.detail.startswith("Active · Heart failure · coordinated by ")
    assert plan.url == reverse("care:plan", args=[everything["plan"].pk])
    assert plan.at == everything["plan"].created_at
    # Tasks: the completed one dated by its completion, the open overdue one flagged.
    tasks = {entry.title: entry for entry in found["care-task"]}
    done, overdue = tasks["Refaire le pansement"], tasks["Rappeler pour le contrôle"]
    task = everything["task"]
    assert (done.title, done.at) == ("Refaire le pansement", task.completed_at)
    assert done.detail.startswith("Wound care / dressing · done · done by ")
    assert done.url == reverse("care:task", args=[task.pk]) and done.flag == ""
    assert overdue.at == everything["overdue"].created_at
    assert overdue.detail == "Call the patient · to do · for a physician · overdue"
    assert overdue.flag == "H"
    # The signed decision only, linking to its PDF.
    (signed,) = found["care-decision"]
    assert signed.title == "RCP oncologie"
    assert signed.at == decision.signed_at
    assert signed.detail.startswith("Chimiothérapie adjuvante ? · signed by ")
    assert signed.url == reverse("records:document_download", args=[decision.document_id])
    (answered,) = found["questionnaire"]
    assert answered.title == "Follow-up after knee surgery"
    assert (answered.detail, answered.flag) == ("an answer needs attention", "H")
    assert answered.url == reverse("care:patient_followup", args=[record.pk])
    # Decided proposals, not the open one, newest first.
    accepted, dismissed, _open = proposals
    assert [(e.title, e.at) for e in found["care-proposal"]] == [
        ("Blood pressure above target", accepted.decided_at),
        ("Blood pressure above target", dismissed.decided_at),
    ]
    assert found["care-proposal"][1].detail.endswith("Mesures prises après l'effort.")
    assert found["care-proposal"][0].url == reverse("care:patient_proposals", args=[record.pk])


def test_the_patient_sees_their_plans_and_responses_only(
    everything: dict[str, Any],
    make_plan: Callable[..., CarePlan],
    record: Patient,
    patient: User,
) -> None:
    make_plan(title="Plan en préparation", status=CarePlan.Status.DRAFT)

    found = by_kind(care_entries(patient, record))

    assert set(found) == {"care-plan", "questionnaire"}
    assert [e.title for e in found["care-plan"]] == ["Insuffisance cardiaque — suivi"]
    assert found["questionnaire"][0].url == reverse("care:my_care")
    page = signed_in_client(patient).get(reverse("records:my_timeline"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "Insuffisance cardiaque — suivi" in content
    assert "Refaire le pansement" not in content and "RCP oncologie" not in content
    assert "Plan en préparation" not in content


def test_the_clinic_timeline_page_shows_them_to_the_team(
    everything: dict[str, Any], record: Patient, clinician: User
) -> None:
    page = verified_client(clinician).get(
        reverse("records:timeline", args=[record.pk]), {"kind": "care-task"}
    )

    assert page.status_code == 200
    content = page.content.decode()
    assert "Refaire le pansement" in content and "Rappeler pour le contrôle" in content
    assert "Insuffisance cardiaque — suivi" not in content  # filtered to tasks


def test_an_outsider_is_denied_the_timeline_and_the_denial_is_audited(
    everything: dict[str, Any], record: Patient, outsider: User
) -> None:
    response = verified_client(outsider).get(reverse("records:timeline", args=[record.pk]))

    assert response.status_code == 404
    denial = last_audit()
    assert (denial.action, denial.actor_id) == ("denied", outsider.pk)
    assert denial.patient_id == str(record.pk)


def test_billing_staff_and_another_patient_see_nothing_of_care(
    everything: dict[str, Any],
    record: Patient,
    record2: Patient,
    billing_user: User,
    patient2: User,
) -> None:
    assert care_entries(billing_user, record) == []
    assert care_entries(patient2, record2) == []


def test_an_emergency_access_sees_the_team_entries(
    everything: dict[str, Any], record: Patient, outsider: User
) -> None:
    BreakGlassAccess.objects.create(
        user=outsider,
        patient=record,
        reason="Patient inconscient aux urgences.",
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )

    assert set(by_kind(care_entries(outsider, record))) == set(CARE_KINDS)


def test_the_timeline_filters_care_entries_by_date(
    everything: dict[str, Any], record: Patient, clinician: User
) -> None:
    today = timezone.localdate()
    Task.objects.filter(pk=everything["overdue"].pk).update(
        created_at=timezone.now() - dt.timedelta(days=10)
    )

    recent = care_entries(clinician, record, since=today - dt.timedelta(days=1))
    old = care_entries(clinician, record, until=today - dt.timedelta(days=5))

    assert "Rappeler pour le contrôle" not in {e.title for e in recent}
    assert [e.title for e in old] == ["Rappeler pour le contrôle"]


def test_a_timeline_page_costs_the_same_with_more_care_entries(
    everything: dict[str, Any],
    make_plan: Callable[..., CarePlan],
    make_task: Callable[..., Task],
    response: QuestionnaireResponse,
    record: Patient,
    patient: User,
    clinician: User,
) -> None:
    access = get_patient_for_user(clinician, record.pk)
    with CaptureQueriesContext(connection) as few:
        _page, first = timeline_page(access, kinds_wanted=CARE_KINDS)
    for n in range(4):
        make_plan(title=f"Plan {n}", status=CarePlan.Status.COMPLETED)
        make_task(title=f"Tâche {n}", assignee=None, assignee_role=Role.NURSE)
        QuestionnaireResponse.objects.create(
            patient=record,
            questionnaire=response.questionnaire,
            questionnaire_version=1,
            answers={"pain": n},
            author=patient,
        )
    with CaptureQueriesContext(connection) as more:
        _page, entries = timeline_page(access, kinds_wanted=CARE_KINDS)
    assert len(entries) == len(first) + 12
    assert len(more) <= len(few)
