"""The care-plan pages: the chart tab, the new-plan page, the plan page for the team and the
patient's read-only view; every page and endpoint refuses outsiders with an audited 404."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Activity, CarePlan, Goal, Pathway, Task
from apps.care.services.plans import do_create_plan_from_pathway
from apps.records.models import CodeSystem, Concept, Observation, Patient
from tests.care.conftest import access_as
from tests.care.helpers import client_for, denials

TODAY = timezone.localdate()


@pytest.fixture
def plan(heart_failure: Pathway, record: Patient, coordinator: User) -> CarePlan:
    return do_create_plan_from_pathway(
        access_as(coordinator, record), heart_failure, start_date=TODAY - dt.timedelta(days=10)
    )


@pytest.fixture
def systolic(db: None) -> Concept:
    return Concept.objects.create(
        system=CodeSystem.LOINC,
        code="8480-6",
        display="Systolic blood pressure",
        display_fr="Pression artérielle systolique",
        category="vital-signs",
        unit="mm[Hg]",
        low=Decimal(90),
        high=Decimal(139),
    )


def _reading(chart: Patient, concept: Concept, value: int, days_ago: float) -> Observation:
    return Observation.objects.create(
        patient=chart,
        code=concept,
        category="vital-signs",
        value=Decimal(value),
        unit=concept.unit,
        effective_at=timezone.now() - dt.timedelta(days=days_ago),
        source="device",
    )


def test_the_chart_tab_lists_the_plans_with_their_progress(
    plan: CarePlan, record: Patient, nurse: User, coordinator: User
) -> None:
    activity = plan.activities.get(kind=Activity.Kind.MEDICATION)
    activity.status = Activity.Status.COMPLETED
    activity.save()
    CarePlan.objects.create(
        patient=record, title="Ancien suivi", status="completed", created_by=coordinator
    )
    response = client_for(nurse).get(f"/clinic/patients/{record.pk}/care-plans/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("Heart failure") < html.index("Ancien suivi")  # open plans first
    assert f'href="/care/plans/{plan.pk}/"' in html
    assert 'value="17" max="100"' in html  # 1 of 6 activities done
    assert "Pathway: Heart failure (version 1)" in html
    assert f'href="/clinic/patients/{record.pk}/care-plans/new/"' in html
    assert 'aria-current="page">Care plan<' in html
    # the list follows the patient's plan changes live (static/js/live-sections.js)
    assert f'data-live-events=\'[{{"type": "care.plan", "patient": "{record.pk}"}}]\'' in html
    assert 'data-live-section="plans"' in html and "js/live-sections" in html
    assert AuditEvent.objects.filter(
        action=Action.READ, actor_id=nurse.pk, patient_id=str(record.pk)
    ).exists()


def test_the_new_plan_page_shows_what_each_pathway_creates(
    pathways: dict[str, Pathway], record: Patient, coordinator: User, nurse: User, clinician: User
) -> None:
    response = client_for(coordinator).get(f"/clinic/patients/{record.pk}/care-plans/new/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("Heart failure", "Type 2 diabetes", "Post-operative follow-up", "COPD"):
        assert name in html
    assert "Stable weight: no gain of more than 2 kg in 3 days" in html
    assert "Nurse follow-up call — Nurse, day 7, then every 7 days" in html
    assert "rises by more than 2 kg within 3 days" in html
    assert "days 1, 3, 7, 14" in html
    assert "From scratch" in html
    # the coordinator is chosen among the care team
    options = re.findall(r'<option value="(\d+)"', html)
    assert {int(pk) for pk in options} == {coordinator.pk, nurse.pk, clinician.pk}


def test_a_coordinator_creates_a_plan_from_a_pathway_in_the_chart(
    heart_failure: Pathway, record: Patient, coordinator: User, nurse: User
) -> None:
    client = client_for(coordinator)
    response = client.post(
        f"/clinic/patients/{record.pk}/care-plans/new/",
        {"pathway": heart_failure.pk, "start_date": TODAY.isoformat(), "coordinator": nurse.pk},
    )
    plan = CarePlan.objects.get(patient=record)
    assert response.status_code == 302
    assert response["Location"] == f"/care/plans/{plan.pk}/"
    assert plan.coordinator == nurse and plan.title == "Heart failure"
    assert Task.objects.filter(plan=plan).count() == 4

    # a second one on the same pathway is refused on the form, nothing typed lost
    again = client.post(
        f"/clinic/patients/{record.pk}/care-plans/new/",
        {"pathway": heart_failure.pk, "start_date": TODAY.isoformat(), "title": "Bis"},
    )
    assert again.status_code == 400
    assert "already has an open plan on this pathway" in again.content.decode()
    assert 'value="Bis"' in again.content.decode()


def test_a_plan_from_scratch_in_the_chart(
    record: Patient, nurse: User, pathways: dict[str, Pathway]
) -> None:
    response = client_for(nurse).post(
        f"/clinic/patients/{record.pk}/care-plans/new/",
        {
            "pathway": "scratch",
            "start_date": TODAY.isoformat(),
            "title": "Retour à domicile",
            "description": "Aide au ménage, repas livrés.",
            "follow_up_days": "21",
        },
    )
    plan = CarePlan.objects.get(patient=record)
    assert response.status_code == 302
    assert (plan.pathway, plan.follow_up_days, plan.coordinator) == (None, 21, None)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"start_date": "2026-03-02"}, "This field is required."),
        ({"pathway": "scratch", "start_date": "2026-03-02"}, "needs a title"),
        ({"pathway": "scratch", "title": "T", "start_date": "mardi"}, "Enter a valid date."),
        (
            {"pathway": "scratch", "title": "T", "start_date": "2026-03-02", "follow_up_days": "0"},
            "greater than or equal to 1",
        ),
        ({"pathway": "999999", "start_date": "2026-03-02"}, "Select a valid choice."),
        (
            {
                "pathway": "scratch",
                "title": "T",
                "start_date": "2026-03-02",
                "coordinator": "424242",
            },
            "Select a valid choice.",
        ),
    ],
)
def test_the_new_plan_form_shows_its_errors(
    pathways: dict[str, Pathway], record: Patient, nurse: User, data: dict[str, str], error: str
) -> None:
    response = client_for(nurse).post(f"/clinic/patients/{record.pk}/care-plans/new/", data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not CarePlan.objects.exists()


def test_the_plan_page_shows_goals_with_readings_activities_and_tasks(
    plan: CarePlan, record: Patient, nurse: User, systolic: Concept
) -> None:
    for days_ago, value in ((40, 150), (20, 142), (3, 128)):
        _reading(record, systolic, value, days_ago)
    overdue = plan.activities.get(title="Education: salt and fluids")  # due 3 days in
    response = client_for(nurse).get(f"/care/plans/{plan.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    # the goal's latest reading, on target, and the chart of the last 30 days against the band
    assert "Latest: 128 mm[Hg]" in html
    assert "on target" in html
    assert 'data-goal-chart="goal-series-' in html
    series = re.search(r'<script id="goal-series-\d+" type="application/json">(.*?)</script>', html)
    assert series is not None
    assert '"low": 100.0' in series.group(1) and '"high": 130.0' in series.group(1)
    assert series.group(1).count('"v"') == 2  # the reading of 40 days ago is out of the chart
    # activities with who, when, overdue, and their buttons
    row = re.search(rf'<tr id="activity-{overdue.pk}".*?</tr>', html, re.S)
    assert row is not None and "overdue" in row.group(0) and "Nurse" in row.group(0)
    assert f'action="/care/plans/{plan.pk}/activities/{overdue.pk}/status/"' in html
    # the plan's tasks link to the task page
    for task in Task.objects.filter(plan=plan):
        assert f'href="/clinic/tasks/{task.pk}/"' in html
    assert "Add a goal" in html and "Add an activity" in html


def test_the_patient_reads_their_plan_in_plain_words(
    plan: CarePlan, record: Patient, patient: User
) -> None:
    response = client_for(patient).get(f"/care/plans/{plan.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Your goals" in html and "What is planned" in html
    assert "Your next follow-up" in html
    assert "Stable weight" in html
    # the detail of what the patient does themselves, never the team's task instructions
    assert "après être allé aux toilettes" in html
    instructions = [t.instructions for t in Task.objects.filter(plan=plan) if t.instructions]
    assert len(instructions) == 3
    for text in instructions:
        assert text[:25] not in html
    assert "/clinic/tasks/" not in html
    assert 'name="status"' not in html and "Add a goal" not in html
    sections = client_for(patient).get(f"/care/plans/{plan.pk}/sections/")
    assert sections.status_code == 200
    assert "Your goals" in sections.content.decode()
    assert "<html" not in sections.content.decode()


def test_the_sections_fragment_is_what_the_live_page_fetches(plan: CarePlan, nurse: User) -> None:
    response = client_for(nurse).get(f"/care/plans/{plan.pk}/sections/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert 'id="activities"' in html and 'id="plan-tasks"' in html
    assert "data-progress>0 %" in html


def test_team_members_change_the_plan_from_its_page(
    plan: CarePlan, record: Patient, nurse: User, systolic: Concept
) -> None:
    client = client_for(nurse)
    url = f"/care/plans/{plan.pk}/"
    activity = plan.activities.get(kind=Activity.Kind.MEDICATION)
    response = client.post(f"{url}activities/{activity.pk}/status/", {"status": "completed"})
    assert response.status_code == 302 and response["Location"] == f"{url}#activities"
    activity.refresh_from_db()
    assert activity.status == Activity.Status.COMPLETED

    goal = plan.goals.first()
    assert goal is not None
    client.post(f"{url}goals/{goal.pk}/status/", {"status": "achieved"})
    goal.refresh_from_db()
    assert goal.status == Goal.Status.ACHIEVED

    response = client.post(
        f"{url}goals/",
        {"goal-description": "TA < 140", "goal-measure": "8480-6", "goal-target_high": "140"},
    )
    assert response.status_code == 302
    added = plan.goals.get(description="TA < 140")
    assert (added.unit, added.target_high) == ("mm[Hg]", Decimal(140))

    response = client.post(
        f"{url}activities/",
        {
            "activity-title": "Bas de contention",
            "activity-kind": "task",
            "activity-responsible": "role:nurse",
            "activity-repeat_days": "2",
        },
    )
    assert response.status_code == 302
    assert plan.activities.get(title="Bas de contention").responsible_role == "nurse"

    client.post(f"{url}follow-up/", {"follow-follow_up_days": "14", "follow-next_follow_up": ""})
    plan.refresh_from_db()
    assert (plan.follow_up_days, plan.next_follow_up) == (14, None)

    response = client.post(f"{url}status/", {"status": "on-hold", "reason": "Hospitalisée"})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.ON_HOLD


@pytest.mark.parametrize(
    ("path", "data", "error"),
    [
        ("goals/", {"goal-description": ""}, "This field is required."),
        (
            "goals/",
            {"goal-description": "Poids", "goal-target_high": "80"},
            "Choose the measurement",
        ),
        (
            "goals/",
            {
                "goal-description": "P",
                "goal-measure": "8480-6",
                "goal-target_low": "150",
                "goal-target_high": "120",
            },
            "upper target is below",
        ),
        (
            "activities/",
            {"activity-title": "X", "activity-kind": "chore"},
            "Select a valid choice.",
        ),
        (
            "activities/",
            {"activity-title": "X", "activity-kind": "task", "activity-repeat_days": "-1"},
            "greater than or equal to 1",
        ),
        ("status/", {"status": "revoked", "reason": ""}, "Say why the plan is stopped."),
        ("status/", {"status": "exploded"}, "Select a valid choice."),
        (
            "follow-up/",
            {"follow-follow_up_days": "1", "follow-next_follow_up": "2000-01-01"},
            "cannot be before the plan starts",
        ),
    ],
)
def test_the_plan_forms_show_their_errors(
    plan: CarePlan, nurse: User, systolic: Concept, path: str, data: dict[str, str], error: str
) -> None:
    response = client_for(nurse).post(f"/care/plans/{plan.pk}/{path}", data)
    assert response.status_code == 400
    assert error in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.ACTIVE and plan.goals.count() == 4


def test_a_refused_status_change_of_an_activity_is_a_message(plan: CarePlan, nurse: User) -> None:
    activity = plan.activities.first()
    assert activity is not None
    client = client_for(nurse)
    response = client.post(
        f"/care/plans/{plan.pk}/activities/{activity.pk}/status/", {"status": "nope"}, follow=True
    )
    assert response.status_code == 200
    assert "Choose a status." in response.content.decode()


def _urls(plan: CarePlan) -> list[tuple[str, str]]:
    goal, activity = plan.goals.first(), plan.activities.first()
    assert goal is not None and activity is not None
    base = f"/care/plans/{plan.pk}/"
    return [
        ("get", base),
        ("get", f"{base}sections/"),
        ("get", f"/clinic/patients/{plan.patient_id}/care-plans/"),
        ("get", f"/clinic/patients/{plan.patient_id}/care-plans/new/"),
        ("post", f"/clinic/patients/{plan.patient_id}/care-plans/new/"),
        ("post", f"{base}status/"),
        ("post", f"{base}follow-up/"),
        ("post", f"{base}goals/"),
        ("post", f"{base}activities/"),
        ("post", f"{base}goals/{goal.pk}/status/"),
        ("post", f"{base}activities/{activity.pk}/status/"),
    ]


@pytest.mark.parametrize("who", ["outsider", "patient2", "billing_user", "admin_user"])
def test_every_page_and_endpoint_refuses_outsiders(
    plan: CarePlan, who: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(who)
    client = client_for(user)
    for method, url in _urls(plan):
        before = len(denials(user))
        response = getattr(client, method)(url, {"status": "completed"} if method == "post" else {})
        assert response.status_code == 404, (method, url)
        assert len(denials(user)) == before + 1, (method, url)
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.ACTIVE
    assert not plan.activities.filter(status="completed").exists()


def test_the_patient_may_not_change_their_plan(plan: CarePlan, patient: User) -> None:
    client = client_for(patient)
    for method, url in _urls(plan):
        if method == "get" and url.startswith("/care/plans/"):
            assert client.get(url).status_code == 200
            continue
        before = len(denials(patient))
        response = getattr(client, method)(url, {"status": "completed"} if method == "post" else {})
        assert response.status_code == 404, (method, url)
        assert len(denials(patient)) == before + 1, (method, url)
    assert not plan.activities.filter(status="completed").exists()


def test_a_goal_or_activity_of_another_plan_is_refused(
    plan: CarePlan, pathways: dict[str, Pathway], record2: Patient, clinician: User
) -> None:
    other = do_create_plan_from_pathway(
        access_as(clinician, record2), pathways["copd"], start_date=TODAY
    )
    foreign = other.activities.first()
    assert foreign is not None
    response = client_for(clinician).post(
        f"/care/plans/{plan.pk}/activities/{foreign.pk}/status/", {"status": "completed"}
    )
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == Activity.Status.NOT_STARTED
    assert any(d.object_type == "care.activity" for d in denials(clinician))


def test_pages_are_not_served_to_anonymous_visitors(plan: CarePlan) -> None:
    response = Client().get(f"/care/plans/{plan.pk}/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
