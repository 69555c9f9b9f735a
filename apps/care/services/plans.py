"""Care plans: built from a pathway template or from scratch, with goals, activities and
monitoring thresholds; progress; the follow-up interval. Every change is audited and pushed to
the care team's open pages (`care.plan`).

Who writes: clinicians with record access (care team, or an emergency access); never the
patient (who reads their plan), never billing staff or administrators.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.realtime import send_event_on_commit, user_group
from apps.records.access import PatientAccess

from ..models import Activity, CarePlan, Goal, Pathway, Task
from ..models.common import Origin
from ..models.plans import OPEN_PLAN_STATUSES
from ..models.tasks import OPEN_TASK_STATUSES
from . import CareError
from .tasks import do_create_task, task_event, team_user_ids

ACTIVITY_TITLE_MAX = 200
PLAN_TITLE_MAX = 200
GOAL_MAX = 300
REASON_MAX = 300
DESCRIPTION_MAX = 5000
MAX_DAYS = 3650
# Tasks made from a plan's activities fall due at this local hour of their due day.
TASK_DUE_TIME = dt.time(9, 0)
CARE_ZONE = ZoneInfo("Europe/Zurich")
CLOSED_PLAN_STATUSES = (CarePlan.Status.COMPLETED, CarePlan.Status.REVOKED)
OPEN_ACTIVITY_STATUSES = (
    Activity.Status.NOT_STARTED,
    Activity.Status.SCHEDULED,
    Activity.Status.IN_PROGRESS,
)


def plan_url(plan: CarePlan) -> str:
    return reverse("care:plan", args=[plan.pk])


def plan_progress(plan: CarePlan) -> int:
    """Percentage of the plan's activities done (cancelled ones do not count)."""
    counts = plan.activities.aggregate(**_progress_counts(""))
    return _percent(counts["done"], counts["counted"])


def _progress_counts(prefix: str) -> dict[str, Count]:
    counted = ~Q(**{f"{prefix}status": Activity.Status.CANCELLED})
    return {
        "counted": Count(f"{prefix}pk", filter=counted),
        "done": Count(f"{prefix}pk", filter=Q(**{f"{prefix}status": Activity.Status.COMPLETED})),
    }


def _percent(done: int, total: int) -> int:
    return round(100 * done / total) if total else 0


def with_progress(plans: QuerySet[CarePlan]) -> QuerySet[CarePlan]:
    """Plans annotated with `activities_counted` and `activities_done` (one query for a list)."""
    counts = _progress_counts("activities__")
    return plans.annotate(activities_counted=counts["counted"], activities_done=counts["done"])


def annotated_progress(plan: CarePlan) -> int:
    """The progress of a plan from `with_progress`."""
    return _percent(plan.activities_done, plan.activities_counted)  # type: ignore[attr-defined]


def plan_event(plan: CarePlan) -> None:
    """Tell the care team's (and the patient's) open pages that `plan` changed."""
    ids = set(team_user_ids(plan.patient_id))
    if plan.patient.user_id is not None:
        ids.add(plan.patient.user_id)
    send_event_on_commit(
        "care.plan",
        {
            "plan": plan.pk,
            "patient": plan.patient_id,
            "status": plan.status,
            "progress": plan_progress(plan),
            "url": plan_url(plan),
        },
        groups=[user_group(pk) for pk in sorted(ids)],
    )


def open_plans(patient_id: int) -> Any:
    return CarePlan.objects.filter(patient_id=patient_id, status__in=OPEN_PLAN_STATUSES)


def check_plan_writer(access: PatientAccess) -> None:
    if access.user.role not in CLINICAL_ROLES or access.is_patient_self:
        raise CareError(_("Only clinicians change care plans."))


def check_coordinator(access: PatientAccess, coordinator: User | None) -> None:
    """A plan's coordinator (or an activity's responsible) is a clinician of the care team."""
    if coordinator is None:
        return
    if coordinator.role not in CLINICAL_ROLES or not coordinator.is_active:
        raise CareError(_("Choose a clinician of the care team."))
    if coordinator.pk not in team_user_ids(access.patient.pk):
        raise CareError(_("%(name)s is not on this patient's care team.") % {"name": coordinator})


def _check_own_open_plan(access: PatientAccess, plan: CarePlan) -> None:
    check_plan_writer(access)
    if plan.patient_id != access.patient.pk:
        raise CareError(_("This plan belongs to another patient."))
    if not plan.is_open:
        raise CareError(_("This plan is closed."))


def _clean_title(title: str, maximum: int, empty: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise CareError(empty)
    if len(title) > maximum:
        raise CareError(_("The text is too long (%(max)s characters at most).") % {"max": maximum})
    return title


def _check_days(value: int | None, label: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not (0 if allow_zero else 1) <= value <= MAX_DAYS:
        raise CareError(
            _("%(what)s must be a whole number of days up to %(max)s.")
            % {"what": label, "max": MAX_DAYS}
        )


def task_due_at(day: dt.date) -> dt.datetime:
    """A plan task's due time: 09:00 in Zurich on its due day (stored in UTC)."""
    return dt.datetime.combine(day, TASK_DUE_TIME, tzinfo=CARE_ZONE).astimezone(dt.UTC)


def _audit_plan(
    action: str, access: PatientAccess, plan: CarePlan, request: Any, **detail: Any
) -> None:
    audit(
        action,
        request=request,
        actor=access.user,
        obj=plan,
        patient_id=str(plan.patient_id),
        detail=access.audit_detail(what="care plan", **detail),
    )


def _touch(plan: CarePlan) -> None:
    """A new version of the plan (FHIR meta.versionId) for any change of its lines."""
    plan.save(update_fields=["updated_at"])


# ---------------------------------------------------------------------------------------------
# Creating plans


def _default_coordinator(access: PatientAccess, coordinator: User | None) -> User | None:
    if coordinator is not None:
        return coordinator
    # The creator coordinates their own plan when they are on the team.
    return access.user if access.user.pk in team_user_ids(access.patient.pk) else None


def _create_plan_row(access: PatientAccess, **fields: Any) -> CarePlan:
    try:
        with transaction.atomic():
            return CarePlan.objects.create(patient=access.patient, created_by=access.user, **fields)
    except IntegrityError as error:
        # The partial unique index: another open plan on this pathway (a concurrent creation).
        if "care_one_open_plan_per_pathway" in str(error):
            raise CareError(_("The patient already has an open plan on this pathway.")) from None
        raise


def _request_follow_up(access: PatientAccess, plan: CarePlan, request: Any) -> None:
    """Ask scheduling for the plan's next follow-up to be booked by its date, unless one of that
    kind is already asked for (or booked) by then; nothing when the hospital has no
    appointment type `CARE_FOLLOW_UP_TYPE`."""
    from apps.scheduling.models import AppointmentType, FollowUpRequest
    from apps.scheduling.services.follow_ups import do_request_follow_up

    if plan.next_follow_up is None or not settings.CARE_FOLLOW_UP_TYPE:
        return
    kind = AppointmentType.objects.filter(code=settings.CARE_FOLLOW_UP_TYPE, active=True).first()
    if kind is None:
        return
    due_by = max(plan.next_follow_up, timezone.localdate())
    covered = FollowUpRequest.objects.filter(
        patient=plan.patient,
        type=kind,
        due_by__lte=due_by,
        status__in=[FollowUpRequest.Status.OPEN, FollowUpRequest.Status.BOOKED],
    )
    if covered.exists():
        return
    note = _("Care plan: %(title)s") % {"title": plan.title}
    do_request_follow_up(access, kind, due_by, note=note, request=request)


def do_create_plan_from_pathway(
    access: PatientAccess,
    pathway: Pathway,
    *,
    start_date: dt.date,
    coordinator: User | None = None,
    title: str = "",
    request: Any = None,
) -> CarePlan:
    """The patient's plan from `pathway`: goals, activities with their tasks, and the pathway's
    monitoring limits as the patient's threshold rules; all or nothing."""
    from .pathways import apply_thresholds

    check_plan_writer(access)
    if not pathway.active:
        raise CareError(_("This pathway is no longer in use."))
    if start_date is None:
        raise CareError(_("Give the start date."))
    coordinator = _default_coordinator(access, coordinator)
    check_coordinator(access, coordinator)
    if open_plans(access.patient.pk).filter(pathway=pathway).exists():
        raise CareError(_("The patient already has an open plan on this pathway."))
    title = _clean_title(
        title or pathway.display_name(), PLAN_TITLE_MAX, _("Give the plan a title.")
    )
    follow_up = pathway.follow_up_days
    with transaction.atomic():
        plan = _create_plan_row(
            access,
            pathway=pathway,
            pathway_version=pathway.version,
            title=title,
            description=pathway.display_description(),
            status=CarePlan.Status.ACTIVE,
            start_date=start_date,
            coordinator=coordinator,
            follow_up_days=follow_up,
            next_follow_up=start_date + dt.timedelta(days=follow_up) if follow_up else None,
        )
        goals = [
            Goal(
                plan=plan,
                description=line.display_description()[:GOAL_MAX],
                measure=line.measure,
                target_low=line.target_low,
                target_high=line.target_high,
                unit=line.unit,
                due_date=(
                    start_date + dt.timedelta(days=line.due_after_days)
                    if line.due_after_days is not None
                    else None
                ),
                order=index,
            )
            for index, line in enumerate(pathway.goals.all())
        ]
        Goal.objects.bulk_create(goals)
        tasks = activities = 0
        for index, line in enumerate(pathway.activities.all()):
            activities += 1
            due = start_date + dt.timedelta(days=line.offset_days)
            activity = Activity.objects.create(
                plan=plan,
                title=line.display_title()[:ACTIVITY_TITLE_MAX],
                detail=line.detail,
                kind=line.kind,
                responsible=None if line.role else coordinator,
                responsible_role=line.role,
                due_date=due,
                repeat_days=line.repeat_days,
                origin=Origin.TEMPLATE,
                order=index,
            )
            if line.task_kind:
                _task_for(access, activity, kind=line.task_kind, due=due, request=request)
                tasks += 1
        rules = apply_thresholds(access, pathway, request=request)
        _audit_plan(
            Action.CREATE,
            access,
            plan,
            request,
            pathway=pathway.code,
            pathway_version=pathway.version,
            goals=len(goals),
            activities=activities,
            tasks=tasks,
            threshold_rules=[rule.pk for rule in rules],
        )
        _request_follow_up(access, plan, request)
        plan_event(plan)
    return plan


def _task_for(
    access: PatientAccess,
    activity: Activity,
    *,
    kind: str,
    due: dt.date,
    request: Any,
    like: Task | None = None,
) -> Task:
    """The task that asks the activity's responsible (person or profession) to do it."""
    if like is not None:
        assignee, role = like.assignee, like.assignee_role
    else:
        assignee = activity.responsible
        role = activity.responsible_role or ("" if assignee else Role.COORDINATOR)
    return do_create_task(
        access,
        kind=kind,
        title=activity.title,
        instructions=activity.detail,
        assignee=assignee,
        assignee_role="" if assignee else role,
        due_at=task_due_at(due),
        plan=activity.plan,
        activity=activity,
        origin=Origin.TEMPLATE if like is None else like.origin,
        request=request,
    )


def do_create_plan(
    access: PatientAccess,
    *,
    title: str,
    description: str,
    start_date: dt.date,
    coordinator: User | None,
    follow_up_days: int | None,
    request: Any = None,
) -> CarePlan:
    """A plan written from scratch; goals and activities are added to it afterwards."""
    check_plan_writer(access)
    title = _clean_title(title, PLAN_TITLE_MAX, _("Give the plan a title."))
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise CareError(_("The description is too long (5000 characters at most)."))
    if start_date is None:
        raise CareError(_("Give the start date."))
    _check_days(follow_up_days, _("The follow-up interval"))
    check_coordinator(access, coordinator)
    with transaction.atomic():
        plan = _create_plan_row(
            access,
            title=title,
            description=description,
            status=CarePlan.Status.ACTIVE,
            start_date=start_date,
            coordinator=coordinator,
            follow_up_days=follow_up_days,
            next_follow_up=(
                start_date + dt.timedelta(days=follow_up_days) if follow_up_days else None
            ),
        )
        _audit_plan(Action.CREATE, access, plan, request, pathway=None)
        _request_follow_up(access, plan, request)
        plan_event(plan)
    return plan


# ---------------------------------------------------------------------------------------------
# Goals


def do_add_goal(
    access: PatientAccess,
    plan: CarePlan,
    *,
    description: str,
    measure: str = "",
    target_low: Decimal | None = None,
    target_high: Decimal | None = None,
    unit: str = "",
    due_date: dt.date | None = None,
    request: Any = None,
) -> Goal:
    _check_own_open_plan(access, plan)
    description = _clean_title(description, GOAL_MAX, _("Describe the goal."))
    measure = (measure or "").strip()
    if len(measure) > 20:
        raise CareError(_("The measurement code is too long (20 characters at most)."))
    if (target_low is not None or target_high is not None) and not measure:
        raise CareError(_("A target needs the measurement it is read on."))
    if target_low is not None and target_high is not None and target_low > target_high:
        raise CareError(_("The upper target is below the lower one."))
    with transaction.atomic():
        goal = Goal.objects.create(
            plan=plan,
            description=description,
            measure=measure,
            target_low=target_low,
            target_high=target_high,
            unit=(unit or "").strip()[:30],
            due_date=due_date,
            order=plan.goals.count(),
        )
        _touch(plan)
        _audit_plan(Action.UPDATE, access, plan, request, added_goal=goal.pk)
        plan_event(plan)
    return goal


def do_set_goal_status(
    access: PatientAccess, goal: Goal, status: str, *, request: Any = None
) -> Goal:
    """Mark a goal achieved or cancelled (or in progress again)."""
    plan = goal.plan
    _check_own_open_plan(access, plan)
    if status not in (Goal.Status.ACTIVE, Goal.Status.ACHIEVED, Goal.Status.CANCELLED):
        raise CareError(_("Choose achieved, cancelled or in progress."))
    with transaction.atomic():
        goal = Goal.objects.select_for_update().get(pk=goal.pk)
        if goal.status == status:
            return goal
        previous, goal.status = goal.status, status
        goal.save(update_fields=["status"])
        _touch(plan)
        _audit_plan(
            Action.UPDATE, access, plan, request, goal=goal.pk, status=status, previous=previous
        )
        plan_event(plan)
    return goal


# ---------------------------------------------------------------------------------------------
# Activities


def do_add_activity(
    access: PatientAccess,
    plan: CarePlan,
    *,
    title: str,
    kind: str,
    detail: str = "",
    responsible: User | None = None,
    responsible_role: str = "",
    due_date: dt.date | None = None,
    repeat_days: int | None = None,
    origin: str = Origin.MANUAL,
    request: Any = None,
) -> Activity:
    """Add an activity to an open plan of `access.patient`."""
    _check_own_open_plan(access, plan)
    if kind not in Activity.Kind.values:
        raise CareError(_("Choose a kind of activity."))
    title = _clean_title(title, ACTIVITY_TITLE_MAX, _("Give the activity a title."))
    if responsible is None and responsible_role and responsible_role not in CLINICAL_ROLES:
        raise CareError(_("Choose a profession of the care team."))
    check_coordinator(access, responsible)
    _check_days(repeat_days, _("The repetition"))
    with transaction.atomic():
        order = plan.activities.count()
        activity = Activity.objects.create(
            plan=plan,
            title=title,
            detail=(detail or "").strip()[:500],
            kind=kind,
            responsible=responsible,
            responsible_role="" if responsible is not None else responsible_role,
            due_date=due_date,
            repeat_days=repeat_days,
            origin=origin,
            order=order,
        )
        _touch(plan)
        _audit_plan(Action.UPDATE, access, plan, request, added_activity=activity.pk)
        plan_event(plan)
    return activity


def do_set_activity_status(
    access: PatientAccess, activity: Activity, status: str, *, request: Any = None
) -> Activity:
    """Change an activity's status. Completing a repeating one records when it was done and
    moves it to its next occurrence (it stays open), with a task for it like the last one."""
    plan = activity.plan
    _check_own_open_plan(access, plan)
    if status not in Activity.Status.values:
        raise CareError(_("Choose a status."))
    now = timezone.now()
    with transaction.atomic():
        # Locked: two clicks on "done" move a repeating activity on once, not twice.
        activity = Activity.objects.select_for_update().get(pk=activity.pk)
        if activity.plan_id != plan.pk:
            raise CareError(_("This activity belongs to another plan."))
        previous = activity.status
        detail: dict[str, Any] = {"activity": activity.pk, "status": status, "previous": previous}
        repeats = status == Activity.Status.COMPLETED and activity.repeat_days
        if repeats:
            if previous not in OPEN_ACTIVITY_STATUSES:
                raise CareError(_("This activity is not open."))
            done_for = activity.due_date or timezone.localdate()
            activity.due_date = done_for + dt.timedelta(days=activity.repeat_days or 0)
            activity.completed_at = now
            activity.status = Activity.Status.NOT_STARTED
            activity.save(update_fields=["due_date", "completed_at", "status"])
            detail.update(done_for=done_for.isoformat(), next_due=activity.due_date.isoformat())
        else:
            if previous == status:
                return activity
            activity.status = status
            activity.completed_at = now if status == Activity.Status.COMPLETED else None
            activity.save(update_fields=["status", "completed_at"])
            if status == Activity.Status.CANCELLED:
                # Nothing is left to do for it: its open tasks leave the team's lists.
                detail["cancelled_tasks"] = _cancel_open_tasks(
                    access,
                    plan,
                    _("The care-plan activity was cancelled."),
                    request,
                    activity=activity,
                )
        _touch(plan)
        _audit_plan(Action.UPDATE, access, plan, request, **detail)
        if repeats:
            _next_task(access, activity, request)
        plan_event(plan)
    return activity


def _next_task(access: PatientAccess, activity: Activity, request: Any) -> None:
    """The next occurrence's task, when the activity made tasks and none of them is open."""
    tasks = list(activity.tasks.order_by("-created_at", "-pk")[:1])
    if activity.due_date is None or not tasks:
        return
    if activity.tasks.filter(status__in=OPEN_TASK_STATUSES).exists():
        return
    last = tasks[0]
    _task_for(access, activity, kind=last.kind, due=activity.due_date, request=request, like=last)


# ---------------------------------------------------------------------------------------------
# The plan's status


def do_set_plan_status(
    access: PatientAccess, plan: CarePlan, status: str, reason: str, *, request: Any = None
) -> CarePlan:
    """Put a plan on hold, resume it, complete it or stop it.

    Closing it (completed, stopped) cancels its open tasks with `reason`; a stopped plan needs
    a reason. A closed plan stays closed: a new plan is made instead.
    """
    check_plan_writer(access)
    if plan.patient_id != access.patient.pk:
        raise CareError(_("This plan belongs to another patient."))
    allowed = (
        CarePlan.Status.ACTIVE,
        CarePlan.Status.ON_HOLD,
        CarePlan.Status.COMPLETED,
        CarePlan.Status.REVOKED,
    )
    if status not in allowed:
        raise CareError(_("Choose on hold, active, completed or stopped."))
    reason = " ".join((reason or "").split())
    if len(reason) > REASON_MAX:
        raise CareError(_("The reason is too long (300 characters at most)."))
    if status == CarePlan.Status.REVOKED and not reason:
        raise CareError(_("Say why the plan is stopped."))
    today = timezone.localdate()
    with transaction.atomic():
        plan = CarePlan.objects.select_for_update().select_related("patient").get(pk=plan.pk)
        if not plan.is_open:
            raise CareError(_("This plan is closed."))
        if plan.status == status:
            raise CareError(_("The plan already has this status."))
        previous, plan.status = plan.status, status
        fields = ["status"]
        cancelled: list[int] = []
        if status in CLOSED_PLAN_STATUSES:
            plan.end_date = max(today, plan.start_date)
            fields.append("end_date")
        plan.save(update_fields=fields)
        if status in CLOSED_PLAN_STATUSES:
            task_reason = reason or _("The care plan was completed.")
            cancelled = _cancel_open_tasks(access, plan, task_reason, request)
        _audit_plan(
            Action.UPDATE,
            access,
            plan,
            request,
            status=status,
            previous=previous,
            reason=reason,
            cancelled_tasks=cancelled,
        )
        plan_event(plan)
    return plan


def _cancel_open_tasks(
    access: PatientAccess,
    plan: CarePlan,
    reason: str,
    request: Any,
    *,
    activity: Activity | None = None,
) -> list[int]:
    """Cancel the plan's (or one activity's) open tasks with `reason`, each audited and pushed."""
    rows = Task.objects.select_for_update().filter(plan=plan, status__in=OPEN_TASK_STATUSES)
    if activity is not None:
        rows = rows.filter(activity=activity)
    tasks = list(rows.order_by("pk"))
    for task in tasks:
        task.status = Task.Status.CANCELLED
        task.cancel_reason = reason[:REASON_MAX]
        task.save(update_fields=["status", "cancel_reason"])
        audit(
            Action.UPDATE,
            request=request,
            actor=access.user,
            obj=task,
            patient_id=str(task.patient_id),
            detail=access.audit_detail(
                what="task", change="cancelled", status=task.status, via_plan=plan.pk
            ),
        )
        task_event(task)
    return [task.pk for task in tasks]


def do_set_follow_up(
    access: PatientAccess,
    plan: CarePlan,
    *,
    follow_up_days: int | None,
    next_follow_up: dt.date | None,
    request: Any = None,
) -> CarePlan:
    """Change the follow-up interval and the date of the next follow-up."""
    _check_own_open_plan(access, plan)
    _check_days(follow_up_days, _("The follow-up interval"))
    if next_follow_up is not None and next_follow_up < plan.start_date:
        raise CareError(_("The next follow-up cannot be before the plan starts."))
    with transaction.atomic():
        plan.follow_up_days = follow_up_days
        plan.next_follow_up = next_follow_up
        plan.save(update_fields=["follow_up_days", "next_follow_up"])
        _audit_plan(
            Action.UPDATE,
            access,
            plan,
            request,
            follow_up_days=follow_up_days,
            next_follow_up=next_follow_up.isoformat() if next_follow_up else None,
        )
        _request_follow_up(access, plan, request)
        plan_event(plan)
    return plan
