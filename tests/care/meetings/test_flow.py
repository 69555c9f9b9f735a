"""The issue's scenario: a meeting flow to a signed, immutable decision archived as a PDF in
the record, whose follow-up actions became care-plan activities and tasks."""

from __future__ import annotations

import io

import pytest
from django.db import DatabaseError, connection, transaction
from pypdf import PdfReader

from apps.accounts.models import Role, User
from apps.care.models import (
    Activity,
    CarePlan,
    Meeting,
    MeetingCase,
    MeetingDecision,
    Origin,
    Task,
)
from apps.care.models.meetings import SignedDecisionError
from apps.care.services import CareError
from apps.care.services.meeting_decisions import (
    compute_signature,
    do_record_decision,
    do_sign_decision,
    verify_signature,
)
from apps.care.services.meetings import do_close_meeting, do_record_attendance, do_start_meeting
from apps.records.models import DocumentReference
from apps.records.services.documents import open_document

DECISION = "Lobectomie supérieure droite par vidéothoracoscopie; bilan fonctionnel respiratoire."


def _actions(nurse: User) -> list[dict[str, object]]:
    return [
        {
            "title": "Planifier la consultation chirurgicale",
            "kind": "visit",
            "assignee": None,
            "role": Role.COORDINATOR,
            "due_days": 7,
        },
        {
            "title": "Appeler la patiente pour expliquer la décision",
            "kind": "call",
            "assignee": nurse.pk,
            "role": "",
            "due_days": 2,
        },
    ]


def _signed(
    meeting: Meeting, case: MeetingCase, clinician: User, nurse: User, coordinator: User
) -> MeetingDecision:
    do_start_meeting(clinician, meeting)
    do_record_attendance(clinician, meeting, [clinician.pk, nurse.pk])
    do_record_decision(clinician, case, DECISION, _actions(nurse))
    return do_sign_decision(clinician, case)


def test_meeting_flow_to_a_signed_immutable_decision(
    meeting: Meeting, case: MeetingCase, clinician: User, nurse: User, coordinator: User
) -> None:
    decision = _signed(meeting, case, clinician, nurse, coordinator)

    decision.refresh_from_db()
    case.refresh_from_db()
    assert decision.is_signed and decision.signed_by == clinician
    assert case.status == MeetingCase.Status.DECIDED
    assert {a["id"] for a in decision.attendees} == {clinician.pk, nurse.pk}
    assert len(decision.signature) == 64 and verify_signature(decision)

    # The PDF is in the patient's record, is a PDF and carries the decision and the hash.
    document = DocumentReference.objects.get(pk=decision.document_id)
    assert document.patient_id == case.patient_id
    assert document.category == DocumentReference.Category.REPORT
    assert meeting.title in document.title
    content = open_document(document)
    assert content.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    flat = " ".join(text.split())
    assert "Lobectomie supérieure droite" in flat
    assert decision.signature[:32] in flat.replace(" ", "")

    # A later edit fails: through the service...
    with pytest.raises(CareError):
        do_record_decision(clinician, case, "Autre décision", [])
    with pytest.raises(CareError):
        do_sign_decision(clinician, case)
    # ...through the ORM...
    decision.text = "Réécrit"
    with pytest.raises(SignedDecisionError):
        decision.save()
    with pytest.raises(SignedDecisionError):
        decision.delete()
    # ...and through raw SQL, which the PostgreSQL trigger refuses.
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE care_meetingdecision SET signature = %s WHERE id = %s",
                ["0" * 64, decision.pk],
            )
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM care_meetingdecision WHERE id = %s", [decision.pk])
    stored = MeetingDecision.objects.get(pk=decision.pk)
    assert stored.text == DECISION and verify_signature(stored)

    # Closing the meeting leaves the signed decision as it was.
    do_close_meeting(clinician, meeting)
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.CLOSED and meeting.closed_at is not None


def test_the_signature_changes_with_the_content(
    meeting: Meeting, case: MeetingCase, clinician: User, nurse: User, coordinator: User
) -> None:
    decision = _signed(meeting, case, clinician, nurse, coordinator)
    decision.refresh_from_db()
    before = compute_signature(decision)
    decision.text += "."
    assert compute_signature(decision) != before
    assert not verify_signature(decision)


def test_actions_become_plan_activities_and_tasks(
    meeting: Meeting, case: MeetingCase, clinician: User, nurse: User, coordinator: User
) -> None:
    assert not CarePlan.objects.filter(patient=case.patient).exists()
    _signed(meeting, case, clinician, nurse, coordinator)

    # No open plan: one was created, titled after the meeting.
    plan = CarePlan.objects.get(patient=case.patient)
    assert plan.title == meeting.title and plan.is_open
    activities = list(Activity.objects.filter(plan=plan).order_by("order", "pk"))
    assert [a.title for a in activities] == [a["title"] for a in _actions(nurse)]
    assert all(a.origin == Origin.MEETING for a in activities)
    assert (
        activities[0].responsible_role == Role.COORDINATOR and activities[0].kind == "appointment"
    )
    assert activities[1].responsible == nurse
    tasks = list(Task.objects.filter(patient=case.patient).order_by("pk"))
    assert len(tasks) == 2
    assert all(t.origin == Origin.MEETING and t.plan == plan for t in tasks)
    assert {t.activity_id for t in tasks} == {a.pk for a in activities}
    call = next(t for t in tasks if t.kind == "call")
    assert call.assignee == nurse and call.due_at is not None
    visit = next(t for t in tasks if t.kind == "visit")
    assert visit.assignee is None and visit.assignee_role == Role.COORDINATOR


def test_actions_go_to_the_open_plan_when_there_is_one(
    meeting: Meeting,
    case: MeetingCase,
    clinician: User,
    nurse: User,
    coordinator: User,
    make_plan: object,
) -> None:
    plan = make_plan()  # type: ignore[operator]
    _signed(meeting, case, clinician, nurse, coordinator)
    assert CarePlan.objects.filter(patient=case.patient).count() == 1
    assert Activity.objects.filter(plan=plan, origin=Origin.MEETING).count() == 2


def test_a_failing_action_leaves_nothing_signed_nor_filed(
    meeting: Meeting, case: MeetingCase, clinician: User, nurse: User, coordinator: User
) -> None:
    from apps.records.services.care_team import current_members, do_remove_member

    do_start_meeting(clinician, meeting)
    do_record_attendance(clinician, meeting, [clinician.pk])
    do_record_decision(clinician, case, DECISION, _actions(nurse))
    # The nurse leaves the care team before signing: her action is no longer valid.
    membership = next(m for m in current_members(case.patient) if m.user_id == nurse.pk)
    do_remove_member(membership)
    with pytest.raises(CareError, match="care team"):
        do_sign_decision(clinician, case)
    decision = MeetingDecision.objects.get(case=case)
    assert not decision.is_signed and decision.document_id is None
    assert not DocumentReference.objects.filter(patient=case.patient).exists()
    assert not Task.objects.filter(patient=case.patient).exists()
