"""The demo meetings: a signed tumour-board decision in Marie Dubois's record with its follow-up,
and next week's meeting with two cases prepared; seeding twice changes nothing."""

from __future__ import annotations

from typing import Any

from apps.accounts import demo as accounts_demo
from apps.care import demo_meetings
from apps.care.models import Meeting, MeetingCase, MeetingDecision, Origin, Task
from apps.care.services.meeting_decisions import verify_signature
from apps.records import demo as records_demo
from apps.records.models import DocumentReference


def _seed() -> dict[str, Any]:
    context: dict[str, Any] = {"logins": []}
    accounts_demo.seed(context)
    records_demo.seed(context)
    demo_meetings.seed(context)
    return context


def _counts() -> tuple[int, ...]:
    return (
        Meeting.objects.count(),
        MeetingCase.objects.count(),
        MeetingDecision.objects.count(),
        Task.objects.count(),
        DocumentReference.objects.count(),
    )


def test_the_demo_meetings(db: None) -> None:
    context = _seed()
    users = context["users"]
    past = Meeting.objects.get(title=demo_meetings.PAST_TITLE)
    assert past.status == Meeting.Status.CLOSED and past.chair == users["physician"]
    decision = MeetingDecision.objects.get(case__meeting=past)
    assert decision.patient.user == users["patient"]
    assert verify_signature(decision)
    document = DocumentReference.objects.get(pk=decision.document_id)
    assert document.patient_id == decision.patient_id and document.content_type == "application/pdf"
    tasks = Task.objects.filter(patient=decision.patient, origin=Origin.MEETING)
    assert tasks.count() == 2
    assert tasks.filter(assignee=users["coordinator"]).exists()

    upcoming = Meeting.objects.get(title=demo_meetings.UPCOMING_TITLE)
    assert upcoming.status == Meeting.Status.PLANNED
    cases = list(upcoming.cases.order_by("order"))
    assert len(cases) == 2 and all(case.summary for case in cases)

    before = _counts()
    demo_meetings.seed(context)
    assert _counts() == before
