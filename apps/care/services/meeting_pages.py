"""What the meeting page and its fragments show, in a fixed number of queries however many
participants and cases (one query per kind of row, one batch append to the audit chain).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.audit.services import record_many
from apps.core.net import get_client_ip, get_user_agent
from apps.records.access import patients_for_user
from apps.records.models import CareTeamMember

from ..forms_meetings import CaseForm, kind_choices, role_choices
from ..models import Meeting, MeetingCase, MeetingDecision, MeetingParticipant
from .meeting_decisions import DECIDING
from .meetings import RUNNING, colleagues

BLANK_ACTION_ROWS = 2


def audit_cases(request: HttpRequest, user: User, cases: list[MeetingCase]) -> None:
    """One READ row per case shown (its patient's access log lists it), in one append."""
    now = timezone.now()
    ip, agent = get_client_ip(request), get_user_agent(request)[:300]
    record_many(
        [
            AuditEvent(
                occurred_at=now,
                actor_id=user.pk,
                actor_label=user.email,
                actor_role=user.role,
                action=Action.READ,
                object_type="care.meetingcase",
                object_id=str(case.pk),
                patient_id=str(case.patient_id),
                ip=ip,
                user_agent=agent,
                detail={"what": "meeting case", "via": "meeting", "meeting": case.meeting_id},
            )
            for case in cases
        ]
    )


def _teams(patient_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """Each patient's current care team, as (user id, "name — profession") choices."""
    rows = (
        CareTeamMember.objects.filter(
            care_team__patient_id__in=patient_ids,
            care_team__active=True,
            ended_at__isnull=True,
            user__is_active=True,
        )
        .select_related("user", "care_team")
        .order_by("user__last_name", "user__first_name", "user_id")
    )
    teams: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        people = teams.setdefault(row.care_team.patient_id, [])
        if all(pk != row.user_id for pk, _label in people):
            people.append((row.user_id, f"{row.user.get_full_name()} — {row.user.role_label}"))
    return teams


def _decision(case: MeetingCase) -> MeetingDecision | None:
    try:
        return case.decision
    except MeetingDecision.DoesNotExist:
        return None


def _case_rows(
    user: User,
    meeting: Meeting,
    cases: list[MeetingCase],
    *,
    summary_drafts: dict[int, Any] | None = None,
    decision_drafts: dict[int, Any] | None = None,
) -> list[dict[str, Any]]:
    ids = [case.patient_id for case in cases]
    teams = _teams(ids)
    readable = set(patients_for_user(user).filter(pk__in=ids).values_list("pk", flat=True))
    is_chair = meeting.chair_id == user.pk
    rows = []
    for position, case in enumerate(cases):
        decision = _decision(case)
        signed = decision is not None and decision.is_signed
        draft = (decision_drafts or {}).get(case.pk)
        actions = list(draft["actions"] if draft else (decision.actions if decision else []))
        deciding = meeting.status in DECIDING and not signed
        rows.append(
            {
                "case": case,
                "decision": decision,
                "signed": signed,
                "first": position == 0,
                "last": position == len(cases) - 1,
                "can_move": is_chair and meeting.status in RUNNING and len(cases) > 1,
                "can_edit_summary": case.presented_by_id == user.pk
                and meeting.status == Meeting.Status.PLANNED,
                "summary_draft": (summary_drafts or {}).get(case.pk),
                "can_decide": deciding and user.pk in (meeting.chair_id, case.presented_by_id),
                "can_sign": is_chair and deciding and decision is not None,
                "decision_text": draft["text"] if draft else (decision.text if decision else ""),
                "action_rows": actions + [{} for _n in range(BLANK_ACTION_ROWS)],
                "team": teams.get(case.patient_id, []),
                "pdf_url": reverse("records:document_download", args=[decision.document_id])
                if signed
                and decision is not None
                and decision.document_id
                and case.patient_id in readable
                else "",
                "chart_url": reverse("records:chart", args=[case.patient_id])
                if case.patient_id in readable
                else "",
            }
        )
    return rows


def _cases(meeting: Meeting) -> list[MeetingCase]:
    return list(
        MeetingCase.objects.filter(meeting=meeting)
        .select_related("patient", "presented_by", "decision", "decision__signed_by")
        .order_by("order", "pk")
    )


def meeting_context(
    request: HttpRequest,
    meeting: Meeting,
    *,
    audit_cases_shown: bool = True,
    case_draft: dict[str, Any] | None = None,
    summary_drafts: dict[int, Any] | None = None,
    decision_drafts: dict[int, Any] | None = None,
) -> dict[str, Any]:
    user: User = request.user  # type: ignore[assignment]
    is_chair = meeting.chair_id == user.pk
    running = meeting.status in RUNNING
    seats = list(
        MeetingParticipant.objects.filter(meeting=meeting)
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "user_id")
    )
    cases = _cases(meeting)
    if audit_cases_shown:
        audit_cases(request, user, cases)
    invitable: list[User] = []
    if is_chair and running:
        invitable = list(colleagues(user).exclude(pk__in=[seat.user_id for seat in seats]))
    case_form = None
    if running:
        patients = patients_for_user(user).order_by("family_name", "given_names", "pk")
        case_form = CaseForm(initial=case_draft or None, patients=patients)
    return {
        "meeting": meeting,
        "is_chair": is_chair,
        "running": running,
        "seats": seats,
        "present_count": sum(1 for seat in seats if seat.attended),
        "invitable": invitable,
        "case_form": case_form,
        "rows": _case_rows(
            user,
            meeting,
            cases,
            summary_drafts=summary_drafts,
            decision_drafts=decision_drafts,
        ),
        "can_edit": is_chair and meeting.status == Meeting.Status.PLANNED,
        "can_start": is_chair and meeting.status == Meeting.Status.PLANNED,
        "can_close": is_chair and meeting.status == Meeting.Status.IN_PROGRESS,
        "can_mark_attendance": is_chair and meeting.status == Meeting.Status.IN_PROGRESS,
        "in_progress": meeting.status == Meeting.Status.IN_PROGRESS,
        "kinds": kind_choices(),
        "roles": role_choices(),
        "live_strings": {
            "changed_elsewhere": _(
                "Someone changed this meeting. Save what you are writing, then reload the page."
            ),
            "case_updated": _("A case of the agenda was updated."),
            "agenda_updated": _("The meeting was updated."),
        },
    }


def case_context(request: HttpRequest, case: MeetingCase) -> dict[str, Any]:
    """One case's fragment (the case was fetched and audited by `get_case_for_user`)."""
    user: User = request.user  # type: ignore[assignment]
    fresh = (
        MeetingCase.objects.filter(pk=case.pk)
        .select_related("patient", "presented_by", "decision", "decision__signed_by")
        .get()
    )
    (row,) = _case_rows(user, case.meeting, [fresh])
    order = list(
        MeetingCase.objects.filter(meeting_id=case.meeting_id)
        .order_by("order", "pk")
        .values_list("pk", flat=True)
    )
    row["first"], row["last"] = order[0] == case.pk, order[-1] == case.pk
    is_chair = case.meeting.chair_id == user.pk
    row["can_move"] = is_chair and case.meeting.status in RUNNING and len(order) > 1
    return {
        "meeting": case.meeting,
        "row": row,
        "is_chair": is_chair,
        "kinds": kind_choices(),
        "roles": role_choices(),
    }
