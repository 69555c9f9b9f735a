"""The clinic home shows a clinician their open and overdue tasks and the proposals to review
of their patients, other people's work is not counted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.utils import timezone

from apps.accounts.models import Role, User
from apps.care.models import Proposal, Rule, Task
from apps.records.models import Patient
from tests.care.helpers import client_for


def _proposal(chart: Patient) -> Proposal:
    rule = Rule.objects.create(
        code="test-rule", kind=Rule.Kind.INTERACTION, title="Interaction", rationale="—"
    )
    return Proposal.objects.create(patient=chart, rule=rule, rule_code=rule.code, fingerprint="x")


def test_the_clinic_home_counts_my_tasks_and_proposals(
    make_task: Callable[..., Task],
    nurse: User,
    outsider: User,
    record: Patient,
) -> None:
    # given two open tasks for the nurse, one overdue, one done, one for another profession
    make_task(due_at=timezone.now() - dt.timedelta(hours=2))
    make_task(title="Pansement")
    done = make_task(title="Fait")
    Task.objects.filter(pk=done.pk).update(
        status=Task.Status.COMPLETED, completed_at=timezone.now()
    )
    make_task(title="Rééducation", assignee_role=Role.ALLIED, assignee=None)
    _proposal(record)

    # when the nurse opens the clinic home
    page = client_for(nurse).get("/clinic/").content.decode()

    # then the card counts her two open tasks, one overdue, and the proposal
    assert "2 open" in page
    assert "1 overdue" in page
    assert "1 to review" in page
    assert "/clinic/decision-support/" in page
    # an outsider sees none of it
    other = client_for(outsider).get("/clinic/").content.decode()
    assert "open</span>" not in other and "overdue</span>" not in other
