"""The patient answers a questionnaire: checked question by question, stored once with the
questionnaire's version; an alerting answer makes an urgent review task for the care team."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import translation

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from apps.care.models import (
    CarePlan,
    Questionnaire,
    QuestionnaireRequest,
    QuestionnaireResponse,
    Task,
)
from apps.care.services import CareError
from apps.care.services.followup_items import AnswerErrors
from apps.care.services.questionnaires import do_answer_questionnaire
from apps.notifications.models import Notification
from apps.records.models import Patient

NOW = dt.datetime(2026, 3, 28, 10, 0, tzinfo=dt.UTC)
GOOD = {
    "pain": "3",
    "fever": "no",
    "wound": "normal",
    "nausea": "none",
    "mobility": "limited",
    "comment": "Tout va bien",
}


def sent_request(
    chart: Patient, questionnaire: Questionnaire, plan: CarePlan | None = None, key: str = "t:1"
) -> QuestionnaireRequest:
    return QuestionnaireRequest.objects.create(
        patient=chart,
        questionnaire=questionnaire,
        plan=plan,
        key=key,
        due_at=NOW - dt.timedelta(hours=1),
        expires_at=NOW + dt.timedelta(days=2),
        status=QuestionnaireRequest.Status.SENT,
        sent_at=NOW - dt.timedelta(hours=1),
    )


@pytest.fixture
def post_op(questionnaires: dict[str, Questionnaire]) -> Questionnaire:
    return questionnaires["post-op-follow-up"]


def test_good_answers_are_stored_once_with_the_version(
    record: Patient, patient: User, post_op: Questionnaire
) -> None:
    request_obj = sent_request(record, post_op)

    response = do_answer_questionnaire(patient, request_obj, GOOD, now=NOW)

    assert response.answers == {
        "pain": 3,
        "fever": False,
        "wound": "normal",
        "nausea": "none",
        "mobility": "limited",
        "comment": "Tout va bien",
    }
    assert response.questionnaire_version == post_op.version
    assert response.flagged is False
    assert not Task.objects.exists()
    request_obj.refresh_from_db()
    assert request_obj.status == QuestionnaireRequest.Status.ANSWERED
    assert AuditEvent.objects.filter(
        action=Action.CREATE, object_type="care.questionnaireresponse", actor_id=patient.pk
    ).exists()
    with pytest.raises(CareError, match="already"):
        do_answer_questionnaire(patient, request_obj, GOOD, now=NOW)
    assert QuestionnaireResponse.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "link_id", "message"),
    [
        ({"pain": ""}, "pain", "Please answer this question."),
        ({"pain": "11"}, "pain", "Enter a number from 0 to 10."),
        ({"pain": "2.5"}, "pain", "Enter a whole number."),
        ({"pain": "beaucoup"}, "pain", "Enter a whole number."),
        ({"fever": "maybe"}, "fever", "Answer yes or no."),
        ({"wound": "purple"}, "wound", "Choose one of the answers."),
        ({"comment": "x" * 1001}, "comment", "Your answer is too long (1000 characters at most)."),
    ],
)
def test_each_wrong_answer_gets_its_own_message(
    record: Patient,
    patient: User,
    post_op: Questionnaire,
    changes: dict[str, str],
    link_id: str,
    message: str,
) -> None:
    request_obj = sent_request(record, post_op)

    with translation.override("en"), pytest.raises(AnswerErrors) as caught:
        do_answer_questionnaire(patient, request_obj, {**GOOD, **changes}, now=NOW)

    assert caught.value.errors == {link_id: message}
    assert not QuestionnaireResponse.objects.exists()
    request_obj.refresh_from_db()
    assert request_obj.status == QuestionnaireRequest.Status.SENT


def test_decimal_answers_accept_a_comma(
    record: Patient, patient: User, questionnaires: dict[str, Questionnaire]
) -> None:
    request_obj = sent_request(record, questionnaires["heart-failure-symptoms"])
    answers = {
        "breathlessness": "stairs",
        "orthopnea": "no",
        "ankle-swelling": "same",
        "weight-gain": "2,5",
        "night-cough": "no",
    }
    response = do_answer_questionnaire(patient, request_obj, answers, now=NOW)
    assert response.answers["weight-gain"] == "2.5"
    assert response.flagged is True  # a gain of 2 kg or more in 3 days


def test_a_worrying_answer_makes_an_urgent_task_for_the_team(
    record: Patient,
    patient: User,
    coordinator: User,
    nurse: User,
    post_op: Questionnaire,
) -> None:
    plan = CarePlan.objects.create(
        patient=record, title="Post-op", created_by=coordinator, coordinator=coordinator
    )
    request_obj = sent_request(record, post_op, plan=plan)

    response = do_answer_questionnaire(patient, request_obj, {**GOOD, "pain": "8"}, now=NOW)

    assert response.flagged is True
    task = Task.objects.get(patient=record)
    assert task.kind == Task.Kind.REVIEW_RESULTS
    assert task.priority == Task.Priority.URGENT
    assert task.requester == coordinator
    assert task.assignee is None and task.assignee_role == Role.NURSE
    assert task.plan == plan
    assert f"/clinic/questionnaire-responses/{response.pk}/" in task.instructions
    # due within hours, and the team's nurse hears of it now (not only from the list)
    assert task.due_at is not None
    assert task.due_at - task.created_at <= dt.timedelta(hours=4, minutes=1)
    assert Notification.objects.filter(
        user=nurse, kind="care.task", ref=f"care.task:{task.pk}"
    ).exists()
    assert not Notification.objects.filter(user=coordinator, ref=f"care.task:{task.pk}").exists()


def test_without_a_plan_or_a_nurse_the_lead_physician_reviews(
    record2: Patient, patient2: User, clinician: User, post_op: Questionnaire
) -> None:
    request_obj = sent_request(record2, post_op)

    do_answer_questionnaire(patient2, request_obj, {**GOOD, "fever": "yes"}, now=NOW)

    task = Task.objects.get(patient=record2)
    assert task.requester == clinician
    assert task.assignee == clinician


def test_only_the_patient_answers_and_only_in_time(
    record: Patient,
    patient: User,
    patient2: User,
    clinician: User,
    post_op: Questionnaire,
) -> None:
    request_obj = sent_request(record, post_op)
    for someone in (clinician, patient2):
        with pytest.raises(CareError, match="Only the patient"):
            do_answer_questionnaire(someone, request_obj, GOOD, now=NOW)
    with pytest.raises(CareError, match="no longer"):
        do_answer_questionnaire(patient, request_obj, GOOD, now=NOW + dt.timedelta(days=3))
    assert not QuestionnaireResponse.objects.exists()


def test_unreadable_answers_are_refused(
    record: Patient, patient: User, post_op: Questionnaire
) -> None:
    request_obj = sent_request(record, post_op)
    with pytest.raises(AnswerErrors):
        do_answer_questionnaire(patient, request_obj, ["not", "a", "mapping"], now=NOW)
    data: Any = {**GOOD, "pain": True}
    with pytest.raises(AnswerErrors):
        do_answer_questionnaire(patient, request_obj, data, now=NOW)
