"""A pathway template becomes a patient's plan: goals, activities, a task for each activity
that asks for one, and the pathway's monitoring limits as the patient's threshold rules. The
plan is the whole care team's, and nobody else's."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.http import Http404
from django.utils import translation

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from apps.care.access import get_plan_for_user
from apps.care.models import Activity, CarePlan, Goal, Pathway, PathwayThreshold, Task
from apps.care.models.common import Origin
from apps.care.services import CareError
from apps.care.services.plans import _create_plan_row, do_create_plan_from_pathway
from apps.devices.models import ThresholdRule
from apps.records.models import Patient
from tests.care.conftest import access_as
from tests.care.helpers import Listener, client_for, denials

START = dt.date(2026, 3, 2)
ZURICH = ZoneInfo("Europe/Zurich")


def _build(user: User, chart: Patient, pathway: Pathway, **kwargs: Any) -> CarePlan:
    return do_create_plan_from_pathway(access_as(user, chart), pathway, start_date=START, **kwargs)


def test_pathway_template_becomes_plan_with_tasks_and_thresholds(
    heart_failure: Pathway,
    record: Patient,
    coordinator: User,
    nurse: User,
    clinician: User,
    patient: User,
) -> None:
    # when the coordinator builds the heart-failure plan, reading the pages in English
    with translation.override("en"):
        plan = _build(coordinator, record, heart_failure)

    # then the plan follows the pathway, at its version, with its follow-up interval
    assert plan.pathway == heart_failure
    assert plan.pathway_version == heart_failure.version
    assert plan.status == CarePlan.Status.ACTIVE
    assert plan.title == "Heart failure"
    assert plan.coordinator == coordinator  # the creator, on the team, by default
    assert plan.follow_up_days == 30
    assert plan.next_follow_up == START + dt.timedelta(days=30)
    assert plan.created_by == coordinator

    # and its goals, in the creator's language, due after their delay
    goals = list(plan.goals.order_by("order"))
    assert [g.description for g in goals][0] == "Stable weight: no gain of more than 2 kg in 3 days"
    pressure = goals[1]
    assert (pressure.measure, pressure.target_low, pressure.target_high) == (
        "8480-6",
        Decimal(100),
        Decimal(130),
    )
    assert pressure.due_date == START + dt.timedelta(days=30)
    assert goals[0].due_date is None

    # and its activities, due from the start, with the profession (or the coordinator)
    activities = {a.title: a for a in plan.activities.all()}
    assert len(activities) == 6
    call = activities["Nurse follow-up call"]
    assert (call.due_date, call.repeat_days, call.responsible_role) == (
        START + dt.timedelta(days=7),
        7,
        Role.NURSE,
    )
    assert call.responsible is None
    assert all(a.origin == Origin.TEMPLATE for a in activities.values())

    # and a task for each activity with a task kind, due at 09:00 in Zurich on its day
    tasks = {t.title: t for t in Task.objects.filter(plan=plan)}
    assert set(tasks) == {
        "Nurse follow-up call",
        "Education: salt and fluids",
        "Medication review",
        "Blood tests: NT-proBNP, creatinine, potassium",
    }
    review = tasks["Medication review"]
    assert review.kind == Task.Kind.MEDICATION_REVIEW
    assert review.assignee is None and review.assignee_role == Role.PHYSICIAN
    assert review.activity == activities["Medication review"]
    assert review.origin == Origin.TEMPLATE
    assert review.due_at is not None
    local = review.due_at.astimezone(ZURICH)
    assert (local.date(), local.hour, local.minute) == (START + dt.timedelta(days=14), 9, 0)
    assert review.requester == coordinator

    # and the pathway's limits as the patient's threshold rules, marked with the pathway
    rules = {(r.code, r.kind): r for r in ThresholdRule.objects.filter(patient=record)}
    assert set(rules) == {("29463-7", "rise"), ("8480-6", "below"), ("8480-6", "above")}
    weight = rules[("29463-7", "rise")]
    assert weight.limit == Decimal(2)
    assert (weight.window, weight.hysteresis) == (dt.timedelta(days=3), Decimal("0.5"))
    systolic_low = rules[("8480-6", "below")]
    # no hysteresis in the pathway: the devices default for a low systolic pressure
    assert (systolic_low.n_of, systolic_low.m_of, systolic_low.hysteresis) == (2, 3, Decimal(5))
    assert weight.template == "pathway:heart-failure"
    assert weight.created_by == coordinator

    # and everything is audited
    created = AuditEvent.objects.get(
        action=Action.CREATE, object_type="care.careplan", object_id=str(plan.pk)
    )
    assert created.patient_id == str(record.pk)
    assert created.detail["pathway"] == "heart-failure"
    assert sorted(created.detail["threshold_rules"]) == sorted(r.pk for r in rules.values())
    assert (
        AuditEvent.objects.filter(
            action=Action.CREATE, object_type="devices.thresholdrule", patient_id=str(record.pk)
        ).count()
        == 3
    )
    assert AuditEvent.objects.filter(action=Action.CREATE, object_type="care.task").count() == 4

    # and every member of the team, and the patient, sees the plan; nobody else does
    for user in (clinician, nurse, coordinator, patient):
        assert get_plan_for_user(user, plan.pk)[0] == plan
        assert client_for(user).get(f"/care/plans/{plan.pk}/").status_code == 200


@pytest.mark.parametrize("who", ["outsider", "patient2", "billing_user", "admin_user"])
def test_the_plan_is_invisible_to_outsiders(
    heart_failure: Pathway,
    record: Patient,
    coordinator: User,
    who: str,
    request: pytest.FixtureRequest,
) -> None:
    plan = _build(coordinator, record, heart_failure)
    user = request.getfixturevalue(who)
    with pytest.raises(Http404):
        get_plan_for_user(user, plan.pk)
    for url in (f"/care/plans/{plan.pk}/", f"/care/plans/{plan.pk}/sections/"):
        assert client_for(user).get(url).status_code == 404
    assert len([d for d in denials(user) if d.object_id == str(plan.pk)]) == 3


def test_the_goal_text_follows_the_creators_language(
    heart_failure: Pathway, record: Patient, coordinator: User
) -> None:
    with translation.override("de"):
        plan = _build(coordinator, record, heart_failure)
    assert plan.title == "Herzinsuffizienz"
    assert plan.goals.order_by("order").first().description.startswith("Stabiles Gewicht")  # type: ignore[union-attr]
    assert plan.activities.filter(title="Tägliches Wiegen zu Hause").exists()


def test_a_rule_the_patient_already_has_is_not_duplicated(
    heart_failure: Pathway, record: Patient, coordinator: User, clinician: User
) -> None:
    # given the physician set the patient's own upper limit on systolic pressure
    own = ThresholdRule.objects.create(
        patient=record, code="8480-6", kind="above", limit=Decimal(150), created_by=clinician
    )
    _build(coordinator, record, heart_failure)
    rules = ThresholdRule.objects.filter(patient=record)
    assert rules.count() == 3
    assert rules.filter(code="8480-6", kind="above").get() == own


def test_a_named_coordinator_is_responsible_for_unassigned_activities(
    pathways: dict[str, Pathway], record: Patient, clinician: User, nurse: User
) -> None:
    # the post-operative questionnaire activity names no profession
    plan = _build(clinician, record, pathways["post-operative"], coordinator=nurse, title="Hanche")
    assert plan.title == "Hanche"
    questionnaire = plan.activities.get(kind=Activity.Kind.QUESTIONNAIRE)
    assert questionnaire.responsible == nurse
    assert questionnaire.responsible_role == ""
    wound = Task.objects.filter(plan=plan, kind=Task.Kind.WOUND_CARE).order_by("due_at")[0]
    assert wound.activity is not None
    assert wound.activity.due_date == START + dt.timedelta(days=2)
    assert wound.assignee_role == Role.NURSE
    assert Task.objects.filter(plan=plan, kind=Task.Kind.WOUND_CARE).count() == 2


def test_a_second_open_plan_on_the_same_pathway_is_refused(
    heart_failure: Pathway, record: Patient, coordinator: User, clinician: User
) -> None:
    first = _build(coordinator, record, heart_failure)
    with pytest.raises(CareError, match="already has an open plan"):
        _build(clinician, record, heart_failure)
    assert CarePlan.objects.filter(patient=record).count() == 1
    # once the first is closed, a new one may start
    first.status = CarePlan.Status.COMPLETED
    first.save()
    assert _build(clinician, record, heart_failure).pk != first.pk


def test_the_database_refuses_a_concurrent_second_plan_as_a_care_error(
    heart_failure: Pathway, record: Patient, coordinator: User
) -> None:
    # the check before writing passed in two requests at once: the unique index decides
    _build(coordinator, record, heart_failure)
    with pytest.raises(CareError, match="already has an open plan"):
        _create_plan_row(
            access_as(coordinator, record),
            pathway=heart_failure,
            title="Doublon",
            start_date=START,
        )
    assert CarePlan.objects.filter(patient=record).count() == 1


def test_only_clinicians_of_the_team_build_plans(
    heart_failure: Pathway, record: Patient, patient: User, coordinator: User, outsider: User
) -> None:
    with pytest.raises(CareError, match="Only clinicians"):
        _build(patient, record, heart_failure)
    with pytest.raises(CareError, match="not on this patient's care team"):
        _build(coordinator, record, heart_failure, coordinator=outsider)
    heart_failure.active = False
    heart_failure.save()
    with pytest.raises(CareError, match="no longer in use"):
        _build(coordinator, record, heart_failure)
    assert not CarePlan.objects.exists()


def test_a_bad_template_line_leaves_nothing_behind(
    heart_failure: Pathway, record: Patient, coordinator: User
) -> None:
    # an administrator saved an impossible limit straight into the database
    PathwayThreshold.objects.create(
        pathway=heart_failure, code="59408-5", kind="below", limit=Decimal(101)
    )
    with pytest.raises(CareError, match="limit"):
        _build(coordinator, record, heart_failure)
    assert not CarePlan.objects.exists()
    assert not Goal.objects.exists()
    assert not Task.objects.exists()
    assert not ThresholdRule.objects.filter(patient=record).exists()


def test_the_new_plan_is_pushed_to_the_team_and_the_patient(
    heart_failure: Pathway,
    record: Patient,
    coordinator: User,
    nurse: User,
    patient: User,
    outsider: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    team_page, patient_page, stranger = Listener(nurse), Listener(patient), Listener(outsider)
    with django_capture_on_commit_callbacks(execute=True):
        plan = _build(coordinator, record, heart_failure)
    plan_events = [e for e in team_page.receive(5) if e["type"] == "care.plan"]
    assert plan_events == [
        {
            "type": "care.plan",
            "plan": plan.pk,
            "patient": record.pk,
            "status": "active",
            "progress": 0,
            "url": f"/care/plans/{plan.pk}/",
        }
    ]
    assert [e["type"] for e in patient_page.receive(1)] == ["care.plan"]
    assert stranger.receive(0, timeout=0.3) == []
