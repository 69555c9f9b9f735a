"""Case-management tasks: create, assign, start, complete with a report, cancel; notes passed
between professionals; the overdue check. Every change is audited and pushed live to the
patient's care team (`care.task` events on their user groups).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.realtime import send_event_on_commit, user_group
from apps.notifications.services import notify
from apps.records.access import PatientAccess
from apps.records.models import CareTeamMember

from ..models import Activity, CarePlan, Task
from ..models.common import Origin
from . import CareError

TITLE_MAX = 200


def task_url(task: Task) -> str:
    return reverse("care:task", args=[task.pk])


def team_user_ids(patient_id: int) -> list[int]:
    """The users on the patient's current care teams (who receive `care.task` events)."""
    members = CareTeamMember.objects.filter(
        care_team__patient_id=patient_id, care_team__active=True, ended_at__isnull=True
    )
    return sorted(set(members.values_list("user_id", flat=True)))


def task_event(task: Task, *, extra_user_ids: tuple[int, ...] = ()) -> None:
    """Tell the care team's open pages that `task` changed (after commit)."""
    ids = set(team_user_ids(task.patient_id)) | set(extra_user_ids)
    send_event_on_commit(
        "care.task",
        {
            "id": task.pk,
            "patient": task.patient_id,
            "status": task.status,
            "priority": task.priority,
            "assignee_id": task.assignee_id,
            "due_at": task.due_at.isoformat() if task.due_at else None,
            "overdue": task.is_overdue(),
            "url": task_url(task),
        },
        groups=[user_group(pk) for pk in sorted(ids)],
    )


def check_assignee(access: PatientAccess, assignee: User | None) -> None:
    """An assignee must be a clinician on the patient's current care team."""
    if assignee is None:
        return
    if assignee.role not in CLINICAL_ROLES or not assignee.is_active:
        raise CareError(_("Tasks go to clinicians of the care team."))
    if assignee.pk not in team_user_ids(access.patient.pk):
        raise CareError(_("%(name)s is not on this patient's care team.") % {"name": assignee})


def do_create_task(
    access: PatientAccess,
    *,
    kind: str,
    title: str,
    instructions: str = "",
    assignee: User | None = None,
    assignee_role: str = "",
    priority: str = Task.Priority.ROUTINE,
    due_at: dt.datetime | None = None,
    plan: CarePlan | None = None,
    activity: Activity | None = None,
    origin: str = Origin.MANUAL,
    request: Any = None,
) -> Task:
    """A task about `access.patient`, asked by `access.user` (a clinician with record access).

    Without an assignee it waits for anyone of `assignee_role` on the care team. The assignee
    is notified (kind "care.task", no clinical detail in the text).
    """
    user = access.user
    if user.role not in CLINICAL_ROLES or access.is_patient_self:
        raise CareError(_("Only clinicians create tasks."))
    if kind not in Task.Kind.values:
        raise CareError(_("Choose a kind of task."))
    if priority not in Task.Priority.values:
        raise CareError(_("Choose a priority."))
    title = " ".join((title or "").split())
    if not title:
        raise CareError(_("Give the task a title."))
    if len(title) > TITLE_MAX:
        raise CareError(_("The title is too long (200 characters at most)."))
    if assignee is None and assignee_role and assignee_role not in CLINICAL_ROLES:
        raise CareError(_("Choose a profession of the care team."))
    if plan is not None and plan.patient_id != access.patient.pk:
        raise CareError(_("This plan belongs to another patient."))
    if activity is not None and (plan is None or activity.plan_id != plan.pk):
        raise CareError(_("This activity belongs to another plan."))
    check_assignee(access, assignee)
    with transaction.atomic():
        task = Task.objects.create(
            patient=access.patient,
            plan=plan,
            activity=activity,
            kind=kind,
            title=title,
            instructions=instructions.strip(),
            priority=priority,
            assignee=assignee,
            assignee_role="" if assignee is not None else assignee_role,
            requester=user,
            due_at=due_at,
            origin=origin,
        )
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=task,
            patient_id=str(task.patient_id),
            detail=access.audit_detail(
                what="task", kind=kind, assignee=task.assignee_id, origin=origin
            ),
        )
        if assignee is not None and assignee.pk != user.pk:
            notify(
                assignee,
                "care.task",
                _("A task was assigned to you"),
                _("Open your task list to see it."),
                task_url(task),
                ref=f"care.task:{task.pk}",
            )
        task_event(task)
    return task
