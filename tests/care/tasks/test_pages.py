"""The task pages as the care team uses them: "My tasks" and its tabs, the row and tab
fragments the live updates fetch, a task's page and its actions, and the chart's "Tasks" tab
where tasks and handovers are written."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.care.models import CarePlan, Task, TaskNote
from apps.care.services.tasks import do_complete_task
from apps.records.models import Patient
from tests.care.conftest import access_as
from tests.care.helpers import client_for

MakeTask = Callable[..., Task]
ZURICH = ZoneInfo("Europe/Zurich")


def row_titles(html: str) -> list[str]:
    return re.findall(
        r'<a href="/clinic/tasks/\d+/">(?:<strong>[^<]*</strong> — )?([^<]+)</a>', html
    )


def tab_count(html: str, key: str) -> int:
    match = re.search(rf'data-tab-key="{key}">[^<]*<span class="tab-count">\((\d+)\)', html)
    assert match, key
    return int(match.group(1))


def hours(n: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(hours=n)


# ---------------------------------------------------------------------------------------------
# My tasks


def test_my_tasks_lists_overdue_first_then_priority_then_due_time(
    make_task: MakeTask, nurse: User
) -> None:
    make_task(title="Routine demain", due_at=hours(24))
    make_task(title="Routine ce soir", due_at=hours(3))
    make_task(title="Urgent demain", due_at=hours(24), priority=Task.Priority.URGENT)
    make_task(title="Sans échéance")
    make_task(title="En retard", due_at=hours(-2))

    html = client_for(nurse).get("/clinic/tasks/").content.decode()

    assert row_titles(html) == [
        "En retard",
        "Urgent demain",
        "Routine ce soir",
        "Routine demain",
        "Sans échéance",
    ]
    # overdue is said in words, not only shown in colour
    overdue_row = html[html.index("En retard") : html.index("Urgent demain")]
    assert "Overdue" in overdue_row
    assert html.count(">Overdue<") == 1
    assert tab_count(html, "mine") == 5


def test_the_tabs_and_their_counts(
    make_task: MakeTask, nurse: User, nurse2: User, clinician: User, record: Patient
) -> None:
    mine = make_task(title="Pour moi")
    make_task(title="Pour les infirmières", assignee_role=Role.NURSE)
    make_task(title="Pour l'autre", assignee=nurse2)
    make_task(by=nurse, title="Demandée par moi", assignee=clinician)
    done = make_task(title="Faite")
    do_complete_task(access_as(nurse, record), done, "Fait")
    client = client_for(nurse)

    pages = {
        tab: client.get(f"/clinic/tasks/?tab={tab}").content.decode()
        for tab in ("mine", "profession", "created", "done")
    }

    assert row_titles(pages["mine"]) == ["Pour moi"]
    assert row_titles(pages["profession"]) == ["Pour les infirmières"]
    assert row_titles(pages["created"]) == ["Demandée par moi"]
    assert row_titles(pages["done"]) == ["Faite"]
    counts = {key: tab_count(pages["mine"], key) for key in pages}
    assert counts == {"mine": 1, "profession": 1, "created": 1, "done": 1}
    assert 'aria-current="page" data-tab-key="done"' in pages["done"]
    assert mine.pk  # the rows link to the tasks
    assert f'href="/clinic/tasks/{mine.pk}/"' in pages["mine"]


def test_created_by_me_keeps_done_tasks_after_the_open_ones(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    done = make_task(title="Faite", due_at=hours(-5))
    make_task(title="Ouverte", due_at=hours(5))
    do_complete_task(access_as(nurse, record), done, "Fait")

    html = client_for(clinician).get("/clinic/tasks/?tab=created").content.decode()

    assert row_titles(html) == ["Ouverte", "Faite"]
    assert "Done on" in html
    assert ">Overdue<" not in html  # a done task is never overdue


def test_my_tasks_is_paginated(make_task: MakeTask, nurse: User) -> None:
    for n in range(27):
        make_task(title=f"Appel {n:02d}", due_at=hours(n + 1))
    client = client_for(nurse)

    first = client.get("/clinic/tasks/").content.decode()
    second = client.get("/clinic/tasks/?tab=mine&page=2").content.decode()

    assert len(row_titles(first)) == 25
    assert row_titles(second) == ["Appel 25", "Appel 26"]
    assert "Page 1 of 2" in first
    assert client.get("/clinic/tasks/?page=zzz&tab=nonsense").status_code == 200


def test_the_row_fragment_answers_for_the_tab_shown(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task(title="Appeler")
    nurse_client = client_for(nurse)

    row = nurse_client.get(f"/clinic/tasks/{task.pk}/row/?tab=mine")
    assert row.status_code == 200
    assert f'id="task-{task.pk}"' in row.content.decode()
    assert "Assigned to you" in row.content.decode()
    # not in this tab: the list drops it
    assert nurse_client.get(f"/clinic/tasks/{task.pk}/row/?tab=done").status_code == 204

    do_complete_task(access_as(nurse, record), task, "Fait")
    created = client_for(clinician).get(f"/clinic/tasks/{task.pk}/row/?tab=created")
    assert created.status_code == 200
    assert ">Done<" in created.content.decode()
    # the chart's list of this patient, and of another patient
    chart = nurse_client.get(f"/clinic/tasks/{task.pk}/row/?tab=done&patient={task.patient_id}")
    assert chart.status_code == 200
    assert "<strong>" not in chart.content.decode()  # the chart does not repeat the name
    other = nurse_client.get(f"/clinic/tasks/{task.pk}/row/?tab=done&patient=0")
    assert other.status_code == 204


def test_the_tabs_fragment_gives_fresh_counts(make_task: MakeTask, nurse: User) -> None:
    make_task()
    make_task(assignee_role=Role.NURSE)
    html = client_for(nurse).get("/clinic/tasks/tabs/?tab=profession").content.decode()
    assert tab_count(html, "mine") == 1
    assert tab_count(html, "profession") == 1
    assert 'aria-current="page" data-tab-key="profession"' in html


# ---------------------------------------------------------------------------------------------
# A task's page and its actions


def test_the_task_page_shows_details_history_and_notes(
    make_task: MakeTask, nurse: User, clinician: User, make_plan: Callable[..., CarePlan]
) -> None:
    plan = make_plan(title="Suivi diabète")
    task = make_task(
        kind=Task.Kind.CALL,
        instructions="Demander la glycémie à jeun.",
        due_at=dt.datetime(2031, 3, 30, 8, 30, tzinfo=ZURICH),
        plan=plan,
    )
    client = client_for(nurse)
    client.post(f"/clinic/tasks/{task.pk}/notes/", {"text": "Je rappelle à 14 h."})

    html = client.get(f"/clinic/tasks/{task.pk}/").content.decode()

    assert "Demander la glycémie à jeun." in html
    assert "Je rappelle à 14 h." in html
    assert "Suivi diabète" in html and f'href="/care/plans/{plan.pk}/"' in html
    assert "30/03/2031 08:30" in html or "03/30/2031 8:30" in html  # in Zurich time (DST day)
    history = html[html.index('id="history-title"') : html.index('id="notes-title"')]
    assert "Created" in history and clinician.get_full_name() in history
    assert "Take this task" not in html  # it is already the nurse's
    assert "Mark as done" in html and "Start" in html


def test_claim_start_and_complete_through_the_page(
    make_task: MakeTask, nurse: User, clinician: User
) -> None:
    task = make_task(assignee_role=Role.NURSE, kind=Task.Kind.REVIEW_RESULTS)
    client = client_for(nurse)
    assert "Take this task" in client.get(f"/clinic/tasks/{task.pk}/").content.decode()

    claimed = client.post(f"/clinic/tasks/{task.pk}/assign/", {"me": "1"}, follow=True)
    assert "The task is yours." in claimed.content.decode()
    started = client.post(f"/clinic/tasks/{task.pk}/start/", follow=True)
    assert "The task is in progress." in started.content.decode()
    # a results review needs its report
    refused = client.post(f"/clinic/tasks/{task.pk}/complete/", {"report": ""}, follow=True)
    assert "Write a report" in refused.content.decode()
    assert Task.objects.get(pk=task.pk).status == Task.Status.IN_PROGRESS
    done = client.post(
        f"/clinic/tasks/{task.pk}/complete/", {"report": "Résultats normaux."}, follow=True
    )

    html = done.content.decode()
    assert "The task is done." in html
    task.refresh_from_db()
    assert (task.status, task.assignee_id, task.report) == (
        Task.Status.COMPLETED,
        nurse.pk,
        "Résultats normaux.",
    )
    history = html[html.index('id="history-title"') : html.index('id="notes-title"')]
    for step in ("Created", "Claimed", "Started", "Done"):
        assert step in history
    assert "data-task-actions" not in html  # nothing left to do


def test_hand_over_hold_and_cancel_through_the_page(
    make_task: MakeTask, nurse: User, nurse2: User, clinician: User
) -> None:
    task = make_task()
    client = client_for(clinician)

    handed = client.post(
        f"/clinic/tasks/{task.pk}/assign/", {"assign_to": f"user:{nurse2.pk}"}, follow=True
    )
    assert "The task is handed over." in handed.content.decode()
    assert Task.objects.get(pk=task.pk).assignee_id == nurse2.pk
    client.post(f"/clinic/tasks/{task.pk}/hold/")
    assert Task.objects.get(pk=task.pk).status == Task.Status.ON_HOLD
    no_reason = client.post(f"/clinic/tasks/{task.pk}/cancel/", {"reason": ""}, follow=True)
    assert "This field is required." in no_reason.content.decode()
    assert Task.objects.get(pk=task.pk).status == Task.Status.ON_HOLD
    client.post(f"/clinic/tasks/{task.pk}/cancel/", {"reason": "Patiente hospitalisée"})

    task.refresh_from_db()
    assert (task.status, task.cancel_reason) == (Task.Status.CANCELLED, "Patiente hospitalisée")
    html = client.get(f"/clinic/tasks/{task.pk}/").content.decode()
    assert "Patiente hospitalisée" in html
    assert f"to {nurse2.get_full_name()}" in html


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        ("assign/", {"assign_to": "user:999999"}, "Select a valid choice."),
        ("assign/", {"assign_to": "role:billing"}, "Select a valid choice."),
        ("assign/", {}, "This field is required."),
        ("notes/", {"text": "   "}, "This field is required."),
        ("notes/", {"text": "x" * 5001}, "at most 5000 characters"),
        ("complete/", {"report": "x" * 10_001}, "at most 10000 characters"),
        ("cancel/", {"reason": "x" * 301}, "at most 300 characters"),
    ],
)
def test_bad_action_input_is_a_clear_message(
    make_task: MakeTask, clinician: User, url: str, data: dict[str, str], message: str
) -> None:
    task = make_task()
    response = client_for(clinician).post(f"/clinic/tasks/{task.pk}/{url}", data, follow=True)
    assert response.status_code == 200
    assert message in response.content.decode()
    task.refresh_from_db()
    assert (task.status, task.assignee_role, TaskNote.objects.count()) == ("requested", "", 0)


def test_the_live_fragment_shows_the_current_state(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient
) -> None:
    task = make_task()
    do_complete_task(access_as(nurse, record), task, "Tout va bien.")
    html = client_for(clinician).get(f"/clinic/tasks/{task.pk}/live/").content.decode()
    assert "<span data-task-status>Done</span>" in html
    assert "Tout va bien." in html
    assert "<html" not in html


# ---------------------------------------------------------------------------------------------
# The chart's tab


def test_the_chart_tab_lists_open_and_done_tasks(
    make_task: MakeTask, nurse: User, clinician: User, record: Patient, record2: Patient
) -> None:
    make_task(title="Ouverte")
    done = make_task(title="Faite")
    do_complete_task(access_as(nurse, record), done, "Fait")
    make_task(title="Autre patiente", chart=record2, assignee=clinician)
    client = client_for(clinician)

    opened = client.get(f"/clinic/patients/{record.pk}/tasks/").content.decode()
    closed = client.get(f"/clinic/patients/{record.pk}/tasks/?tab=done").content.decode()

    assert row_titles(opened) == ["Ouverte"]
    assert row_titles(closed) == ["Faite"]
    assert tab_count(opened, "open") == 1 and tab_count(opened, "done") == 1
    assert f'href="/clinic/patients/{record.pk}/tasks/" aria-current="page"' in opened
    assert "New task or handover" in opened
    tabs = client.get(f"/clinic/patients/{record.pk}/tasks/tabs/?tab=done").content.decode()
    assert tab_count(tabs, "done") == 1


def test_a_handover_is_written_from_the_chart(
    physio: User, nurse: User, record: Patient, make_plan: Callable[..., CarePlan]
) -> None:
    plan = make_plan()
    day = timezone.localdate() + dt.timedelta(days=2)

    response = client_for(nurse).post(
        f"/clinic/patients/{record.pk}/tasks/new/",
        {
            "kind": "handover",
            "title": "Transmission : reprise de la marche",
            "instructions": "Chute samedi ; évaluer l'équilibre.",
            "assign_to": f"user:{physio.pk}",
            "priority": "urgent",
            "due_date": day.isoformat(),
            "due_time": "10:30",
            "plan": str(plan.pk),
        },
    )

    task = Task.objects.get(title="Transmission : reprise de la marche")
    assert response.status_code == 302
    assert response["Location"] == f"/clinic/tasks/{task.pk}/"
    assert (task.kind, task.assignee_id, task.requester_id, task.priority, task.plan_id) == (
        "handover",
        physio.pk,
        nurse.pk,
        "urgent",
        plan.pk,
    )
    assert task.due_at == dt.datetime.combine(day, dt.time(10, 30), tzinfo=ZURICH)
    assert task.instructions == "Chute samedi ; évaluer l'équilibre."


def test_a_task_for_a_profession_due_by_the_end_of_a_day(clinician: User, record: Patient) -> None:
    day = timezone.localdate() + dt.timedelta(days=1)
    client_for(clinician).post(
        f"/clinic/patients/{record.pk}/tasks/new/",
        {
            "kind": "call",
            "title": "Appeler la patiente",
            "assign_to": "role:nurse",
            "priority": "routine",
            "due_date": day.isoformat(),
        },
    )
    task = Task.objects.get()
    assert (task.assignee_id, task.assignee_role) == (None, "nurse")
    assert task.due_at == dt.datetime.combine(day, dt.time(23, 59), tzinfo=ZURICH)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": ""}, "This field is required."),
        ({"title": "x" * 201}, "at most 200 characters"),
        ({"kind": "massage"}, "Select a valid choice."),
        ({"assign_to": "user:999999"}, "Select a valid choice."),
        ({"assign_to": ""}, "This field is required."),
        ({"priority": "whenever"}, "Select a valid choice."),
        ({"kind": "handover", "instructions": " "}, "Write the handover for your colleague."),
        ({"due_date": "2020-01-01"}, "This due time has already passed."),
        ({"due_time": "10:00"}, "Give the day the task is due."),
        ({"due_date": "31/31/2031"}, "Enter a valid date."),
    ],
)
def test_the_new_task_form_shows_its_errors(
    clinician: User, record: Patient, change: dict[str, str], message: str
) -> None:
    data = {"kind": "call", "title": "Appeler", "assign_to": "role:nurse", "priority": "routine"}
    response = client_for(clinician).post(
        f"/clinic/patients/{record.pk}/tasks/new/", {**data, **change}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert 'aria-invalid="true"' in html
    assert not Task.objects.exists()


def test_an_assignee_who_left_the_team_is_refused(
    clinician: User, nurse: User, record: Patient
) -> None:
    from apps.records.models import CareTeamMember

    form = {"kind": "call", "title": "Appeler", "assign_to": f"user:{nurse.pk}"}
    CareTeamMember.objects.filter(user=nurse).update(ended_at=timezone.now())
    response = client_for(clinician).post(
        f"/clinic/patients/{record.pk}/tasks/new/", {**form, "priority": "routine"}
    )
    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert not Task.objects.exists()
