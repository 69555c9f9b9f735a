"""The scheduled overdue check: each open task past its due time is notified once — to its
assignee, or to the care team's members of its profession, or else to its requester."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent
from apps.care.models import Task
from apps.care.services.tasks import (
    do_assign_task,
    do_complete_task,
    flag_overdue_tasks,
)
from apps.care.tasks import flag_overdue_tasks as celery_flag_overdue_tasks
from apps.notifications.models import Notification
from apps.records.models import Patient
from tests.care.conftest import access_as

MakeTask = Callable[..., Task]
OVERDUE = "A task is overdue"


def overdue_notices(user: User) -> list[Notification]:
    return list(Notification.objects.filter(user=user, title=OVERDUE))


def ago(hours: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(hours=hours)


def test_an_overdue_task_is_flagged_once(make_task: MakeTask, nurse: User) -> None:
    task = make_task(due_at=ago(2))

    assert flag_overdue_tasks() == 1
    assert flag_overdue_tasks() == 0  # the second run finds nothing new

    notices = overdue_notices(nurse)
    assert len(notices) == 1
    assert notices[0].link == f"/clinic/tasks/{task.pk}/"
    assert notices[0].kind == "care.task"
    assert "Appeler" not in notices[0].title + notices[0].body  # no clinical words
    task.refresh_from_db()
    assert task.overdue_notified_at is not None
    audit = AuditEvent.objects.get(object_type="care.task", detail__change="overdue")
    assert audit.patient_id == str(task.patient_id)
    assert audit.detail["notified"] == [nurse.pk]


def test_tasks_not_yet_due_done_or_without_due_time_are_left(
    make_task: MakeTask, nurse: User, record: Patient
) -> None:
    make_task(title="Demain", due_at=timezone.now() + dt.timedelta(days=1))
    make_task(title="Sans échéance")
    done = make_task(title="Faite", due_at=ago(1))
    do_complete_task(access_as(nurse, record), done, "Fait")

    assert flag_overdue_tasks() == 0
    assert overdue_notices(nurse) == []


def test_the_check_looks_at_the_time_it_is_given(make_task: MakeTask, nurse: User) -> None:
    due = timezone.now() + dt.timedelta(hours=2)
    make_task(due_at=due)
    assert flag_overdue_tasks(now=due - dt.timedelta(minutes=1)) == 0
    assert flag_overdue_tasks(now=due + dt.timedelta(minutes=1)) == 1


def test_an_unassigned_task_is_flagged_to_the_profession_on_the_team(
    make_task: MakeTask, nurse: User, nurse2: User, clinician: User, coordinator: User
) -> None:
    make_task(assignee_role=Role.NURSE, due_at=ago(1))

    assert flag_overdue_tasks() == 1

    assert len(overdue_notices(nurse)) == 1
    assert len(overdue_notices(nurse2)) == 1
    assert overdue_notices(clinician) == overdue_notices(coordinator) == []


def test_without_anyone_of_the_profession_the_requester_hears_of_it(
    make_task: MakeTask, clinician: User
) -> None:
    make_task(assignee_role=Role.ALLIED, due_at=ago(1))  # no therapist on this team
    assert flag_overdue_tasks() == 1
    assert len(overdue_notices(clinician)) == 1


def test_handed_over_an_overdue_task_is_flagged_again_for_its_new_owner(
    make_task: MakeTask, nurse: User, nurse2: User, clinician: User, record: Patient
) -> None:
    task = make_task(due_at=ago(1))
    flag_overdue_tasks()

    do_assign_task(access_as(clinician, record), task, nurse2)
    assert flag_overdue_tasks() == 1

    assert len(overdue_notices(nurse)) == 1
    assert len(overdue_notices(nurse2)) == 1


def test_the_scheduled_task_runs_the_check(make_task: MakeTask, nurse: User) -> None:
    make_task(due_at=ago(1))
    result: Any = celery_flag_overdue_tasks.delay()
    assert result.get() == 1
    assert len(overdue_notices(nurse)) == 1
