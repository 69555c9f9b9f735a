"""The care access rule: care team and patient see plans; tasks are the team's; meetings are
their participants'; everyone else gets 404 and the refusal is audited."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.http import Http404

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.access import (
    get_case_for_user,
    get_meeting_for_user,
    get_plan_for_user,
    get_task_for_user,
    my_tasks_filter,
    tasks_for_user,
)
from apps.care.models import CarePlan, Meeting, MeetingCase, MeetingParticipant, Task
from apps.records.models import Patient


def test_plan_is_seen_by_team_and_patient(
    make_plan: Callable[..., CarePlan], clinician: User, nurse: User, patient: User
) -> None:
    plan = make_plan()
    for user in (clinician, nurse, patient):
        found, access = get_plan_for_user(user, plan.pk)
        assert found == plan
        assert access.patient == plan.patient


@pytest.mark.parametrize("who", ["outsider", "patient2", "billing_user", "admin_user"])
def test_plan_is_hidden_from_others(
    make_plan: Callable[..., CarePlan], who: str, request: pytest.FixtureRequest
) -> None:
    plan = make_plan()
    user = request.getfixturevalue(who)
    with pytest.raises(Http404):
        get_plan_for_user(user, plan.pk)
    assert AuditEvent.objects.filter(
        action=Action.DENIED, actor_id=user.pk, object_type="care.careplan", object_id=str(plan.pk)
    ).exists()


def test_task_is_the_teams_not_the_patients(
    make_task: Callable[..., Task], nurse: User, patient: User, outsider: User
) -> None:
    task = make_task()
    assert get_task_for_user(nurse, task.pk)[0] == task
    for user in (patient, outsider):
        with pytest.raises(Http404):
            get_task_for_user(user, task.pk)
    assert list(tasks_for_user(nurse)) == [task]
    assert list(tasks_for_user(outsider)) == []
    assert list(Task.objects.filter(my_tasks_filter(nurse))) == [task]


def test_meeting_and_its_cases_are_for_participants(
    clinician: User, nurse: User, outsider: User, record: Patient
) -> None:
    import datetime as dt

    from django.utils import timezone

    start = timezone.now() + dt.timedelta(days=1)
    meeting = Meeting.objects.create(
        organization=clinician.organization,
        title="RCP oncologie",
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        chair=clinician,
        created_by=clinician,
    )
    MeetingParticipant.objects.create(meeting=meeting, user=nurse)
    case = MeetingCase.objects.create(
        meeting=meeting, patient=record, question="Chimiothérapie adjuvante ?", presented_by=nurse
    )
    assert get_meeting_for_user(clinician, meeting.pk) == meeting
    assert get_case_for_user(nurse, case.pk) == case
    assert AuditEvent.objects.filter(actor_id=nurse.pk, patient_id=str(record.pk)).exists()
    with pytest.raises(Http404):
        get_meeting_for_user(outsider, meeting.pk)
    with pytest.raises(Http404):
        get_case_for_user(outsider, case.pk)
    assert AuditEvent.objects.filter(
        action=Action.DENIED, actor_id=outsider.pk, object_type="care.meetingcase"
    ).exists()
