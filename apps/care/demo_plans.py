"""Demo care plans (seed_demo, after the care reference data; idempotent).

- Marie Dubois on the heart-failure pathway, started three weeks ago by the care coordinator:
  the salt-and-fluids education and the medication review are done, the weekly nurse call was
  made twice (the third is due today), the blood tests are overdue;
- Luca Bernasconi on the COPD pathway, started ten days ago: the inhaler education is done.

Everything goes through the services (plans, tasks), then the times are set back to when the
work was done. A patient who already has a plan on the pathway is left as they are.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from apps.accounts.models import User
from apps.records.access import get_patient_for_user
from apps.records.models import Patient

from .models import Activity, CarePlan, Pathway, Task
from .services.plans import do_create_plan_from_pathway, do_set_activity_status, task_due_at
from .services.tasks import do_complete_task

HEART_FAILURE = "heart-failure"
COPD = "copd"


def seed(context: dict[str, Any]) -> None:
    users: dict[str, User] = context["users"]
    marie = Patient.objects.filter(user=users["patient"]).first()
    luca = Patient.objects.filter(user=users["patient2"]).first()
    if marie is not None:
        _marie(marie, users)
    if luca is not None:
        _luca(luca, users)


def _start(
    chart: Patient, code: str, coordinator: User, days_ago: int
) -> tuple[CarePlan, Any] | None:
    pathway = Pathway.objects.filter(code=code, active=True).first()
    if pathway is None or CarePlan.objects.filter(patient=chart, pathway=pathway).exists():
        return None
    access = get_patient_for_user(coordinator, chart.pk, action=None)
    start = timezone.localdate() - dt.timedelta(days=days_ago)
    plan = do_create_plan_from_pathway(access, pathway, start_date=start, coordinator=coordinator)
    return plan, access


def _done(
    user: User, chart: Patient, activity: Activity, report: str, on: dt.date, repeat: bool
) -> None:
    """The activity's open task done by `user` on day `on` (completing the task moves a
    repeating activity on; without a task the activity itself is marked done)."""
    access = get_patient_for_user(user, chart.pk, action=None)
    task = activity.tasks.filter(status=Task.Status.REQUESTED).order_by("pk").first()
    if task is not None:
        do_complete_task(access, task, report)
        when = task_due_at(on) + dt.timedelta(hours=2)
        Task.objects.filter(pk=task.pk).update(started_at=when, completed_at=when)
    if repeat and task is None:
        do_set_activity_status(access, activity, Activity.Status.COMPLETED)
    Activity.objects.filter(pk=activity.pk).update(
        completed_at=task_due_at(on) + dt.timedelta(hours=2)
    )


def _marie(marie: Patient, users: dict[str, User]) -> None:
    started = _start(marie, HEART_FAILURE, users["coordinator"], 21)
    if started is None:
        return
    plan, _access = started
    nurse, physician = users["nurse"], users["physician"]
    education = plan.activities.get(kind=Activity.Kind.EDUCATION)
    _done(
        nurse,
        marie,
        education,
        "Explications données avec sa fille ; elle pèse le sel de cuisine et boit 1,5 l/jour.",
        plan.start_date + dt.timedelta(days=3),
        repeat=False,
    )
    call = plan.activities.get(repeat_days=7)
    for week in (1, 2):
        _done(
            nurse,
            marie,
            call,
            "Pas d'essoufflement nouveau, chevilles fines, poids stable."
            if week == 1
            else "Légère fatigue, poids +0,6 kg en une semaine ; conseils rappelés.",
            plan.start_date + dt.timedelta(days=7 * week),
            repeat=True,
        )
    review = plan.activities.get(kind=Activity.Kind.MEDICATION)
    _done(
        physician,
        marie,
        review,
        "Tension 118/72, fréquence 64/min, créatinine stable : bêtabloquant augmenté d'un palier.",
        plan.start_date + dt.timedelta(days=14),
        repeat=False,
    )


def _luca(luca: Patient, users: dict[str, User]) -> None:
    started = _start(luca, COPD, users["coordinator"], 10)
    if started is None:
        return
    plan, _access = started
    education = plan.activities.filter(kind=Activity.Kind.EDUCATION).order_by("order").first()
    if education is not None:
        _done(
            users["nurse"],
            luca,
            education,
            "Technique revue avec son inhalateur : expiration avant la prise corrigée.",
            plan.start_date + dt.timedelta(days=3),
            repeat=False,
        )
