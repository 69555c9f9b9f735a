"""The signed decision of a multidisciplinary meeting as a PDF (WeasyPrint), archived in the
patient's record: meeting, date, patient, question, summary, decision, follow-up actions,
who was present, the signer and the signature hash.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from django.template.loader import render_to_string
from django.utils import timezone

from apps.accounts.models import Role, User

from ..models import MeetingDecision, TaskKind

ZONE = ZoneInfo("Europe/Zurich")


def _actions(decision: MeetingDecision) -> list[dict[str, Any]]:
    kinds = dict(TaskKind.choices)
    roles = dict(Role.choices)
    people = {
        person.pk: person.get_full_name()
        for person in User.objects.filter(
            pk__in=[a.get("assignee") for a in decision.actions if a.get("assignee")]
        )
    }
    return [
        {
            "title": action.get("title", ""),
            "kind": kinds.get(action.get("kind", ""), action.get("kind", "")),
            "who": people.get(action.get("assignee"), "")
            if action.get("assignee")
            else roles.get(action.get("role", ""), ""),
            "due_days": action.get("due_days"),
        }
        for action in decision.actions
    ]


def pdf_context(decision: MeetingDecision) -> dict[str, Any]:
    case = decision.case
    meeting = case.meeting
    signed_at = decision.signed_at or timezone.now()
    return {
        "decision": decision,
        "case": case,
        "meeting": meeting,
        "patient": case.patient,
        "organization": meeting.organization,
        "presenter": case.presented_by,
        "chair": meeting.chair,
        "signer": decision.signed_by,
        "signed_at": signed_at.astimezone(ZONE),
        "meeting_start": meeting.starts_at.astimezone(ZONE),
        "actions": _actions(decision),
        "attendees": decision.attendees,
    }


def decision_pdf(decision: MeetingDecision) -> bytes:
    """The printable signed decision (nothing is ever fetched while rendering)."""
    from weasyprint import HTML, URLFetcher

    html = render_to_string("care/meetings/decision_pdf.html", pdf_context(decision))
    fetcher = URLFetcher(allowed_protocols=set())
    return bytes(HTML(string=html, url_fetcher=fetcher).write_pdf())
