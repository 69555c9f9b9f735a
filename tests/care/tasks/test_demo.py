"""The demo tasks of Marie Dubois's care team: made through the services, once."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts import demo as accounts_demo
from apps.accounts.demo import demo_email
from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.care import demo_tasks
from apps.care.access import my_tasks_filter, tasks_for_user
from apps.care.models import Task, TaskNote
from apps.records import demo as records_demo
from apps.records.models import Patient


def _seed() -> dict[str, Any]:
    context: dict[str, Any] = {"logins": []}
    accounts_demo.seed(context)
    records_demo.seed(context)
    demo_tasks.seed(context)
    return context


def _user(handle: str) -> User:
    return User.objects.get(email=demo_email(handle))


@pytest.mark.django_db
def test_the_demo_tasks_are_made_once_for_the_right_people() -> None:
    _seed()
    counts = (Task.objects.count(), TaskNote.objects.count(), AuditEvent.objects.count())
    demo_tasks.seed(_seed_context_again())

    assert (Task.objects.count(), TaskNote.objects.count()) == counts[:2]
    marie = Patient.objects.get(user__email=demo_email("patient"))
    nurse, physician, physio = _user("nurse"), _user("physician"), _user("physio")
    call = Task.objects.get(patient=marie, title=demo_tasks.CALL)
    assert (call.assignee, call.requester, call.is_overdue()) == (nurse, physician, True)
    review = Task.objects.get(patient=marie, title=demo_tasks.REVIEW)
    assert (review.kind, review.assignee, review.is_overdue()) == (
        "review-results",
        physician,
        False,
    )
    handover = Task.objects.get(patient=marie, title=demo_tasks.HANDOVER)
    assert (handover.kind, handover.requester, handover.assignee) == ("handover", nurse, physio)
    assert handover.instructions and handover.notes.count() == 1
    done = Task.objects.get(patient=marie, title=demo_tasks.DRESSING)
    assert (done.status, done.completed_by) == ("completed", nurse)
    assert "Plaie propre" in done.report
    # made through the services: audited, and in the people's lists
    assert AuditEvent.objects.filter(object_type="care.task", action="create").count() == 4
    assert set(tasks_for_user(nurse).filter(my_tasks_filter(nurse), status="requested")) == {call}


def _seed_context_again() -> dict[str, Any]:
    context: dict[str, Any] = {"logins": []}
    accounts_demo.seed(context)
    return context
