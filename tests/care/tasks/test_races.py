"""Two people acting on the same task at the same moment, in two real database connections:
the row lock lets one win; the other gets a clear error, never a silent overwrite."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone, translation

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Task
from apps.care.services import CareError
from apps.care.services.tasks import do_assign_task, do_complete_task, flag_overdue_tasks
from apps.notifications.models import Notification
from apps.records.models import Patient
from tests.care.conftest import access_as

pytestmark = pytest.mark.django_db(transaction=True)


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    language = translation.get_language()  # the active language is per thread

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            with translation.override(language):
                results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test looks at what each one got
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_two_nurses_claim_the_same_task_one_wins(
    make_task: Callable[..., Task], nurse: User, nurse2: User, record: Patient
) -> None:
    task = make_task(assignee_role=Role.NURSE)
    claims = [
        lambda: do_assign_task(access_as(nurse, record), Task.objects.get(pk=task.pk), nurse),
        lambda: do_assign_task(access_as(nurse2, record), Task.objects.get(pk=task.pk), nurse2),
    ]

    results = at_once(*claims)

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results
    assert isinstance(errors[0], CareError)
    assert "has already taken this task" in str(errors[0])
    task.refresh_from_db()
    winner = nurse if not isinstance(results[0], Exception) else nurse2
    assert task.assignee_id == winner.pk
    assert winner.get_full_name() in str(errors[0])
    claimed = AuditEvent.objects.filter(
        object_type="care.task", object_id=str(task.pk), action=Action.UPDATE
    )
    assert [event.detail["change"] for event in claimed] == ["claimed"]


def test_completed_twice_at_once_is_completed_once(
    make_task: Callable[..., Task], nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task()
    results = at_once(
        lambda: do_complete_task(access_as(nurse, record), Task.objects.get(pk=task.pk), "A"),
        lambda: do_complete_task(access_as(clinician, record), Task.objects.get(pk=task.pk), "B"),
    )
    assert sum(isinstance(r, CareError) for r in results) == 1, results
    task.refresh_from_db()
    assert task.report in ("A", "B")
    assert task.completed_by_id == (nurse.pk if task.report == "A" else clinician.pk)


def test_two_overdue_checks_at_once_notify_once(
    make_task: Callable[..., Task], nurse: User, record: Patient
) -> None:

    for n in range(5):
        make_task(title=f"Appel {n}", due_at=timezone.now() - dt.timedelta(hours=1))
    before = Notification.objects.filter(user=nurse, title="A task is overdue").count()

    results = at_once(flag_overdue_tasks, flag_overdue_tasks)

    assert sum(results) == 5, results
    after = Notification.objects.filter(user=nurse, title="A task is overdue").count()
    assert after - before == 5
