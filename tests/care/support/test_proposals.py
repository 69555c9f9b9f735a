"""Deciding on proposals: accepting creates the task (or, for physicians, the draft
prescription) and records who and when; dismissing needs a reason; a proposal is decided once;
the reason is rendered from the evidence in each language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import translation

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Proposal, Rule, Task
from apps.care.models.common import Origin
from apps.care.services import CareError
from apps.care.services.reminders import reminder_lines
from apps.care.services.support.engine import evaluate_patient
from apps.care.services.support.proposals import (
    do_accept_proposal,
    do_dismiss_proposal,
    render_reason,
)
from apps.records.models import (
    MedicationRequest,
    MedicationStatement,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.services.prescription_drafts import (
    do_change_draft_line,
    do_sign_draft,
    review_draft,
)

from ..conftest import access_as
from .conftest import CREATININE, NOW, POTASSIUM, SYSTOLIC, TODAY, day

HIGH_WEEK = [[142, 148], [145, 150], [140, 146], [147, 149], [143, 141], [150, 144], [146, 148]]


@pytest.fixture
def lab_proposal(rules: dict[str, Rule], record: Patient, take: Callable[..., Any]) -> Proposal:
    """Ramipril started 10 days ago, no potassium or creatinine since: a task proposal."""
    take(record, "Ramipril 5 mg cp", started_on=TODAY - dt.timedelta(days=10))
    [proposal] = evaluate_patient(record, now=NOW)
    return proposal


@pytest.fixture
def bp_proposal(
    rules: dict[str, Rule],
    record: Patient,
    prescribe: Callable[..., Any],
    take: Callable[..., Any],
    daily_readings: Callable[..., Any],
) -> Proposal:
    """A week of high BP on amlodipine (prescribed) and lisinopril (entered by hand)."""
    prescribe(record, [("Amlodipine 5 mg cp", "5 mg", 1)], signed=day(-60), duration_days=180)
    take(record, "Lisinopril 10 mg cp", dosage="10 mg le matin")
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    [proposal] = evaluate_patient(record, now=NOW)
    assert proposal.rule.action == Rule.Action.PRESCRIPTION
    return proposal


def test_accepting_creates_the_task_with_the_reason_and_the_data(
    lab_proposal: Proposal, record: Patient, clinician: User, nurse: User
) -> None:
    with translation.override("fr"):  # the task is written in the acceptor's language
        decided = do_accept_proposal(access_as(clinician, record), lab_proposal, assignee=nurse)
    assert decided.status == Proposal.Status.ACCEPTED
    assert decided.decided_by == clinician and decided.decided_at is not None
    task = decided.task
    assert task is not None and task.patient == record
    assert task.kind == Task.Kind.EXAM and task.origin == Origin.DECISION_SUPPORT
    assert task.assignee == nurse and task.requester == clinician
    assert task.title == "Contrôler potassium et créatinine après l'introduction"
    assert "Ramipril 5 mg cp commencé le" in task.instructions
    assert "potassium-creatinine-after-raas" in task.instructions
    assert AuditEvent.objects.filter(
        action=Action.UPDATE, object_type="care.proposal", object_id=str(decided.pk)
    ).exists()


def test_without_an_assignee_the_task_is_the_acceptors(
    lab_proposal: Proposal, record: Patient, nurse: User
) -> None:
    decided = do_accept_proposal(access_as(nurse, record), lab_proposal)
    assert decided.task is not None and decided.task.assignee == nurse


def test_the_assignee_must_be_on_the_care_team(
    lab_proposal: Proposal, record: Patient, clinician: User, outsider: User
) -> None:
    with pytest.raises(CareError):
        do_accept_proposal(access_as(clinician, record), lab_proposal, assignee=outsider)
    lab_proposal.refresh_from_db()
    assert lab_proposal.status == Proposal.Status.OPEN
    assert not Task.objects.exists()


def test_a_physician_accepts_a_dosage_review_as_a_draft(
    bp_proposal: Proposal, record: Patient, clinician: User
) -> None:
    decided = do_accept_proposal(access_as(clinician, record), bp_proposal)
    draft = decided.prescription
    assert draft is not None and draft.status == Prescription.Status.DRAFT
    assert draft.prescriber == clinician and decided.task is None
    lines = list(MedicationRequest.objects.filter(prescription=draft).order_by("pk"))
    assert [(line.medication.name, line.dose, line.frequency) for line in lines] == [
        ("Amlodipine 5 mg cp", "5 mg", 1),
        ("Lisinopril 10 mg cp", "10 mg le matin", 1),
    ]
    assert review_draft(draft).problem == ""
    assert AuditEvent.objects.filter(
        action=Action.CREATE, object_type="records.prescription", object_id=str(draft.pk)
    ).exists()


def test_the_signed_draft_takes_over_from_the_medications_it_copied(
    bp_proposal: Proposal, record: Patient, clinician: User, practitioner: Practitioner
) -> None:
    # given the draft of a dosage review, amlodipine raised to 10 mg
    access = access_as(clinician, record)
    draft = do_accept_proposal(access, bp_proposal).prescription
    assert draft is not None
    old_rx = Prescription.objects.get(status=Prescription.Status.ACTIVE)
    copied = {
        line.medication.name: line.replaces
        for line in draft.items.select_related("medication", "replaces")
    }
    assert {name: (s.medication.name if s else None) for name, s in copied.items()} == {
        "Amlodipine 5 mg cp": "Amlodipine 5 mg cp",
        "Lisinopril 10 mg cp": "Lisinopril 10 mg cp",
    }
    amlodipine = draft.items.get(medication__name="Amlodipine 5 mg cp")
    do_change_draft_line(draft, access, clinician, amlodipine.pk, {"dose": "10 mg"})
    old_lines = set(reminder_lines().filter(prescription=old_rx).values_list("pk", flat=True))
    assert old_lines

    # when the physician signs it
    signed = do_sign_draft(draft, access, clinician)

    # then the copied medications are ended and the new lines are the current ones
    ended = MedicationStatement.objects.filter(pk__in=[s.pk for s in copied.values() if s])
    assert {s.status for s in ended} == {MedicationStatement.Status.COMPLETED}
    current = MedicationStatement.objects.filter(patient=record, status="active")
    assert {(s.medication.name, s.prescription_id) for s in current} == {
        ("Amlodipine 5 mg cp", signed.pk),
        ("Lisinopril 10 mg cp", signed.pk),
    }
    # the old prescription, none of whose medications is current now, is completed
    old_rx.refresh_from_db()
    assert old_rx.status == Prescription.Status.COMPLETED
    # reminders follow the new lines only
    lines = set(reminder_lines().filter(patient=record).values_list("pk", flat=True))
    assert lines == set(signed.items.values_list("pk", flat=True))
    assert not lines & old_lines
    sign_event = AuditEvent.objects.get(
        action=Action.SIGN, object_type="records.prescription", object_id=str(signed.pk)
    )
    assert sorted(sign_event.detail["replaced"]) == sorted(s.pk for s in ended)


def test_a_nurse_cannot_accept_a_prescription_change(
    bp_proposal: Proposal, record: Patient, nurse: User
) -> None:
    with pytest.raises(CareError, match="physician"):
        do_accept_proposal(access_as(nurse, record), bp_proposal)
    assert not Prescription.objects.filter(status="draft").exists()


def test_dismissing_needs_a_reason(lab_proposal: Proposal, record: Patient, nurse: User) -> None:
    access = access_as(nurse, record)
    for blank in ("", "   "):
        with pytest.raises(CareError, match="reason"):
            do_dismiss_proposal(access, lab_proposal, blank)
    with pytest.raises(CareError, match="too long"):
        do_dismiss_proposal(access, lab_proposal, "x" * 301)
    decided = do_dismiss_proposal(access, lab_proposal, "  Bilan  prévu demain  ")
    assert decided.status == Proposal.Status.DISMISSED
    assert decided.dismiss_reason == "Bilan prévu demain" and decided.decided_by == nurse


@pytest.mark.parametrize("first", ["accept", "dismiss"])
def test_a_proposal_is_decided_once(
    lab_proposal: Proposal, record: Patient, clinician: User, nurse: User, first: str
) -> None:
    access = access_as(clinician, record)
    if first == "accept":
        do_accept_proposal(access, lab_proposal)
    else:
        do_dismiss_proposal(access, lab_proposal, "Non pertinent")
    stale = Proposal.objects.get(pk=lab_proposal.pk)
    with pytest.raises(CareError, match="already decided"):
        do_accept_proposal(access_as(nurse, record), lab_proposal)
    with pytest.raises(CareError, match="already decided"):
        do_dismiss_proposal(access_as(nurse, record), lab_proposal, "Autre raison")
    lab_proposal.refresh_from_db()
    assert lab_proposal.decided_by == clinician and lab_proposal.decided_at == stale.decided_at
    assert Task.objects.count() == (1 if first == "accept" else 0)


def test_an_outdated_proposal_cannot_be_accepted(
    lab_proposal: Proposal, record: Patient, clinician: User, observe: Callable[..., Any]
) -> None:
    observe(record, POTASSIUM, 4.4, day(-1), category="laboratory")
    observe(record, CREATININE, 90, day(-1), category="laboratory")
    evaluate_patient(record, now=NOW)
    with pytest.raises(CareError, match="already decided"):
        do_accept_proposal(access_as(clinician, record), lab_proposal)


def test_the_patient_cannot_decide(lab_proposal: Proposal, record: Patient, patient: User) -> None:
    with pytest.raises(CareError, match="clinicians"):
        do_dismiss_proposal(access_as(patient, record), lab_proposal, "Je ne veux pas")


def test_a_proposal_of_another_patient_is_refused(
    lab_proposal: Proposal, record2: Patient, clinician: User
) -> None:
    with pytest.raises(CareError, match="another patient"):
        do_dismiss_proposal(access_as(clinician, record2), lab_proposal, "Erreur")


def test_the_reason_is_rendered_in_each_language(lab_proposal: Proposal) -> None:
    french = render_reason(lab_proposal, "fr")
    english = render_reason(lab_proposal, "en")
    german = render_reason(lab_proposal, "de")
    assert french.startswith("Ramipril 5 mg cp commencé le 08/03/2026 (il y a 10 jours)")
    assert "Potassium" in english and "started on 03/08/2026 (10 days ago)" in english
    assert "begonnen am 08.03.2026 (vor 10 Tagen)" in german
    assert "{" not in french + english + german


def test_decisions_are_pushed_to_the_team(
    lab_proposal: Proposal,
    record: Patient,
    clinician: User,
    nurse: User,
    listen: Callable[[User], Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    page = listen(clinician)
    with django_capture_on_commit_callbacks(execute=True):
        do_accept_proposal(access_as(nurse, record), lab_proposal)
    events = [e for e in page.receive(1) if e["type"] == "care.proposal"]
    assert [(e["id"], e["status"]) for e in events] == [(lab_proposal.pk, "accepted")]
