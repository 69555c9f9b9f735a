"""The task lists make a fixed number of queries, however many tasks they show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.care.models import CarePlan, Task
from apps.care.services.tasks import do_add_task_note, do_complete_task
from apps.records.models import Patient
from tests.care.conftest import access_as
from tests.care.helpers import client_for


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def many_tasks(
    make_task: Callable[..., Task], plan: CarePlan, nurse: User, clinician: User, record: Patient
) -> None:
    """Tasks of every shape: overdue, for a profession, with a plan, notes, done, by the nurse."""
    now = timezone.now()
    for n in range(4):
        make_task(title=f"Appel {n}", due_at=now + dt.timedelta(hours=n - 2), plan=plan)
        make_task(title=f"Profession {n}", assignee_role=Role.NURSE, priority="urgent")
        task = make_task(by=nurse, title=f"Pour le médecin {n}", assignee=clinician)
        do_add_task_note(access_as(nurse, record), task, "Note")
        done = make_task(title=f"Faite {n}")
        do_complete_task(access_as(nurse, record), done, "Fait")


def test_my_tasks_queries_do_not_grow_with_tasks(
    make_task: Callable[..., Task],
    make_plan: Callable[..., CarePlan],
    nurse: User,
    clinician: User,
    record: Patient,
    django_assert_num_queries: Any,
) -> None:
    plan = make_plan()
    make_task(title="Première", plan=plan)
    do_complete_task(access_as(nurse, record), make_task(title="Déjà faite"), "Fait")
    client = client_for(nurse)
    client.get("/clinic/tasks/")  # sessions and caches warmed
    one = {tab: count_queries(client, f"/clinic/tasks/?tab={tab}") for tab in ("mine", "done")}
    many_tasks(make_task, plan, nurse, clinician, record)

    for tab, expected_rows in (("mine", 5), ("done", 5)):
        with django_assert_num_queries(one[tab]):
            response = client.get(f"/clinic/tasks/?tab={tab}")
        assert response.content.decode().count('class="thread-row task-row') == expected_rows


def test_the_chart_tab_queries_do_not_grow_with_tasks(
    make_task: Callable[..., Task],
    make_plan: Callable[..., CarePlan],
    nurse: User,
    clinician: User,
    record: Patient,
    django_assert_num_queries: Any,
) -> None:
    plan = make_plan()
    make_task(title="Première", plan=plan)
    client = client_for(clinician)
    url = f"/clinic/patients/{record.pk}/tasks/"
    client.get(url)
    one = count_queries(client, url)
    many_tasks(make_task, plan, nurse, clinician, record)

    with django_assert_num_queries(one):
        response = client.get(url)
    assert response.content.decode().count('class="thread-row task-row') == 13


def test_the_task_page_queries_do_not_grow_with_notes(
    make_task: Callable[..., Task],
    nurse: User,
    clinician: User,
    record: Patient,
    django_assert_num_queries: Any,
) -> None:
    task = make_task()
    do_add_task_note(access_as(nurse, record), task, "Première note")
    client = client_for(clinician)
    url = f"/clinic/tasks/{task.pk}/"
    client.get(url)
    one = count_queries(client, url)
    for n in range(6):
        author = nurse if n % 2 else clinician
        do_add_task_note(access_as(author, record), task, f"Note {n}")

    with django_assert_num_queries(one):
        response = client.get(url)
    assert response.content.decode().count('<li id="note-') == 7
