"""Case-management tasks: create, assign, start, complete with a report, cancel; notes passed
between professionals; the overdue check. Every change is audited and pushed live to the
patient's care team (`care.task` events on their user groups).

State changes lock the task row (`select_for_update`) and check its state again under the lock:
of two nurses claiming the same task, one wins and the other gets a CareError naming the winner.
Who may do what:
- anyone of the care team (a clinician with record access) claims an unassigned task, starts
  it, writes notes;
- handing an assigned task to someone else, putting it on hold or cancelling it is for its
  requester, its assignee or a care coordinator;
- completing it is for its assignee or its requester (anyone of the team when unassigned).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.realtime import send_event_on_commit, user_group
from apps.notifications.services import notify
from apps.records.access import PatientAccess
from apps.records.models import CareTeamMember

from ..models import Activity, CarePlan, Task, TaskNote
from ..models.common import Origin
from ..models.tasks import OPEN_TASK_STATUSES
from . import CareError

TITLE_MAX = 200
INSTRUCTIONS_MAX = 5000
REPORT_MAX = 10_000
NOTE_MAX = 5000
REASON_MAX = 300
# Kinds whose outcome the requester needs in writing: the report may not be left empty.
REPORT_REQUIRED = frozenset(
    {Task.Kind.REVIEW_RESULTS, Task.Kind.MEDICATION_REVIEW, Task.Kind.HANDOVER}
)
CLOSED_TASK_STATUSES = (Task.Status.COMPLETED, Task.Status.CANCELLED)
# Most urgent first (FHIR priorities in decreasing urgency).
PRIORITY_RANK = {
    Task.Priority.STAT: 0,
    Task.Priority.ASAP: 1,
    Task.Priority.URGENT: 2,
    Task.Priority.ROUTINE: 3,
}
OVERDUE_BATCH = 200


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
    fhir_id: Any = None,
) -> Task:
    """A task about `access.patient`, asked by `access.user` (a clinician with record access).

    Without an assignee it waits for anyone of `assignee_role` on the care team. The assignee
    is notified (kind "care.task", no clinical detail in the text). `fhir_id` is an id chosen
    by a FHIR client (an update that creates), else a new one.
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
    if len(instructions or "") > INSTRUCTIONS_MAX:
        raise CareError(_("The instructions are too long (5000 characters at most)."))
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
            instructions=(instructions or "").strip(),
            priority=priority,
            assignee=assignee,
            assignee_role="" if assignee is not None else assignee_role,
            requester=user,
            due_at=due_at,
            origin=origin,
            **({"fhir_id": fhir_id} if fhir_id else {}),
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
        elif assignee is None and task.priority != Task.Priority.ROUTINE:
            # An urgent task for a profession must not wait for someone to open the list.
            for member in _overdue_recipients(task):
                if member.pk != user.pk:
                    notify(
                        member,
                        "care.task",
                        _("An urgent task is waiting for your profession"),
                        _("Open your task list to see it."),
                        task_url(task),
                        ref=f"care.task:{task.pk}",
                    )
        task_event(task)
    return task


# ---------------------------------------------------------------------------------------------
# Who and what


def team_clinicians(patient_id: int) -> list[User]:
    """The active clinicians on the patient's current care teams, by name (assignee choices)."""
    users = User.objects.filter(
        pk__in=team_user_ids(patient_id), role__in=CLINICAL_ROLES, is_active=True
    )
    return list(users.order_by("last_name", "first_name", "pk"))


def profession_label(role: str) -> str:
    return str(Role(role).label) if role in Role.values else role


def _check_worker(access: PatientAccess, task: Task) -> None:
    """Tasks are the team's: clinicians with clinical access to the task's patient."""
    user = access.user
    if user.role not in CLINICAL_ROLES or access.is_patient_self or not access.clinical:
        raise CareError(_("Only clinicians of the care team work on tasks."))
    if task.patient_id != access.patient.pk:
        raise CareError(_("This task belongs to another patient."))


def _check_open(task: Task) -> None:
    if task.status == Task.Status.COMPLETED:
        raise CareError(_("This task is already done."))
    if task.status == Task.Status.CANCELLED:
        raise CareError(_("This task was cancelled."))


def _name(user: User | None) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.email


def may_manage(user: User, task: Task) -> bool:
    """Requester, assignee and care coordinators may hand over, hold or cancel a task."""
    return user.pk in (task.requester_id, task.assignee_id) or user.role == Role.COORDINATOR


def _locked(task: Task) -> Task:
    """The task's row, locked until the transaction ends, as it is now in the database."""
    return Task.objects.select_for_update().get(pk=task.pk)


def _copy_back(target: Task, source: Task) -> Task:
    """Give the caller's instance the saved state (callers keep using the object they had)."""
    for field in Task._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    return target


def _audit(access: PatientAccess, task: Task, change: str, request: Any, **extra: Any) -> None:
    audit(
        Action.UPDATE,
        request=request,
        actor=access.user,
        obj=task,
        patient_id=str(task.patient_id),
        detail=access.audit_detail(what="task", change=change, **extra),
    )


def _notify(
    users: list[User | None], actor: User | None, task: Task, title: str, body: str
) -> None:
    """Tell the users (once each, never the actor); no clinical words, a link instead."""
    seen: set[int] = set()
    for user in users:
        if user is None or not user.is_active or user.pk in seen:
            continue
        if actor is not None and user.pk == actor.pk:
            continue
        seen.add(user.pk)
        notify(user, "care.task", title, body, task_url(task), ref=f"care.task:{task.pk}")


def _parties(task: Task) -> list[User | None]:
    """Who hears of a change: the requester and the assignee (`_notify` skips the actor)."""
    return [task.requester, task.assignee]


# ---------------------------------------------------------------------------------------------
# Changes


def do_assign_task(
    access: PatientAccess,
    task: Task,
    assignee: User | None,
    assignee_role: str = "",
    *,
    request: Any = None,
) -> Task:
    """Give the task to `assignee` (to oneself: a claim), or to anyone of `assignee_role`.

    A claim only takes a task nobody has; handing it to someone else is for the requester, the
    assignee or a coordinator. An overdue task handed over is flagged again for its new owner.
    """
    user = access.user
    _check_worker(access, task)
    if assignee is None and assignee_role not in CLINICAL_ROLES:
        raise CareError(_("Choose a colleague of the care team or a profession."))
    check_assignee(access, assignee)
    with transaction.atomic():
        current = _locked(task)
        _check_open(current)
        claim = assignee is not None and assignee.pk == user.pk
        if claim and current.assignee_id == user.pk:
            raise CareError(_("This task is already yours."))
        if claim and current.assignee_id is not None:
            raise CareError(
                _("%(name)s has already taken this task.") % {"name": _name(current.assignee)}
            )
        if not claim and current.assignee_id is not None and not may_manage(user, current):
            raise CareError(
                _("Only the requester, the assignee or a care coordinator hands this task over.")
            )
        if (
            assignee is None
            and current.assignee_id is None
            and current.assignee_role == assignee_role
        ):
            raise CareError(_("This task already waits for this profession."))
        if assignee is not None and current.assignee_id == assignee.pk:
            raise CareError(_("This task is already assigned to %(name)s.") % {"name": assignee})
        current.assignee = assignee
        current.assignee_role = "" if assignee is not None else assignee_role
        update = ["assignee", "assignee_role"]
        if current.status == Task.Status.IN_PROGRESS and not claim:
            # The new owner has not started it: it waits for them.
            current.status = Task.Status.REQUESTED
            update.append("status")
        if current.overdue_notified_at is not None:
            current.overdue_notified_at = None
            update.append("overdue_notified_at")
        current.save(update_fields=update)
        _audit(
            access,
            current,
            "claimed" if claim else "assigned",
            request,
            assignee=current.assignee_id,
            role=current.assignee_role,
        )
        if assignee is not None:
            _notify(
                [assignee],
                user,
                current,
                _("A task was assigned to you"),
                _("Open your task list to see it."),
            )
        task_event(current)
    return _copy_back(task, current)


def do_start_task(access: PatientAccess, task: Task, *, request: Any = None) -> Task:
    """The assignee starts the task (or resumes it after a hold); an unassigned one is claimed."""
    user = access.user
    _check_worker(access, task)
    with transaction.atomic():
        current = _locked(task)
        _check_open(current)
        if current.assignee_id is not None and current.assignee_id != user.pk:
            raise CareError(
                _("This task is assigned to %(name)s.") % {"name": _name(current.assignee)}
            )
        if current.status == Task.Status.IN_PROGRESS:
            raise CareError(_("This task is already in progress."))
        update = ["status"]
        if current.assignee_id is None:
            current.assignee, current.assignee_role = user, ""
            update += ["assignee", "assignee_role"]
        current.status = Task.Status.IN_PROGRESS
        if current.started_at is None:
            current.started_at = timezone.now()
            update.append("started_at")
        current.save(update_fields=update)
        _audit(access, current, "started", request, assignee=current.assignee_id)
        task_event(current)
    return _copy_back(task, current)


def do_put_on_hold(access: PatientAccess, task: Task, *, request: Any = None) -> Task:
    """Pause a task (waiting for the patient, a result…); starting it again resumes it."""
    user = access.user
    _check_worker(access, task)
    with transaction.atomic():
        current = _locked(task)
        _check_open(current)
        if current.status == Task.Status.ON_HOLD:
            raise CareError(_("This task is already on hold."))
        if not may_manage(user, current):
            raise CareError(
                _("Only the requester, the assignee or a care coordinator puts this task on hold.")
            )
        current.status = Task.Status.ON_HOLD
        current.save(update_fields=["status"])
        _audit(access, current, "on-hold", request)
        _notify(
            _parties(current),
            user,
            current,
            _("A task was put on hold"),
            _("Open the task to see it."),
        )
        task_event(current)
    return _copy_back(task, current)


def do_complete_task(
    access: PatientAccess, task: Task, report: str = "", *, request: Any = None
) -> Task:
    """Mark the task done with the professional's report (required for some kinds).

    Its plan activity, when it has one that does not repeat, is done with it.
    """
    user = access.user
    _check_worker(access, task)
    report = (report or "").strip()
    if len(report) > REPORT_MAX:
        raise CareError(_("The report is too long (10000 characters at most)."))
    with transaction.atomic():
        current = _locked(task)
        _check_open(current)
        if current.kind in REPORT_REQUIRED and not report:
            raise CareError(
                _("Write a report: the requester needs the outcome of a “%(kind)s” task.")
                % {"kind": current.get_kind_display()}
            )
        if current.assignee_id is not None and user.pk not in (
            current.assignee_id,
            current.requester_id,
        ):
            raise CareError(
                _("This task is assigned to %(name)s.") % {"name": _name(current.assignee)}
            )
        now = timezone.now()
        current.status = Task.Status.COMPLETED
        current.completed_at = now
        current.completed_by = user
        current.report = report
        if current.started_at is None:
            current.started_at = now
        current.save(
            update_fields=["status", "completed_at", "completed_by", "report", "started_at"]
        )
        _audit(access, current, "completed", request, report=bool(report))
        _complete_activity(access, current, request)
        _notify(
            [current.requester],
            user,
            current,
            _("A task you asked for is done"),
            _("Open the task to read the report."),
        )
        task_event(current)
    return _copy_back(task, current)


def _complete_activity(access: PatientAccess, task: Task, request: Any) -> None:
    """The plan activity behind the task is done with it: a one-off one is completed, a
    repeating one moves on to its next occurrence (with its next task) through the plans
    service."""
    if task.activity_id is None:
        return
    from .plans import do_set_activity_status, plan_event  # plans imports this module

    activity = Activity.objects.select_for_update().select_related("plan").get(pk=task.activity_id)
    if activity.status in (Activity.Status.COMPLETED, Activity.Status.CANCELLED):
        return
    if activity.repeat_days:
        if activity.plan.is_open:
            do_set_activity_status(access, activity, Activity.Status.COMPLETED, request=request)
        return
    activity.status = Activity.Status.COMPLETED
    activity.completed_at = task.completed_at
    activity.save(update_fields=["status", "completed_at"])
    plan = activity.plan
    plan.save(update_fields=["updated_at"])
    audit(
        Action.UPDATE,
        request=request,
        actor=access.user,
        obj=plan,
        patient_id=str(plan.patient_id),
        detail=access.audit_detail(
            what="care plan", completed_activity=activity.pk, by_task=task.pk
        ),
    )
    plan_event(plan)


def do_cancel_task(access: PatientAccess, task: Task, reason: str, *, request: Any = None) -> Task:
    """Cancel a task that is no longer needed, saying why."""
    user = access.user
    _check_worker(access, task)
    reason = " ".join((reason or "").split())
    if not reason:
        raise CareError(_("Say why the task is cancelled."))
    if len(reason) > REASON_MAX:
        raise CareError(_("The reason is too long (300 characters at most)."))
    with transaction.atomic():
        current = _locked(task)
        _check_open(current)
        if not may_manage(user, current):
            raise CareError(
                _("Only the requester, the assignee or a care coordinator cancels this task.")
            )
        current.status = Task.Status.CANCELLED
        current.cancel_reason = reason
        current.save(update_fields=["status", "cancel_reason"])
        _audit(access, current, "cancelled", request)
        _notify(
            _parties(current),
            user,
            current,
            _("A task was cancelled"),
            _("Open the task to see why."),
        )
        task_event(current)
    return _copy_back(task, current)


def do_add_task_note(
    access: PatientAccess, task: Task, text: str, *, request: Any = None
) -> TaskNote:
    """An instruction or a report for the other party of the task, who is told about it.

    Without an assignee the note goes to the requester only (nobody owns the task yet).
    """
    user = access.user
    _check_worker(access, task)
    text = (text or "").strip()
    if not text:
        raise CareError(_("Write the note."))
    if len(text) > NOTE_MAX:
        raise CareError(_("The note is too long (5000 characters at most)."))
    with transaction.atomic():
        current = _locked(task)
        note = TaskNote.objects.create(task=current, author=user, text=text)
        current.save(update_fields=["updated_at"])
        _audit(access, current, "note", request, note=note.pk)
        _notify(
            _parties(current),
            user,
            current,
            _("New note on a task"),
            _("Open the task to read it."),
        )
        task_event(current)
    _copy_back(task, current)
    return note


# ---------------------------------------------------------------------------------------------
# The overdue check (Celery beat, every 5 minutes)


def _overdue_recipients(task: Task) -> list[User]:
    """The assignee; else the team members of the profession; else the requester."""
    if task.assignee is not None and task.assignee.is_active:
        return [task.assignee]
    if task.assignee_role:
        members = CareTeamMember.objects.filter(
            care_team__patient_id=task.patient_id,
            care_team__active=True,
            ended_at__isnull=True,
            user__role=task.assignee_role,
            user__is_active=True,
        ).select_related("user")
        users = {member.user_id: member.user for member in members}
        if users:
            return [users[pk] for pk in sorted(users)]
    return [task.requester] if task.requester.is_active else []


def flag_overdue_tasks(now: dt.datetime | None = None) -> int:
    """Notify once about each open task past its due time; returns how many were flagged.

    Safe to run twice at once: rows another run holds are skipped, and a flagged task is never
    picked again (`overdue_notified_at`).
    """
    moment = now or timezone.now()
    flagged = 0
    while True:
        with transaction.atomic():
            batch = list(
                Task.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("assignee", "requester")
                .filter(
                    status__in=OPEN_TASK_STATUSES,
                    due_at__lt=moment,
                    overdue_notified_at__isnull=True,
                )
                .order_by("due_at", "pk")[:OVERDUE_BATCH]
            )
            if not batch:
                return flagged
            Task.objects.filter(pk__in=[task.pk for task in batch]).update(
                overdue_notified_at=moment
            )
            for task in batch:
                task.overdue_notified_at = moment
                recipients = _overdue_recipients(task)
                _notify(
                    list(recipients),
                    None,
                    task,
                    _("A task is overdue"),
                    _("Open your task list to see it."),
                )
                audit(
                    Action.UPDATE,
                    obj=task,
                    patient_id=str(task.patient_id),
                    detail={
                        "what": "task",
                        "change": "overdue",
                        "notified": [user.pk for user in recipients],
                    },
                )
                task_event(task)
            flagged += len(batch)


# ---------------------------------------------------------------------------------------------
# Lists


def overdue_first(queryset: QuerySet[Task], now: dt.datetime | None = None) -> QuerySet[Task]:
    """Open before closed, overdue first, then by priority and due time (none last)."""
    moment = now or timezone.now()
    return queryset.annotate(
        closed_rank=Case(
            When(status__in=CLOSED_TASK_STATUSES, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ),
        overdue_rank=Case(
            When(Q(status__in=OPEN_TASK_STATUSES, due_at__lt=moment), then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        ),
        priority_rank=Case(
            *[When(priority=key, then=Value(rank)) for key, rank in PRIORITY_RANK.items()],
            default=Value(9),
            output_field=IntegerField(),
        ),
    ).order_by(
        "closed_rank",
        "overdue_rank",
        "priority_rank",
        F("due_at").asc(nulls_last=True),
        "-completed_at",
        "-pk",
    )
