"""Changing a plan: from scratch, goals, activities (a repeating one moves on), the follow-up,
and the plan's status (closing it cancels its open tasks with the reason)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Activity, CarePlan, Goal, Pathway, Task
from apps.care.services import CareError
from apps.care.services.plans import (
    do_add_activity,
    do_add_goal,
    do_create_plan,
    do_create_plan_from_pathway,
    do_set_activity_status,
    do_set_follow_up,
    do_set_goal_status,
    do_set_plan_status,
    plan_progress,
)
from apps.records.models import Patient
from tests.care.conftest import access_as
from tests.care.helpers import Listener

TODAY = dt.date(2026, 3, 2)


def _updates(plan: CarePlan) -> list[dict[str, Any]]:
    return [
        e.detail
        for e in AuditEvent.objects.filter(
            action=Action.UPDATE, object_type="care.careplan", object_id=str(plan.pk)
        ).order_by("seq")
    ]


@pytest.fixture
def plan(heart_failure: Pathway, record: Patient, coordinator: User) -> CarePlan:
    return do_create_plan_from_pathway(
        access_as(coordinator, record), heart_failure, start_date=TODAY
    )


def test_a_plan_from_scratch(record: Patient, nurse: User, coordinator: User) -> None:
    plan = do_create_plan(
        access_as(nurse, record),
        title="  Retour à   domicile ",
        description="Après l'hospitalisation pour pneumonie.",
        start_date=TODAY,
        coordinator=coordinator,
        follow_up_days=21,
    )
    assert plan.title == "Retour à domicile"
    assert plan.pathway is None and plan.pathway_version is None
    assert plan.next_follow_up == TODAY + dt.timedelta(days=21)
    assert plan.description == "Après l'hospitalisation pour pneumonie."
    assert AuditEvent.objects.filter(
        action=Action.CREATE, object_type="care.careplan", object_id=str(plan.pk)
    ).exists()
    # several plans from scratch may be open at once
    do_create_plan(
        access_as(nurse, record),
        title="Nutrition",
        description="",
        start_date=TODAY,
        coordinator=None,
        follow_up_days=None,
    )
    assert CarePlan.objects.filter(patient=record).count() == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "too long"),
        ({"follow_up_days": 0}, "follow-up interval"),
        ({"follow_up_days": 4000}, "follow-up interval"),
        ({"description": "d" * 5001}, "description is too long"),
    ],
)
def test_a_plan_from_scratch_checks_its_fields(
    record: Patient, nurse: User, fields: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {
        "title": "Suivi",
        "description": "",
        "start_date": TODAY,
        "coordinator": None,
        "follow_up_days": None,
    }
    with pytest.raises(CareError, match=message):
        do_create_plan(access_as(nurse, record), **(values | fields))
    assert not CarePlan.objects.exists()


def test_goals_are_added_then_achieved_or_cancelled(
    plan: CarePlan, record: Patient, nurse: User
) -> None:
    access = access_as(nurse, record)
    goal = do_add_goal(
        access,
        plan,
        description="Marcher 30 minutes par jour",
        due_date=TODAY + dt.timedelta(days=60),
    )
    assert goal.order == 4
    do_set_goal_status(access, goal, Goal.Status.ACHIEVED)
    goal.refresh_from_db()
    assert goal.status == Goal.Status.ACHIEVED
    with pytest.raises(CareError, match="Choose achieved"):
        do_set_goal_status(access, goal, "proposed")
    with pytest.raises(CareError, match="measurement it is read on"):
        do_add_goal(access, plan, description="Poids", target_high=Decimal(80))
    with pytest.raises(CareError, match="upper target"):
        do_add_goal(
            access,
            plan,
            description="Poids",
            measure="29463-7",
            target_low=Decimal(80),
            target_high=Decimal(70),
        )
    assert [d.get("added_goal") or d.get("status") for d in _updates(plan)] == [
        goal.pk,
        "achieved",
    ]


def test_activities_change_status_and_count_in_the_progress(
    plan: CarePlan, record: Patient, nurse: User
) -> None:
    access = access_as(nurse, record)
    once = plan.activities.get(kind=Activity.Kind.MEDICATION)
    assert plan_progress(plan) == 0
    do_set_activity_status(access, once, Activity.Status.IN_PROGRESS)
    do_set_activity_status(access, once, Activity.Status.COMPLETED)
    once.refresh_from_db()
    assert once.status == Activity.Status.COMPLETED
    assert once.completed_at is not None
    assert plan_progress(plan) == round(100 / 6)
    # a cancelled activity no longer counts
    other = plan.activities.get(kind=Activity.Kind.EDUCATION)
    do_set_activity_status(access, other, Activity.Status.CANCELLED)
    assert plan_progress(plan) == round(100 / 5)
    # and its task leaves the team's lists, saying why
    task = Task.objects.get(activity=other)
    assert (task.status, task.cancel_reason) == (
        Task.Status.CANCELLED,
        "The care-plan activity was cancelled.",
    )
    assert Task.objects.filter(plan=plan, status=Task.Status.REQUESTED).count() == 3
    # reopened, it is to do again and forgets when it was done
    do_set_activity_status(access, once, Activity.Status.NOT_STARTED)
    once.refresh_from_db()
    assert once.completed_at is None
    with pytest.raises(CareError, match="Choose a status"):
        do_set_activity_status(access, once, "finished")


def test_completing_a_repeating_activity_moves_it_on(
    plan: CarePlan, record: Patient, nurse: User
) -> None:
    access = access_as(nurse, record)
    call = plan.activities.get(repeat_days=7)
    first_task = Task.objects.get(activity=call)
    assert call.due_date == TODAY + dt.timedelta(days=7)

    # when the nurse marks the weekly call done while its task is still open
    done = do_set_activity_status(access, call, Activity.Status.COMPLETED)

    # then it stays open, due a week later, with the time it was done
    call.refresh_from_db()
    assert call.status == Activity.Status.NOT_STARTED
    assert call.due_date == TODAY + dt.timedelta(days=14)
    assert call.completed_at is not None
    assert done.due_date == call.due_date
    assert plan_progress(plan) == 0  # a repeating activity is never finished
    assert Task.objects.filter(activity=call).count() == 1  # the open task stays the reminder
    assert _updates(plan)[-1]["next_due"] == call.due_date.isoformat()

    # once that task is done, the next completion makes the next occurrence's task
    Task.objects.filter(pk=first_task.pk).update(
        status=Task.Status.COMPLETED, completed_at=timezone.now()
    )
    do_set_activity_status(access, call, Activity.Status.COMPLETED)
    call.refresh_from_db()
    assert call.due_date == TODAY + dt.timedelta(days=21)
    following = Task.objects.filter(activity=call).exclude(pk=first_task.pk).get()
    assert following.status == Task.Status.REQUESTED
    assert following.assignee_role == Role.NURSE
    assert following.kind == Task.Kind.CALL
    assert following.due_at is not None
    assert following.due_at.date() == TODAY + dt.timedelta(days=21)


def test_activities_added_by_hand(
    plan: CarePlan, record: Patient, nurse: User, outsider: User
) -> None:
    access = access_as(nurse, record)
    added = do_add_activity(
        access,
        plan,
        title="Bas de contention",
        kind=Activity.Kind.TASK,
        responsible_role=Role.NURSE,
        due_date=TODAY,
        repeat_days=2,
    )
    assert added.order == 6 and added.responsible_role == Role.NURSE
    with pytest.raises(CareError, match="not on this patient's care team"):
        do_add_activity(access, plan, title="X", kind=Activity.Kind.TASK, responsible=outsider)
    with pytest.raises(CareError, match="profession"):
        do_add_activity(
            access, plan, title="X", kind=Activity.Kind.TASK, responsible_role="billing"
        )
    with pytest.raises(CareError, match="repetition"):
        do_add_activity(access, plan, title="X", kind=Activity.Kind.TASK, repeat_days=0)
    with pytest.raises(CareError, match="kind"):
        do_add_activity(access, plan, title="X", kind="chore")


def test_putting_on_hold_and_resuming_keeps_the_tasks(
    plan: CarePlan, record: Patient, coordinator: User
) -> None:
    access = access_as(coordinator, record)
    do_set_plan_status(access, plan, CarePlan.Status.ON_HOLD, "Hospitalisation")
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.ON_HOLD and plan.end_date is None
    assert Task.objects.filter(plan=plan, status=Task.Status.REQUESTED).count() == 4
    do_set_plan_status(access, plan, CarePlan.Status.ACTIVE, "")
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.ACTIVE
    with pytest.raises(CareError, match="already has this status"):
        do_set_plan_status(access, plan, CarePlan.Status.ACTIVE, "")


def test_stopping_the_plan_cancels_its_open_tasks_with_the_reason(
    plan: CarePlan,
    record: Patient,
    coordinator: User,
    nurse: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    access = access_as(coordinator, record)
    done = Task.objects.filter(plan=plan).first()
    assert done is not None
    Task.objects.filter(pk=done.pk).update(status="completed", completed_at=timezone.now())
    with pytest.raises(CareError, match="Say why"):
        do_set_plan_status(access, plan, CarePlan.Status.REVOKED, "  ")

    team_page = Listener(nurse)
    with django_capture_on_commit_callbacks(execute=True):
        do_set_plan_status(access, plan, CarePlan.Status.REVOKED, "Transfert en EMS")

    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.REVOKED
    assert plan.end_date == timezone.localdate()
    cancelled = Task.objects.filter(plan=plan, status=Task.Status.CANCELLED)
    assert cancelled.count() == 3
    assert set(cancelled.values_list("cancel_reason", flat=True)) == {"Transfert en EMS"}
    assert Task.objects.get(pk=done.pk).status == Task.Status.COMPLETED
    audited = AuditEvent.objects.filter(
        action=Action.UPDATE, object_type="care.task", patient_id=str(record.pk)
    )
    assert {e.object_id for e in audited} == {str(t.pk) for t in cancelled}
    assert _updates(plan)[-1]["status"] == "revoked"
    events = team_page.receive(4)
    assert sorted(e["type"] for e in events) == ["care.plan"] + ["care.task"] * 3
    assert {e["status"] for e in events if e["type"] == "care.task"} == {"cancelled"}

    # a closed plan stays closed
    with pytest.raises(CareError, match="closed"):
        do_set_plan_status(access, plan, CarePlan.Status.ACTIVE, "")
    with pytest.raises(CareError, match="closed"):
        do_add_goal(access, plan, description="Encore")
    with pytest.raises(CareError, match="closed"):
        do_set_activity_status(access, plan.activities.first(), "completed")  # type: ignore[arg-type]


def test_completing_a_plan_that_starts_later_ends_on_its_start(
    heart_failure: Pathway, record: Patient, coordinator: User
) -> None:
    later = timezone.localdate() + dt.timedelta(days=10)
    access = access_as(coordinator, record)
    plan = do_create_plan_from_pathway(access, heart_failure, start_date=later)
    do_set_plan_status(access, plan, CarePlan.Status.COMPLETED, "")
    plan.refresh_from_db()
    assert plan.end_date == later
    assert set(Task.objects.filter(plan=plan).values_list("cancel_reason", flat=True)) == {
        "The care plan was completed."
    }


def test_the_follow_up_is_changed(plan: CarePlan, record: Patient, clinician: User) -> None:
    access = access_as(clinician, record)
    do_set_follow_up(access, plan, follow_up_days=14, next_follow_up=TODAY + dt.timedelta(days=10))
    plan.refresh_from_db()
    assert (plan.follow_up_days, plan.next_follow_up) == (14, TODAY + dt.timedelta(days=10))
    with pytest.raises(CareError, match="before the plan starts"):
        do_set_follow_up(access, plan, follow_up_days=14, next_follow_up=TODAY - dt.timedelta(1))


def test_the_patient_and_other_patients_plans_are_read_only(
    plan: CarePlan,
    record: Patient,
    record2: Patient,
    patient: User,
    clinician: User,
) -> None:
    with pytest.raises(CareError, match="Only clinicians"):
        do_add_goal(access_as(patient, record), plan, description="Moi")
    with pytest.raises(CareError, match="Only clinicians"):
        do_set_plan_status(access_as(patient, record), plan, CarePlan.Status.COMPLETED, "")
    with pytest.raises(CareError, match="another patient"):
        do_add_goal(access_as(clinician, record2), plan, description="Ailleurs")
    with pytest.raises(CareError, match="another patient"):
        do_set_plan_status(access_as(clinician, record2), plan, CarePlan.Status.ON_HOLD, "")
