"""Care plans: built from a pathway template or from scratch, with goals, activities and
monitoring thresholds; progress; the follow-up interval. Every change is audited and pushed to
the care team's open pages (`care.plan`).
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
from apps.records.access import PatientAccess

from ..models import Activity, CarePlan
from ..models.common import Origin
from ..models.plans import OPEN_PLAN_STATUSES
from . import CareError
from .tasks import team_user_ids

ACTIVITY_TITLE_MAX = 200


def plan_url(plan: CarePlan) -> str:
    return reverse("care:plan", args=[plan.pk])


def plan_progress(plan: CarePlan) -> int:
    """Percentage of the plan's activities done (cancelled ones do not count)."""
    counted = plan.activities.exclude(status=Activity.Status.CANCELLED)
    total = counted.count()
    if total == 0:
        return 0
    done = counted.filter(status=Activity.Status.COMPLETED).count()
    return round(100 * done / total)


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
    check_plan_writer(access)
    if plan.patient_id != access.patient.pk:
        raise CareError(_("This plan belongs to another patient."))
    if not plan.is_open:
        raise CareError(_("This plan is closed."))
    if kind not in Activity.Kind.values:
        raise CareError(_("Choose a kind of activity."))
    title = " ".join((title or "").split())
    if not title:
        raise CareError(_("Give the activity a title."))
    if len(title) > ACTIVITY_TITLE_MAX:
        raise CareError(_("The title is too long (200 characters at most)."))
    with transaction.atomic():
        order = plan.activities.count()
        activity = Activity.objects.create(
            plan=plan,
            title=title,
            detail=detail.strip()[:500],
            kind=kind,
            responsible=responsible,
            responsible_role="" if responsible is not None else responsible_role,
            due_date=due_date,
            repeat_days=repeat_days,
            origin=origin,
            order=order,
        )
        plan.save(update_fields=["updated_at"])
        audit(
            Action.UPDATE,
            request=request,
            actor=access.user,
            obj=plan,
            patient_id=str(plan.patient_id),
            detail=access.audit_detail(what="care plan", added_activity=activity.pk),
        )
        plan_event(plan)
    return activity
