"""The plan page and the chart's care-plan tab make a fixed number of queries, however many
goals, activities, tasks, readings or plans there are."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.care.models import Activity, CarePlan, Pathway
from apps.care.services.plans import (
    do_add_activity,
    do_add_goal,
    do_create_plan,
    do_create_plan_from_pathway,
    do_set_activity_status,
)
from apps.care.services.tasks import do_create_task
from apps.records.models import CodeSystem, Concept, Observation, Patient
from tests.care.conftest import access_as
from tests.care.helpers import client_for

TODAY = timezone.localdate()


def _count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def _concept(code: str, unit: str) -> Concept:
    return Concept.objects.create(
        system=CodeSystem.LOINC, code=code, display=code, category="vital-signs", unit=unit
    )


def _readings(chart: Patient, concept: Concept, count: int) -> None:
    now = timezone.now()
    Observation.objects.bulk_create(
        Observation(
            patient=chart,
            code=concept,
            category="vital-signs",
            value=Decimal(120 + n % 10),
            unit=concept.unit,
            effective_at=now - dt.timedelta(hours=6 * n),
        )
        for n in range(count)
    )


def test_the_plan_page_queries_do_not_grow(
    heart_failure: Pathway,
    record: Patient,
    coordinator: User,
    nurse: User,
    patient: User,
    django_assert_num_queries: Any,
) -> None:
    systolic = _concept("8480-6", "mm[Hg]")
    weight = _concept("29463-7", "kg")
    access = access_as(coordinator, record)
    plan = do_create_plan_from_pathway(access, heart_failure, start_date=TODAY)
    _readings(record, systolic, 3)
    url = f"/care/plans/{plan.pk}/"
    counts, clients = {}, {}
    for user in (nurse, patient):
        client = clients[user.pk] = client_for(user)
        client.get(url)  # sessions and caches warmed
        client.get(f"{url}sections/")
        counts[user.pk] = (_count(client, url), _count(client, f"{url}sections/"))

    # when the plan grows: goals on other measurements, activities, tasks, many readings
    for n in range(6):
        do_add_goal(access, plan, description=f"But {n}", measure="29463-7" if n % 2 else "")
        activity = do_add_activity(
            access, plan, title=f"Activité {n}", kind=Activity.Kind.TASK, responsible=nurse
        )
        do_create_task(
            access,
            kind="call",
            title=f"Tâche {n}",
            assignee_role=Role.NURSE,
            plan=plan,
            activity=activity,
        )
        if n % 2:
            do_set_activity_status(access, activity, Activity.Status.COMPLETED)
    _readings(record, systolic, 200)
    _readings(record, weight, 50)

    # then each page makes as many queries as before
    for user in (nurse, patient):
        client = clients[user.pk]
        page, sections = counts[user.pk]
        with django_assert_num_queries(page):
            response = client.get(url)
        assert response.content.decode().count('data-goal="') == 10
        with django_assert_num_queries(sections):
            client.get(f"{url}sections/")


def test_the_chart_tab_queries_do_not_grow(
    pathways: dict[str, Pathway],
    record: Patient,
    coordinator: User,
    nurse: User,
    django_assert_num_queries: Any,
) -> None:
    access = access_as(coordinator, record)
    do_create_plan_from_pathway(access, pathways["heart-failure"], start_date=TODAY)
    client = client_for(nurse)
    url = f"/clinic/patients/{record.pk}/care-plans/"
    client.get(url)
    one = _count(client, url)

    do_create_plan_from_pathway(access, pathways["copd"], start_date=TODAY, coordinator=nurse)
    do_create_plan_from_pathway(access, pathways["post-operative"], start_date=TODAY)
    for n in range(5):
        closed = do_create_plan(
            access,
            title=f"Ancien {n}",
            description="",
            start_date=TODAY,
            coordinator=coordinator,
            follow_up_days=30,
        )
        CarePlan.objects.filter(pk=closed.pk).update(status="completed")

    with django_assert_num_queries(one):
        response = client.get(url)
    assert response.content.decode().count("data-plan-row=") == 8
