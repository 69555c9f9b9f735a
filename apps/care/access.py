"""Who may see what of care coordination; every read and every refusal is audited.

The patient side is the records app's rule (`apps.records.access`), so care plans, tasks and
proposals follow the record: a clinician taken off the care team loses them with it.

- Care plans: the patient (their own, read-only) and every clinician who may open the record
  (care team, or an emergency access, which is flagged in the audit trail).
- Tasks and decision-support proposals: the same clinicians; never the patient (they are the
  team's working notes), never billing staff or administrators.
- Meetings: their chair and participants only. Taking part in a meeting lets one read the
  cases on its agenda (summary, question, decision) — not the rest of those patients' records.
- Questionnaire responses and dose reminders: the patient, and clinicians with record access.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import PatientAccess, deny, get_item_for_user, patients_for_user

from .models import CarePlan, Meeting, MeetingCase, Proposal, Task

M = TypeVar("M", bound=models.Model)


def is_clinician(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role in CLINICAL_ROLES)


def get_plan_for_user(
    user: User,
    pk: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
    queryset: QuerySet[CarePlan] | None = None,
) -> tuple[CarePlan, PatientAccess]:
    """A care plan through its patient's record access (the patient included), or 404."""
    return get_item_for_user(
        user, CarePlan, pk, request=request, what="care plan", action=action, queryset=queryset
    )


def _staff_item(
    user: User,
    model: type[M],
    pk: Any,
    *,
    what: str,
    request: HttpRequest | None,
    action: str | None,
    queryset: QuerySet[M] | None,
) -> tuple[M, PatientAccess]:
    if not is_clinician(user):
        raise deny(
            user, request=request, what=what, object_type=model._meta.label_lower, object_id=pk
        )
    return get_item_for_user(
        user, model, pk, request=request, what=what, action=action, queryset=queryset
    )


def get_task_for_user(
    user: User,
    pk: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
    queryset: QuerySet[Task] | None = None,
) -> tuple[Task, PatientAccess]:
    """A task through its patient's record access, clinicians only, or 404."""
    return _staff_item(
        user, Task, pk, what="task", request=request, action=action, queryset=queryset
    )


def get_proposal_for_user(
    user: User,
    pk: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
    queryset: QuerySet[Proposal] | None = None,
) -> tuple[Proposal, PatientAccess]:
    """A decision-support proposal through its patient's record access, clinicians only."""
    return _staff_item(
        user,
        Proposal,
        pk,
        what="decision-support proposal",
        request=request,
        action=action,
        queryset=queryset,
    )


def tasks_for_user(user: User) -> QuerySet[Task]:
    """Every task of the patients whose care team `user` is on (what task lists filter)."""
    if not is_clinician(user):
        return Task.objects.none()
    return Task.objects.filter(patient__in=patients_for_user(user).values("pk"))


def my_tasks_filter(user: User) -> Q:
    """Tasks assigned to `user`, or unassigned and waiting for their profession."""
    return Q(assignee=user) | Q(assignee__isnull=True, assignee_role=user.role)


# ---------------------------------------------------------------------------------------------
# Meetings


def meetings_for_user(user: User) -> QuerySet[Meeting]:
    """The meetings `user` chairs or takes part in."""
    if not is_clinician(user):
        return Meeting.objects.none()
    return Meeting.objects.filter(Q(chair=user) | Q(participants__user=user)).distinct()


def may_see_meeting(user: User, meeting: Meeting) -> bool:
    if not is_clinician(user):
        return False
    return meeting.chair_id == user.pk or meeting.participants.filter(user=user).exists()


def get_meeting_for_user(
    user: User,
    pk: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
    queryset: QuerySet[Meeting] | None = None,
) -> Meeting:
    """A meeting its chair or a participant may open, or 404 (audited either way)."""
    base = queryset if queryset is not None else Meeting.objects.all()
    meeting = base.filter(pk=pk).first() if str(pk).isdigit() else None
    if meeting is None or not may_see_meeting(user, meeting):
        raise deny(user, request=request, what="meeting", object_type="care.meeting", object_id=pk)
    if action is not None:
        audit(action, request=request, actor=user, obj=meeting, detail={"what": "meeting"})
    return meeting


def get_case_for_user(
    user: User,
    pk: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
    queryset: QuerySet[MeetingCase] | None = None,
) -> MeetingCase:
    """A case on the agenda of a meeting `user` takes part in, or 404; audited on the patient."""
    base = queryset if queryset is not None else MeetingCase.objects.select_related("meeting")
    case = base.filter(pk=pk).first() if str(pk).isdigit() else None
    if case is None or not may_see_meeting(user, case.meeting):
        raise deny(
            user,
            request=request,
            what="meeting case",
            object_type="care.meetingcase",
            object_id=pk,
            patient_id=case.patient_id if case is not None else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=case,
            patient_id=str(case.patient_id),
            detail={"what": "meeting case", "via": "meeting", "meeting": case.meeting_id},
        )
    return case
