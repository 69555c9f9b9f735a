"""Follow-up questionnaires of a plan's pathway on days 1, 3 and 7 at 10:00 local time, and
satisfaction surveys two hours after a consultation: scheduled once, sent once, expired."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apps.accounts.models import User
from apps.care.models import (
    CarePlan,
    CarePreferences,
    Pathway,
    PathwayQuestionnaire,
    Questionnaire,
    QuestionnaireRequest,
)
from apps.care.services.questionnaires import run_questionnaires
from apps.notifications.models import Notification
from apps.records.models import Encounter, Patient

from .conftest import ZURICH, at


def post_op_plan(
    record: Patient, coordinator: User, questionnaires: dict[str, Questionnaire], **fields: Any
) -> CarePlan:
    pathway = Pathway.objects.create(code="post-op", name="Suivi postopératoire")
    PathwayQuestionnaire.objects.create(
        pathway=pathway, questionnaire=questionnaires["post-op-follow-up"], days=[1, 3, 7]
    )
    fields.setdefault("start_date", dt.date(2026, 3, 27))
    return CarePlan.objects.create(
        patient=record,
        pathway=pathway,
        title="Après l'opération",
        created_by=coordinator,
        coordinator=coordinator,
        **fields,
    )


def test_plan_questionnaires_on_days_1_3_7_at_ten_local_time(
    record: Patient, coordinator: User, patient: User, questionnaires: dict[str, Questionnaire]
) -> None:
    # given: a post-op plan starting on Friday 27 March 2026 (clocks change on the 29th).
    plan = post_op_plan(record, coordinator, questionnaires)

    # when: the job runs twice on the first day
    created = run_questionnaires(at(2026, 3, 27, 12))
    assert run_questionnaires(at(2026, 3, 27, 12, 5)) == 0

    # then: three requests, keyed by plan, questionnaire and day, at 10:00 in Zurich
    rows = list(QuestionnaireRequest.objects.filter(plan=plan).order_by("due_at"))
    assert created == 3
    assert [r.key for r in rows] == [
        f"plan:{plan.pk}:post-op-follow-up:day1",
        f"plan:{plan.pk}:post-op-follow-up:day3",
        f"plan:{plan.pk}:post-op-follow-up:day7",
    ]
    assert [r.due_at.astimezone(ZURICH).strftime("%d %H:%M") for r in rows] == [
        "28 10:00",
        "30 10:00",
        "03 10:00",
    ]
    assert rows[0].due_at == at(2026, 3, 28, 9)  # winter time
    assert rows[1].due_at == at(2026, 3, 30, 8)  # summer time
    assert all(r.status == QuestionnaireRequest.Status.SCHEDULED for r in rows)

    # when: day 1 comes, it is sent once, with a link and no clinical title
    run_questionnaires(at(2026, 3, 28, 9, 1))
    run_questionnaires(at(2026, 3, 28, 9, 2))
    rows[0].refresh_from_db()
    assert rows[0].status == QuestionnaireRequest.Status.SENT
    note = Notification.objects.get(user=patient, kind="care.questionnaire")
    assert note.link == f"/care/questionnaires/{rows[0].pk}/"
    assert "opérat" not in note.title.lower() and "operat" not in note.title.lower()

    # and unanswered after its two days, it expires
    run_questionnaires(at(2026, 3, 30, 9, 1))
    rows[0].refresh_from_db()
    assert rows[0].status == QuestionnaireRequest.Status.EXPIRED


def test_plan_questionnaires_respect_the_patients_zone_and_quiet_hours(
    record: Patient, coordinator: User, questionnaires: dict[str, Questionnaire]
) -> None:
    CarePreferences.objects.create(
        patient=record,
        time_zone="America/New_York",
        quiet_start=dt.time(9, 0),
        quiet_end=dt.time(11, 30),
    )
    plan = post_op_plan(record, coordinator, questionnaires)

    run_questionnaires(at(2026, 3, 27, 12))

    first = QuestionnaireRequest.objects.filter(plan=plan).order_by("due_at").first()
    assert first is not None
    assert first.due_at == at(2026, 3, 28, 15, 30)  # 11:30 in New York (UTC-4)


def test_days_long_past_are_not_asked_and_a_closed_plan_stops_its_questionnaires(
    record: Patient, coordinator: User, questionnaires: dict[str, Questionnaire]
) -> None:
    # given: a plan that started two weeks before the job first runs
    plan = post_op_plan(record, coordinator, questionnaires, start_date=dt.date(2026, 3, 1))

    run_questionnaires(at(2026, 3, 6, 12))

    # then: day 1 and 3 are gone; day 7 (8 March) is still to come
    assert list(QuestionnaireRequest.objects.filter(plan=plan).values_list("key", flat=True)) == [
        f"plan:{plan.pk}:post-op-follow-up:day7"
    ]
    # when: the plan is completed before day 7
    CarePlan.objects.filter(pk=plan.pk).update(status=CarePlan.Status.COMPLETED)
    run_questionnaires(at(2026, 3, 7, 12))
    assert QuestionnaireRequest.objects.get(plan=plan).status == "cancelled"


def finished_encounter(record: Patient, clinician: User, ended_at: dt.datetime) -> Encounter:
    return Encounter.objects.create(
        patient=record,
        status=Encounter.Status.FINISHED,
        kind=Encounter.Kind.VIRTUAL,
        practitioner=clinician,
        started_at=ended_at - dt.timedelta(minutes=20),
        ended_at=ended_at,
    )


def test_a_satisfaction_survey_two_hours_after_a_consultation(
    record: Patient, clinician: User, patient: User, questionnaires: dict[str, Questionnaire]
) -> None:
    encounter = finished_encounter(record, clinician, at(2026, 3, 10, 14, 0))

    assert run_questionnaires(at(2026, 3, 10, 14, 5)) == 1
    assert run_questionnaires(at(2026, 3, 10, 14, 10)) == 0

    survey = QuestionnaireRequest.objects.get(encounter=encounter)
    assert survey.key == f"encounter:{encounter.pk}:satisfaction-consultation"
    assert survey.due_at == at(2026, 3, 10, 16, 0)
    assert survey.expires_at == at(2026, 3, 17, 16, 0)
    run_questionnaires(at(2026, 3, 10, 16, 1))
    survey.refresh_from_db()
    assert survey.status == QuestionnaireRequest.Status.SENT
    assert Notification.objects.filter(user=patient, kind="care.questionnaire").count() == 1


def test_a_late_evening_consultation_is_surveyed_the_next_morning(
    record: Patient, clinician: User, questionnaires: dict[str, Questionnaire]
) -> None:
    encounter = finished_encounter(record, clinician, at(2026, 3, 10, 20, 0))  # 21:00 local

    run_questionnaires(at(2026, 3, 10, 20, 5))

    survey = QuestionnaireRequest.objects.get(encounter=encounter)
    assert survey.due_at.astimezone(ZURICH).strftime("%d %H:%M") == "11 07:00"


def test_the_pathways_survey_replaces_the_default_one(
    record: Patient,
    clinician: User,
    coordinator: User,
    questionnaires: dict[str, Questionnaire],
) -> None:
    own = Questionnaire.objects.create(
        code="satisfaction-cardio",
        title="Avis cardio",
        purpose=Questionnaire.Purpose.SATISFACTION,
        items=questionnaires["satisfaction-consultation"].items,
    )
    pathway = Pathway.objects.create(code="hf", name="IC", satisfaction_survey=own)
    CarePlan.objects.create(
        patient=record, pathway=pathway, title="IC", created_by=coordinator, coordinator=coordinator
    )
    encounter = finished_encounter(record, clinician, at(2026, 3, 10, 14, 0))

    run_questionnaires(at(2026, 3, 10, 14, 5))

    assert QuestionnaireRequest.objects.get(encounter=encounter).questionnaire == own


def test_no_survey_when_none_is_set_or_it_is_missing_or_too_old(
    record: Patient,
    clinician: User,
    questionnaires: dict[str, Questionnaire],
    settings: Any,
    make_patient: Callable[..., Patient],
) -> None:
    finished_encounter(record, clinician, at(2026, 3, 10, 14, 0))
    settings.CARE_SATISFACTION_SURVEY = ""
    assert run_questionnaires(at(2026, 3, 10, 14, 5)) == 0
    settings.CARE_SATISFACTION_SURVEY = "no-such-survey"
    assert run_questionnaires(at(2026, 3, 10, 14, 5)) == 0
    settings.CARE_SATISFACTION_SURVEY = "satisfaction-consultation"
    # more than three days later: too late to ask
    assert run_questionnaires(at(2026, 3, 13, 14, 5)) == 0
    # a patient without a portal account is not asked
    offline = make_patient(None, family_name="SansCompte")
    finished_encounter(offline, clinician, at(2026, 3, 13, 14, 0))
    assert run_questionnaires(at(2026, 3, 13, 14, 5)) == 0
    assert not QuestionnaireRequest.objects.exists()
