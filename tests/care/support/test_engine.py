"""The engine: a finding is proposed once (even dismissed), open proposals whose finding is
gone become outdated, a faulty rule does not stop the others, important proposals reach the
care-team lead without clinical text, events reach the team, and queries stay bounded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Proposal, Rule
from apps.care.services.support.engine import evaluate_all, evaluate_patient
from apps.care.services.support.proposals import do_dismiss_proposal
from apps.care.services.support.rules import do_save_rule_version, rule_data
from apps.notifications.models import Notification
from apps.records.models import MedicationStatement, Observation, Patient

from ..conftest import access_as
from .conftest import NOW, SYSTOLIC, TODAY, day

BP = "bp-above-target-on-treatment"
HIGH_WEEK = [[142, 148], [145, 150], [140, 146], [147, 149], [143, 141], [150, 144], [146, 148]]


@pytest.fixture
def high_bp(
    rules: dict[str, Rule],
    record: Patient,
    take: Callable[..., Any],
    daily_readings: Callable[..., Any],
) -> MedicationStatement:
    """`record` on lisinopril with a week of high blood pressure: the BP rule fires."""
    statement = take(record, "Lisinopril 10 mg cp", dosage="10 mg le matin")
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    return statement


def test_a_second_run_proposes_nothing_new(high_bp: Any, record: Patient) -> None:
    assert [p.rule_code for p in evaluate_patient(record, now=NOW)] == [BP]
    assert evaluate_patient(record, now=NOW) == []
    assert evaluate_patient(record, now=NOW + dt.timedelta(hours=2)) == []
    assert Proposal.objects.filter(patient=record).count() == 1
    created = AuditEvent.objects.filter(action=Action.CREATE, object_type="care.proposal")
    assert created.count() == 1 and created[0].patient_id == str(record.pk)


def test_a_dismissed_finding_is_not_proposed_again(
    high_bp: Any, record: Patient, clinician: User
) -> None:
    proposal = evaluate_patient(record, now=NOW)[0]
    do_dismiss_proposal(access_as(clinician, record), proposal, "Mesures au cabinet normales.")
    assert evaluate_patient(record, now=NOW + dt.timedelta(hours=1)) == []
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.DISMISSED


def test_a_treatment_change_outdates_the_open_proposal(
    high_bp: MedicationStatement, record: Patient, take: Callable[..., Any]
) -> None:
    proposal = evaluate_patient(record, now=NOW)[0]
    # the physician adds amlodipine today: the finding is gone
    take(record, "Amlodipine 5 mg cp", started_on=TODAY)
    assert evaluate_patient(record, now=NOW + dt.timedelta(hours=1)) == []
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.OUTDATED
    assert proposal.decided_at == NOW + dt.timedelta(hours=1) and proposal.decided_by is None
    assert AuditEvent.objects.filter(
        action=Action.UPDATE, object_type="care.proposal", object_id=str(proposal.pk)
    ).exists()


def test_decided_proposals_are_never_outdated(
    high_bp: Any, record: Patient, clinician: User, take: Callable[..., Any]
) -> None:
    proposal = evaluate_patient(record, now=NOW)[0]
    do_dismiss_proposal(access_as(clinician, record), proposal, "Déjà discuté.")
    take(record, "Amlodipine 5 mg cp", started_on=TODAY)
    evaluate_patient(record, now=NOW)
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.DISMISSED


def test_a_withdrawn_rule_outdates_its_open_proposals(high_bp: Any, record: Patient) -> None:
    proposal = evaluate_patient(record, now=NOW)[0]
    Rule.objects.filter(code=BP).update(active=False)
    evaluate_patient(record, now=NOW)
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.OUTDATED


def test_a_new_rule_version_does_not_repeat_a_finding(
    high_bp: Any, record: Patient, admin_user: User
) -> None:
    first = evaluate_patient(record, now=NOW)[0]
    data = rule_data(Rule.objects.get(code=BP, active=True))
    data["title"] = "Revoir le traitement de l'hypertension"
    v2 = do_save_rule_version(data, admin_user)
    assert evaluate_patient(record, now=NOW) == []
    first.refresh_from_db()
    assert first.status == Proposal.Status.OPEN and first.rule.version == 1 and v2.version == 2


def test_a_faulty_rule_does_not_stop_the_others(
    high_bp: Any, record: Patient, caplog: pytest.LogCaptureFixture
) -> None:
    # written around the validation (as a broken migration or a bad import would)
    Rule.objects.create(
        code="broken", kind=Rule.Kind.SUSTAINED, title="Cassée", rationale="-", parameters={}
    )
    made = evaluate_patient(record, now=NOW)
    assert [p.rule_code for p in made] == [BP]
    assert "decision-support rule broken v1 failed" in caplog.text


def test_an_important_proposal_reaches_the_lead_without_clinical_text(
    rules: dict[str, Rule],
    record: Patient,
    clinician: User,
    nurse: User,
    take: Callable[..., Any],
    allergic: Callable[..., Any],
) -> None:
    allergic(record, "764146007")
    take(record, "Amoxicilline 1000 mg cp")
    [proposal] = evaluate_patient(record, now=NOW)
    assert proposal.rule.severity == Rule.Severity.CRITICAL
    [notice] = Notification.objects.filter(kind="care.support")
    assert notice.user == clinician  # the lead of the care team, not the nurse
    text = f"{notice.title} {notice.body}".lower()
    assert "amoxicilline" not in text and "pénicilline" not in text and "allerg" not in text
    assert notice.link.endswith(f"#proposal-{proposal.pk}")
    assert not Notification.objects.filter(user=nurse, kind="care.support").exists()


def test_a_warning_notifies_nobody(high_bp: Any, record: Patient) -> None:
    evaluate_patient(record, now=NOW)
    assert not Notification.objects.filter(kind="care.support").exists()


def test_new_and_outdated_proposals_are_pushed_to_the_team(
    high_bp: Any,
    record: Patient,
    nurse: User,
    take: Callable[..., Any],
    listen: Callable[[User], Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    page = listen(nurse)
    with django_capture_on_commit_callbacks(execute=True):
        proposal = evaluate_patient(record, now=NOW)[0]
    with django_capture_on_commit_callbacks(execute=True):
        take(record, "Amlodipine 5 mg cp", started_on=TODAY)
        evaluate_patient(record, now=NOW)
    events = [e for e in page.receive(2) if e["type"] == "care.proposal"]
    url = f"/clinic/patients/{record.pk}/decision-support/#proposal-{proposal.pk}"
    assert events == [
        {
            "type": "care.proposal",
            "id": proposal.pk,
            "patient": record.pk,
            "status": "open",
            "url": url,
        },
        {
            "type": "care.proposal",
            "id": proposal.pk,
            "patient": record.pk,
            "status": "outdated",
            "url": url,
        },
    ]


def count_queries(record: Patient) -> int:
    Proposal.objects.filter(patient=record).delete()
    with CaptureQueriesContext(connection) as queries:
        made = evaluate_patient(record, now=NOW)
    assert made
    return len(queries)


def test_queries_do_not_grow_with_the_data(
    high_bp: Any,
    record: Patient,
    observe: Callable[..., Any],
    take: Callable[..., Any],
) -> None:
    take(record, "Atorvastatine 20 mg cp")
    few = count_queries(record)
    # four times as many readings, a month of history and more medications
    for offset in range(-30, 0):
        for hour in (6, 9, 13, 21):
            observe(record, SYSTOLIC, 149, day(offset, hour))
    take(record, "Oméprazole 20 mg caps")
    take(record, "Sertraline 50 mg cp")
    assert count_queries(record) == few


def test_the_scheduled_run_evaluates_patients_with_recent_data(
    rules: dict[str, Rule],
    record: Patient,
    record2: Patient,
    take: Callable[..., Any],
    daily_readings: Callable[..., Any],
) -> None:
    # both charts would fire; only record's readings arrived lately
    for chart in (record, record2):
        take(chart, "Lisinopril 10 mg cp", recorded_at=NOW - dt.timedelta(days=300))
        daily_readings(chart, SYSTOLIC, HIGH_WEEK)
    # (the charts' other rows were written long before)
    for model in (Observation, MedicationStatement):
        model.objects.update(updated_at=NOW - dt.timedelta(days=300))
    Observation.objects.filter(patient=record2).update(updated_at=NOW - dt.timedelta(days=3))
    Observation.objects.filter(patient=record).update(updated_at=NOW - dt.timedelta(hours=3))
    assert evaluate_all(now=NOW) == 1
    assert Proposal.objects.filter(patient=record).count() == 1
    assert not Proposal.objects.filter(patient=record2).exists()
    # a second run: record2 still has nothing new, record's proposal is not repeated
    assert evaluate_all(now=NOW) == 0


def test_the_scheduled_run_follows_drug_starts_without_new_data(
    rules: dict[str, Rule], record: Patient, take: Callable[..., Any]
) -> None:
    take(
        record,
        "Ramipril 5 mg cp",
        started_on=TODAY - dt.timedelta(days=9),
        recorded_at=NOW - dt.timedelta(days=9),
    )
    MedicationStatement.objects.update(updated_at=NOW - dt.timedelta(days=9))
    assert evaluate_all(now=NOW) == 1
    assert Proposal.objects.get(patient=record).rule_code == "potassium-creatinine-after-raas"


def test_the_celery_task_runs_the_engine(
    rules: dict[str, Rule], record: Patient, take: Callable[..., Any]
) -> None:
    from django.utils import timezone

    from apps.care.tasks import evaluate_rules

    # the beat entry runs at the real time: a drug started ten real days ago
    take(record, "Ramipril 5 mg cp", started_on=timezone.localdate() - dt.timedelta(days=10))
    assert evaluate_rules.delay().get() == 1  # eager in tests
    assert Proposal.objects.get(patient=record).rule_code == "potassium-creatinine-after-raas"
