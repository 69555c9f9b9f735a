"""The task services: claim and hand over, start, hold, complete with a report, cancel, notes;
who may do each; what is audited, notified and pushed live."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Activity, CarePlan, Task, TaskNote
from apps.care.services import CareError
from apps.care.services.tasks import (
    do_add_task_note,
    do_assign_task,
    do_cancel_task,
    do_complete_task,
    do_create_task,
    do_put_on_hold,
    do_start_task,
)
from apps.notifications.models import Notification
from apps.records.models import Patient
from tests.care.conftest import access_as

MakeTask = Callable[..., Task]


def notes_for(user: User) -> list[Notification]:
    return list(Notification.objects.filter(user=user, kind="care.task").order_by("pk"))


def changes(task: Task) -> list[str]:
    events = AuditEvent.objects.filter(
        object_type="care.task", object_id=str(task.pk), action=Action.UPDATE
    ).order_by("seq")
    return [event.detail.get("change", "") for event in events]


# ---------------------------------------------------------------------------------------------
# Claim and hand over


def test_a_nurse_claims_a_task_waiting_for_nurses(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task(assignee_role=Role.NURSE)

    do_assign_task(access_as(nurse, record), task, nurse)

    task.refresh_from_db()
    assert (task.assignee_id, task.assignee_role) == (nurse.pk, "")
    assert changes(task) == ["claimed"]
    event = AuditEvent.objects.get(
        object_type="care.task", object_id=str(task.pk), action=Action.UPDATE
    )
    assert (event.actor_id, event.patient_id) == (nurse.pk, str(record.pk))
    assert notes_for(nurse) == []  # nobody tells you what you did yourself


def test_the_second_claim_of_the_same_task_fails_clearly(
    make_task: MakeTask, nurse: User, nurse2: User, record: Patient
) -> None:
    # given both nurses opened the unassigned task (each holds their copy)
    task = make_task(assignee_role=Role.NURSE)
    seen_by_nurse2 = Task.objects.get(pk=task.pk)

    do_assign_task(access_as(nurse, record), task, nurse)
    with pytest.raises(CareError, match="has already taken this task"):
        do_assign_task(access_as(nurse2, record), seen_by_nurse2, nurse2)

    task.refresh_from_db()
    assert task.assignee_id == nurse.pk
    assert changes(task) == ["claimed"]


def test_handing_over_notifies_the_new_assignee_and_waits_for_them(
    make_task: MakeTask, nurse: User, nurse2: User, clinician: User, record: Patient
) -> None:
    task = make_task()
    do_start_task(access_as(nurse, record), task)

    do_assign_task(access_as(nurse, record), task, nurse2)

    task.refresh_from_db()
    assert task.assignee_id == nurse2.pk
    assert task.status == Task.Status.REQUESTED  # nurse2 has not started it
    assert [n.title for n in notes_for(nurse2)] == ["A task was assigned to you"]
    assert notes_for(nurse2)[0].link == f"/clinic/tasks/{task.pk}/"


def test_a_task_goes_back_to_a_profession(
    make_task: MakeTask, nurse: User, record: Patient
) -> None:
    task = make_task()
    do_assign_task(access_as(nurse, record), task, None, Role.ALLIED)
    task.refresh_from_db()
    assert (task.assignee_id, task.assignee_role) == (None, Role.ALLIED)


def test_a_colleague_cannot_take_over_someone_elses_task(
    make_task: MakeTask, nurse2: User, coordinator: User, record: Patient
) -> None:
    task = make_task()  # the nurse's
    with pytest.raises(CareError, match="has already taken"):
        do_assign_task(access_as(nurse2, record), task, nurse2)
    with pytest.raises(CareError, match="Only the requester, the assignee or a care coordinator"):
        do_assign_task(access_as(nurse2, record), task, coordinator)
    # a coordinator organises the team's work
    do_assign_task(access_as(coordinator, record), task, nurse2)
    assert Task.objects.get(pk=task.pk).assignee_id == nurse2.pk


def test_the_assignee_must_be_a_clinician_of_the_care_team(
    make_task: MakeTask, clinician: User, outsider: User, billing_user: User, record: Patient
) -> None:
    task = make_task()
    for somebody in (outsider, billing_user):
        with pytest.raises(CareError):
            do_assign_task(access_as(clinician, record), task, somebody)
    with pytest.raises(CareError, match="Choose a colleague"):
        do_assign_task(access_as(clinician, record), task, None, "billing")
    assert Task.objects.get(pk=task.pk).assignee_role == ""


def test_a_task_of_another_patient_is_refused(
    make_task: MakeTask, clinician: User, record2: Patient
) -> None:
    task = make_task()
    with pytest.raises(CareError, match="another patient"):
        do_start_task(access_as(clinician, record2), task)


def test_the_patient_cannot_work_on_tasks(
    make_task: MakeTask, patient: User, record: Patient
) -> None:
    task = make_task()
    with pytest.raises(CareError, match="Only clinicians"):
        do_add_task_note(access_as(patient, record), task, "Coucou")
    with pytest.raises(CareError, match="Only clinicians"):
        do_create_task(access_as(patient, record), kind=Task.Kind.CALL, title="Moi")


# ---------------------------------------------------------------------------------------------
# Start, hold, complete


def test_start_then_hold_then_resume(make_task: MakeTask, nurse: User, record: Patient) -> None:
    task = make_task()
    access = access_as(nurse, record)

    do_start_task(access, task)
    assert (task.status, task.started_at is not None) == (Task.Status.IN_PROGRESS, True)
    started = task.started_at
    with pytest.raises(CareError, match="already in progress"):
        do_start_task(access, task)
    do_put_on_hold(access, task)
    assert task.status == Task.Status.ON_HOLD
    with pytest.raises(CareError, match="already on hold"):
        do_put_on_hold(access, task)
    do_start_task(access, task)

    task.refresh_from_db()
    assert task.status == Task.Status.IN_PROGRESS
    assert task.started_at == started  # when the work first began
    assert changes(task) == ["started", "on-hold", "started"]


def test_starting_an_unassigned_task_takes_it(
    make_task: MakeTask, nurse2: User, record: Patient
) -> None:
    task = make_task(assignee_role=Role.NURSE)
    do_start_task(access_as(nurse2, record), task)
    assert Task.objects.get(pk=task.pk).assignee_id == nurse2.pk


def test_only_the_assignee_starts_their_task(
    make_task: MakeTask, nurse2: User, record: Patient
) -> None:
    task = make_task()
    with pytest.raises(CareError, match="assigned to"):
        do_start_task(access_as(nurse2, record), task)


def test_completing_records_who_when_and_the_report_and_tells_the_requester(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task(kind=Task.Kind.WOUND_CARE)

    do_complete_task(access_as(nurse, record), task, "  Plaie propre, pansement refait.  ")

    task.refresh_from_db()
    assert task.status == Task.Status.COMPLETED
    assert task.completed_by_id == nurse.pk
    assert task.completed_at is not None
    assert task.report == "Plaie propre, pansement refait."
    assert changes(task) == ["completed"]
    told = notes_for(clinician)
    assert [n.title for n in told] == ["A task you asked for is done"]
    # the notification may go by email: no clinical words in it
    assert "Plaie" not in told[0].title + told[0].body


@pytest.mark.parametrize("kind", [Task.Kind.REVIEW_RESULTS, Task.Kind.HANDOVER])
def test_some_kinds_need_a_report(
    make_task: MakeTask, nurse: User, record: Patient, kind: str
) -> None:
    task = make_task(kind=kind)
    with pytest.raises(CareError, match="Write a report"):
        do_complete_task(access_as(nurse, record), task, "   ")
    assert Task.objects.get(pk=task.pk).status == Task.Status.REQUESTED
    do_complete_task(access_as(nurse, record), task, "Vu, rien à signaler.")
    assert Task.objects.get(pk=task.pk).status == Task.Status.COMPLETED


def test_a_call_may_be_done_without_a_report(
    make_task: MakeTask, nurse: User, record: Patient
) -> None:
    task = make_task(kind=Task.Kind.CALL)
    do_complete_task(access_as(nurse, record), task, "")
    assert Task.objects.get(pk=task.pk).status == Task.Status.COMPLETED


def test_a_done_task_cannot_be_done_again_or_changed(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task()
    stale = Task.objects.get(pk=task.pk)
    do_complete_task(access_as(nurse, record), task, "Fait")
    for change in (
        lambda: do_complete_task(access_as(nurse, record), stale, "Encore"),
        lambda: do_start_task(access_as(nurse, record), stale),
        lambda: do_put_on_hold(access_as(nurse, record), stale),
        lambda: do_cancel_task(access_as(clinician, record), stale, "Plus utile"),
        lambda: do_assign_task(access_as(clinician, record), stale, clinician),
    ):
        with pytest.raises(CareError, match="already done"):
            change()
    assert Task.objects.get(pk=task.pk).report == "Fait"


def test_somebody_else_cannot_complete_an_assigned_task(
    make_task: MakeTask, nurse2: User, clinician: User, record: Patient
) -> None:
    task = make_task()
    with pytest.raises(CareError, match="assigned to"):
        do_complete_task(access_as(nurse2, record), task, "Fait")
    # the requester may close it themselves
    do_complete_task(access_as(clinician, record), task, "Fait moi-même")
    assert Task.objects.get(pk=task.pk).completed_by_id == clinician.pk


def test_completing_the_task_of_a_one_off_activity_completes_it(
    make_plan: Callable[..., CarePlan],
    nurse: User,
    clinician: User,
    record: Patient,
    listen: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    plan = make_plan()
    once = Activity.objects.create(plan=plan, title="Contrôle plaie", kind=Activity.Kind.TASK)
    weekly = Activity.objects.create(
        plan=plan, title="Pesée", kind=Activity.Kind.TASK, repeat_days=7
    )
    access = access_as(clinician, record)
    first = do_create_task(
        access, kind="wound-care", title="A", assignee=nurse, plan=plan, activity=once
    )
    second = do_create_task(
        access, kind="other", title="B", assignee=nurse, plan=plan, activity=weekly
    )
    page = listen(clinician)

    with django_capture_on_commit_callbacks(execute=True):
        do_complete_task(access_as(nurse, record), first, "Fait")
    do_complete_task(access_as(nurse, record), second, "Fait")

    once.refresh_from_db()
    weekly.refresh_from_db()
    assert once.status == Activity.Status.COMPLETED
    assert once.completed_at == Task.objects.get(pk=first.pk).completed_at
    assert weekly.status == Activity.Status.NOT_STARTED  # it goes on every week
    kinds = [event["type"] for event in page.receive(3) if event["type"].startswith("care.")]
    assert sorted(kinds) == ["care.plan", "care.task"]  # the second task's came after commit
    assert AuditEvent.objects.filter(
        object_type="care.careplan", object_id=str(plan.pk), detail__completed_activity=once.pk
    ).exists()


def test_completing_the_task_of_a_repeating_activity_moves_it_to_the_next_occurrence(
    make_plan: Callable[..., CarePlan], nurse: User, clinician: User, record: Patient
) -> None:
    # given a weekly call with its task for this week
    plan = make_plan()
    due = dt.date(2026, 11, 2)
    weekly = Activity.objects.create(
        plan=plan,
        title="Appel hebdomadaire",
        kind=Activity.Kind.TASK,
        repeat_days=7,
        due_date=due,
        responsible_role="nurse",
    )
    access = access_as(clinician, record)
    task = do_create_task(
        access, kind="call", title="Appel", assignee_role="nurse", plan=plan, activity=weekly
    )

    # when the nurse completes the task
    do_complete_task(access_as(nurse, record), task, "Patiente stable")

    # then the activity is due a week later, still open, and next week's task exists
    weekly.refresh_from_db()
    assert weekly.due_date == due + dt.timedelta(days=7)
    assert weekly.completed_at is not None
    assert weekly.status != Activity.Status.COMPLETED
    following = Task.objects.filter(activity=weekly).exclude(pk=task.pk)
    assert following.count() == 1
    assert following.get().status == Task.Status.REQUESTED


# ---------------------------------------------------------------------------------------------
# Cancel


def test_cancelling_needs_a_reason_and_tells_the_assignee(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task()
    with pytest.raises(CareError, match="Say why"):
        do_cancel_task(access_as(clinician, record), task, "  ")
    with pytest.raises(CareError, match="too long"):
        do_cancel_task(access_as(clinician, record), task, "x" * 301)

    do_cancel_task(access_as(clinician, record), task, "Patiente hospitalisée")

    task.refresh_from_db()
    assert (task.status, task.cancel_reason) == (Task.Status.CANCELLED, "Patiente hospitalisée")
    assert [n.title for n in notes_for(nurse)] == [
        "A task was assigned to you",
        "A task was cancelled",
    ]


def test_only_requester_assignee_or_coordinator_cancel(
    make_task: MakeTask, nurse2: User, record: Patient
) -> None:
    task = make_task()
    with pytest.raises(CareError, match="Only the requester"):
        do_cancel_task(access_as(nurse2, record), task, "Pas moi")
    with pytest.raises(CareError, match="Only the requester"):
        do_put_on_hold(access_as(nurse2, record), task)
    assert Task.objects.get(pk=task.pk).status == Task.Status.REQUESTED


# ---------------------------------------------------------------------------------------------
# Notes


def test_a_note_of_the_assignee_reaches_the_requester_and_back(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task()

    do_add_task_note(access_as(nurse, record), task, "Patiente injoignable, je rappelle à 14 h.")
    do_add_task_note(access_as(clinician, record), task, "Merci, sinon appeler sa fille.")

    assert [n.text for n in TaskNote.objects.filter(task=task)] == [
        "Patiente injoignable, je rappelle à 14 h.",
        "Merci, sinon appeler sa fille.",
    ]
    to_requester = notes_for(clinician)
    assert [n.title for n in to_requester] == ["New note on a task"]
    assert "injoignable" not in to_requester[0].title + to_requester[0].body
    assert [n.title for n in notes_for(nurse)] == [
        "A task was assigned to you",
        "New note on a task",
    ]
    assert changes(task) == ["note", "note"]


def test_a_third_colleagues_note_reaches_both_parties(
    make_task: MakeTask, nurse: User, clinician: User, coordinator: User, record: Patient
) -> None:
    task = make_task()
    do_add_task_note(access_as(coordinator, record), task, "La patiente est en vacances.")
    assert [n.title for n in notes_for(clinician)] == ["New note on a task"]
    assert notes_for(nurse)[-1].title == "New note on a task"
    assert notes_for(coordinator) == []


def test_an_empty_or_huge_note_is_refused(
    make_task: MakeTask, nurse: User, record: Patient
) -> None:
    task = make_task()
    for text in ("", "   ", "x" * 5001):
        with pytest.raises(CareError):
            do_add_task_note(access_as(nurse, record), task, text)
    assert not TaskNote.objects.exists()


# ---------------------------------------------------------------------------------------------
# Live events


def test_every_change_is_pushed_to_the_care_team_only(
    make_task: MakeTask,
    nurse: User,
    clinician: User,
    outsider: User,
    record: Patient,
    listen: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    task = make_task(assignee_role=Role.NURSE)
    team_page, stranger = listen(clinician), listen(outsider)
    access = access_as(nurse, record)

    with django_capture_on_commit_callbacks(execute=True):
        do_assign_task(access, task, nurse)
        do_start_task(access, task)
        do_add_task_note(access, task, "En cours")
        do_put_on_hold(access, task)
        do_complete_task(access, task, "Fait")

    events = [e for e in team_page.receive(5) if e["type"] == "care.task"]
    assert [e["status"] for e in events] == [
        "requested",
        "in-progress",
        "in-progress",
        "on-hold",
        "completed",
    ]
    assert {e["id"] for e in events} == {task.pk}
    assert events[-1]["url"] == f"/clinic/tasks/{task.pk}/"
    assert events[0]["assignee_id"] == nurse.pk
    assert stranger.receive(0, timeout=0.3) == []


def test_an_urgent_task_for_a_profession_is_announced_to_it_a_routine_one_is_not(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    urgent = make_task(assignee=None, assignee_role=Role.NURSE, priority=Task.Priority.URGENT)
    routine = make_task(assignee=None, assignee_role=Role.NURSE, title="Appel de routine")

    assert Notification.objects.filter(user=nurse, ref=f"care.task:{urgent.pk}").count() == 1
    assert not Notification.objects.filter(ref=f"care.task:{routine.pk}").exists()
    assert not Notification.objects.filter(user=clinician, ref=f"care.task:{urgent.pk}").exists()
