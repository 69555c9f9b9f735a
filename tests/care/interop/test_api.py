"""The care coordination REST API (/api/v1/care-plans/, tasks/, questionnaire-requests/, doses/,
proposals/): who sees what (outsiders get an audited 404), the changes through the services,
400 with a message on bad input, paging and a constant cost per page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.accounts.services import do_issue_token
from apps.audit.models import Action, AuditEvent
from apps.care.models import (
    CarePlan,
    DoseReminder,
    Proposal,
    Questionnaire,
    QuestionnaireRequest,
    QuestionnaireResponse,
    Rule,
    Task,
)
from apps.records.models import Medication, MedicationRequest, Patient, Practitioner
from apps.records.services.prescriptions import do_sign_prescription
from tests.care.conftest import access_as
from tests.conftest import signed_in_client, verified_client

from .conftest import last_audit


def client_for(user: User) -> Client:
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def post(client: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    return client.post(url, data or {}, content_type="application/json")


def denials(user: User) -> int:
    return AuditEvent.objects.filter(action=Action.DENIED, actor_id=user.pk).count()


def assert_denied(response: Any, user: User, before: int) -> None:
    assert response.status_code == 404, response.content
    assert denials(user) == before + 1
    assert last_audit().actor_id == user.pk


PLANS = reverse("api:care-plan-list")
TASKS = reverse("api:task-list")
REQUESTS = reverse("api:questionnaire-request-list")
DOSES = reverse("api:dose-list")
PROPOSALS = reverse("api:proposal-list")


def plan_url(plan: CarePlan) -> str:
    return reverse("api:care-plan-detail", args=[plan.pk])


def task_url(task: Task, action: str = "") -> str:
    if action:
        return reverse(f"api:task-{action}", args=[task.pk])
    return reverse("api:task-detail", args=[task.pk])


# ---------------------------------------------------------------------------------------------
# Care plans


def test_a_patient_lists_and_reads_their_plans_but_not_a_draft(
    plan: CarePlan, make_plan: Callable[..., CarePlan], patient: User
) -> None:
    draft = make_plan(title="En préparation", status=CarePlan.Status.DRAFT)
    client = client_for(patient)

    listing = client.get(PLANS)
    assert listing.status_code == 200
    assert [row["id"] for row in listing.json()["results"]] == [plan.pk]
    assert listing.json()["results"][0]["progress"] == 33  # one activity of three done
    assert listing.json()["results"][0]["pathway"] == "heart-failure"
    detail = client.get(plan_url(plan))
    assert detail.status_code == 200
    data = detail.json()
    assert [g["description"] for g in data["goals"]] == [
        "Tension systolique sous 140",
        "Marcher 30 minutes par jour",
    ]
    assert [a["title"] for a in data["activities"]] == [
        "Pesée quotidienne",
        "Consultation de cardiologie",
        "Éducation thérapeutique",
    ]
    assert data["description"] == "Stabiliser le poids et la tension."
    event = last_audit()
    assert (event.action, event.object_type) == ("read", "care.careplan")
    before = denials(patient)
    assert_denied(client.get(plan_url(draft)), patient, before)


def test_the_care_team_lists_plans_by_patient_and_status(
    plan: CarePlan,
    make_plan: Callable[..., CarePlan],
    record: Patient,
    record2: Patient,
    clinician: User,
) -> None:
    other = make_plan(chart=record2, title="Plan voisin", status=CarePlan.Status.COMPLETED)
    client = client_for(clinician)

    every = client.get(PLANS).json()
    assert {row["id"] for row in every["results"]} == {plan.pk, other.pk}
    assert every["count"] == 2
    mine = client.get(PLANS, {"patient": record.pk}).json()["results"]
    assert [row["id"] for row in mine] == [plan.pk]
    assert last_audit().detail["what"] == "api-care-plans"
    done = client.get(PLANS, {"status": "completed"}).json()["results"]
    assert [row["id"] for row in done] == [other.pk]
    bad = client.get(PLANS, {"status": "finished"})
    assert bad.status_code == 400 and "status" in bad.json()


def test_an_outsider_gets_404_on_plans_and_the_denials_are_audited(
    plan: CarePlan, record: Patient, outsider: User, billing_user: User, patient2: User
) -> None:
    client = client_for(outsider)
    assert client.get(PLANS).json()["results"] == []  # nobody of theirs
    before = denials(outsider)
    assert_denied(client.get(PLANS, {"patient": record.pk}), outsider, before)
    assert_denied(client.get(plan_url(plan)), outsider, before + 1)
    assert last_audit().object_type == "care.careplan"
    billing = client_for(billing_user)
    before = denials(billing_user)
    assert_denied(billing.get(PLANS), billing_user, before)
    assert_denied(billing.get(plan_url(plan)), billing_user, before + 1)
    other_patient = client_for(patient2)
    before = denials(patient2)
    assert_denied(other_patient.get(plan_url(plan)), patient2, before)


def test_an_anonymous_caller_is_refused() -> None:
    assert Client().get(PLANS).status_code in (401, 403)


# ---------------------------------------------------------------------------------------------
# Tasks


def test_a_clinician_creates_a_task_and_the_nurse_starts_and_completes_it(
    plan: CarePlan, record: Patient, clinician: User, nurse: User
) -> None:
    activity = plan.activities.get(order=1)
    created = post(
        client_for(clinician),
        TASKS,
        {
            "patient": record.pk,
            "kind": "review-results",
            "title": "Revoir les pesées",
            "instructions": "Demander le poids du matin.",
            "assignee": nurse.pk,
            "priority": "urgent",
            "due_at": (timezone.now() + dt.timedelta(hours=4)).isoformat(),
            "plan": plan.pk,
            "activity": activity.pk,
        },
    )
    assert created.status_code == 201, created.content
    data = created.json()
    task = Task.objects.get(pk=data["id"])
    assert created["Location"] == task_url(task)
    assert (task.assignee_id, task.requester_id, task.plan_id) == (nurse.pk, clinician.pk, plan.pk)
    assert data["instructions"] == "Demander le poids du matin."
    assert AuditEvent.objects.filter(action=Action.CREATE, object_id=str(task.pk)).exists()

    nurse_client = client_for(nurse)
    mine = nurse_client.get(TASKS, {"mine": "true"}).json()["results"]
    assert [row["id"] for row in mine] == [task.pk]
    assert mine[0]["assignee_name"] == nurse.get_full_name()
    started = post(nurse_client, task_url(task, "start"))
    assert started.status_code == 200 and started.json()["status"] == "in-progress"
    noted = post(nurse_client, task_url(task, "notes"), {"text": "Pas de réponse, rappel à 14h."})
    assert [n["text"] for n in noted.json()["notes"]] == ["Pas de réponse, rappel à 14h."]
    refused = post(nurse_client, task_url(task, "complete"), {"report": ""})
    assert refused.status_code == 400 and refused.json()["detail"]  # a review needs a report
    done = post(nurse_client, task_url(task, "complete"), {"report": "Poids stable, 72 kg."})
    assert done.status_code == 200, done.content
    assert (done.json()["status"], done.json()["report"]) == ("completed", "Poids stable, 72 kg.")
    task.refresh_from_db()
    assert task.completed_by_id == nurse.pk
    again = post(nurse_client, task_url(task, "cancel"), {"reason": "Doublon"})
    assert again.status_code == 400 and again.json()["detail"]


def test_assign_claim_and_cancel_through_the_services(
    make_task: Callable[..., Task], clinician: User, nurse: User, coordinator: User
) -> None:
    task = make_task(assignee_role=Role.NURSE)
    nurse_client = client_for(nurse)

    claimed = post(nurse_client, task_url(task, "assign"), {"assignee": nurse.pk})
    assert claimed.status_code == 200 and claimed.json()["assignee"] == nurse.pk
    handed = post(client_for(coordinator), task_url(task, "assign"), {"assignee": coordinator.pk})
    assert handed.status_code == 400  # a claim takes only a task nobody has
    to_role = post(
        client_for(clinician),
        task_url(task, "assign"),
        {"assignee": None, "assignee_role": "coordinator"},
    )
    assert to_role.status_code == 200
    assert (to_role.json()["assignee"], to_role.json()["assignee_role"]) == (None, "coordinator")
    no_reason = post(client_for(clinician), task_url(task, "cancel"), {"reason": "  "})
    assert no_reason.status_code == 400 and no_reason.json()["detail"]
    cancelled = post(client_for(clinician), task_url(task, "cancel"), {"reason": "Plus utile."})
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "Plus utile."


def test_bad_task_input_answers_400_with_messages(
    plan: CarePlan,
    make_plan: Callable[..., CarePlan],
    record: Patient,
    record2: Patient,
    clinician: User,
    outsider: User,
) -> None:
    client = client_for(clinician)
    base = {"patient": record.pk, "kind": "call", "title": "Appeler"}
    other_plan = make_plan(chart=record2, title="Autre")

    for data, field in (
        ({**base, "title": ""}, "title"),
        ({**base, "kind": "dance"}, "kind"),
        ({**base}, "assignee"),  # nobody and no profession
        ({**base, "assignee": 999_999}, "assignee"),
        ({**base, "assignee_role": "nurse", "plan": other_plan.pk}, "plan"),
        ({**base, "assignee_role": "nurse", "plan": plan.pk, "activity": 999_999}, "activity"),
        ({**base, "assignee_role": "nurse", "due_at": "tomorrow"}, "due_at"),
    ):
        response = post(client, TASKS, data)
        assert response.status_code == 400, (data, response.content)
        assert field in response.json(), (data, response.json())
    # A clinician outside the care team is refused by the service, with its message.
    refused = post(client, TASKS, {**base, "assignee": outsider.pk})
    assert refused.status_code == 400 and "care team" in refused.json()["detail"]
    assert not Task.objects.exists()
    bad_filter = client.get(TASKS, {"priority": "whenever"})
    assert bad_filter.status_code == 400 and "priority" in bad_filter.json()


def test_task_lists_filter_and_page(
    make_task: Callable[..., Task],
    record: Patient,
    record2: Patient,
    clinician: User,
    nurse: User,
) -> None:
    now = timezone.now()
    late = make_task(title="En retard", due_at=now - dt.timedelta(hours=2), priority="stat")
    routine = [make_task(title=f"Routine {n}") for n in range(3)]
    elsewhere = make_task(chart=record2, title="Autre patient", assignee=clinician)
    client = client_for(clinician)

    first = client.get(TASKS, {"page_size": 2}).json()
    assert first["count"] == 5 and first["next"]
    assert first["results"][0]["id"] == late.pk  # overdue first
    assert first["results"][0]["overdue"] is True
    assert [r["id"] for r in client.get(TASKS, {"overdue": "true"}).json()["results"]] == [late.pk]
    by_patient = client.get(TASKS, {"patient": record2.pk}).json()["results"]
    assert [r["id"] for r in by_patient] == [elsewhere.pk]
    assert {r["id"] for r in client.get(TASKS, {"priority": "routine"}).json()["results"]} == {
        t.pk for t in [*routine, elsewhere]
    }
    assert client.get(TASKS, {"kind": "handover"}).json()["count"] == 0
    assert client.get(TASKS, {"status": "open"}).json()["count"] == 5
    assert client.get(TASKS, {"status": "completed"}).json()["count"] == 0
    mine = client.get(TASKS, {"mine": "true"}).json()["results"]
    assert [r["id"] for r in mine] == [elsewhere.pk]


def test_patients_billing_and_outsiders_get_404_on_tasks_all_audited(
    make_task: Callable[..., Task],
    record: Patient,
    patient: User,
    outsider: User,
    billing_user: User,
) -> None:
    task = make_task()
    for user in (patient, billing_user):
        client = client_for(user)
        before = denials(user)
        assert_denied(client.get(TASKS), user, before)
        assert_denied(client.get(task_url(task)), user, before + 1)
        assert_denied(post(client, task_url(task, "complete"), {"report": "x"}), user, before + 2)
    client = client_for(outsider)
    assert client.get(TASKS).json()["results"] == []
    before = denials(outsider)
    assert_denied(client.get(task_url(task)), outsider, before)
    assert last_audit().object_type == "care.task"
    assert_denied(post(client, task_url(task, "start")), outsider, before + 1)
    assert_denied(client.get(TASKS, {"patient": record.pk}), outsider, before + 2)
    created = post(
        client,
        TASKS,
        {"patient": record.pk, "kind": "call", "title": "X", "assignee_role": "nurse"},
    )
    assert_denied(created, outsider, before + 3)
    task.refresh_from_db()
    assert task.status == Task.Status.REQUESTED


def test_a_bearer_token_works_as_a_session(make_task: Callable[..., Task], nurse: User) -> None:
    task = make_task()
    secret, _token = do_issue_token(nurse, name="mobile", scopes=["api"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = client.get(task_url(task))

    assert response.status_code == 200
    assert response.json()["title"] == "Appeler la patiente pour le suivi"


# ---------------------------------------------------------------------------------------------
# Questionnaires to answer


@pytest.fixture
def waiting(questionnaire: Questionnaire, record: Patient) -> QuestionnaireRequest:
    now = timezone.now()
    return QuestionnaireRequest.objects.create(
        patient=record,
        questionnaire=questionnaire,
        key=f"test:{questionnaire.code}:day1",
        due_at=now - dt.timedelta(hours=1),
        expires_at=now + dt.timedelta(days=2),
        status=QuestionnaireRequest.Status.SENT,
        sent_at=now - dt.timedelta(hours=1),
    )


def request_url(obj: QuestionnaireRequest, action: str = "") -> str:
    name = f"api:questionnaire-request-{action or 'detail'}"
    return reverse(name, args=[obj.pk])


def test_the_patient_lists_and_answers_a_waiting_questionnaire(
    waiting: QuestionnaireRequest, questionnaire: Questionnaire, patient: User, clinician: User
) -> None:
    expired = QuestionnaireRequest.objects.create(
        patient=waiting.patient,
        questionnaire=questionnaire,
        key="test:old",
        due_at=timezone.now() - dt.timedelta(days=9),
        expires_at=timezone.now() - dt.timedelta(days=6),
        status=QuestionnaireRequest.Status.SENT,
    )
    client = client_for(patient)

    listing = client.get(REQUESTS).json()["results"]
    assert [row["id"] for row in listing] == [waiting.pk]
    assert listing[0]["title"] == "Follow-up after knee surgery"
    assert listing[0]["questions"][0] == {
        "link_id": "pain",
        "text": "Pain (0 to 10)",
        "type": "integer",
        "required": True,
        "min": 0,
        "max": 10,
    }
    assert listing[0]["questions"][1]["options"][0] == {"code": "ok", "display": "Clean"}
    wrong = post(client, request_url(waiting, "answer"), {"answers": {"pain": 12, "wound": "x"}})
    assert wrong.status_code == 400
    assert set(wrong.json()["errors"]) == {"pain", "wound"}
    assert not QuestionnaireResponse.objects.exists()
    not_a_dict = post(client, request_url(waiting, "answer"), {"answers": "all good"})
    assert not_a_dict.status_code == 400 and "answers" in not_a_dict.json()
    answered = post(
        client,
        request_url(waiting, "answer"),
        {"answers": {"pain": 3, "wound": "ok", "temp": "37.1", "fever": False}},
    )
    assert answered.status_code == 201, answered.content
    assert answered.json()["status"] == "answered"
    response = QuestionnaireResponse.objects.get()
    assert response.answers == {"pain": 3, "wound": "ok", "temp": "37.1", "fever": False}
    assert not response.flagged
    twice = post(client, request_url(waiting, "answer"), {"answers": {"pain": 3, "wound": "ok"}})
    assert twice.status_code == 400 and twice.json()["detail"]
    assert client.get(REQUESTS).json()["results"] == []
    too_late = post(client, request_url(expired, "answer"), {"answers": {"pain": 1, "wound": "ok"}})
    assert too_late.status_code == 400


def test_a_worrying_answer_reaches_the_team_as_a_task(
    waiting: QuestionnaireRequest, patient: User, nurse: User
) -> None:
    answered = post(
        client_for(patient),
        request_url(waiting, "answer"),
        {"answers": {"pain": 9, "wound": "red"}},
    )

    assert answered.status_code == 201
    assert QuestionnaireResponse.objects.get().flagged
    review = Task.objects.get(kind=Task.Kind.REVIEW_RESULTS)
    assert review.priority == Task.Priority.URGENT
    assert [r["id"] for r in client_for(nurse).get(TASKS, {"mine": "true"}).json()["results"]] == [
        review.pk
    ]


def test_others_get_404_on_questionnaire_requests_all_audited(
    waiting: QuestionnaireRequest, patient2: User, clinician: User, record2: Patient
) -> None:
    for user in (patient2, clinician):
        client = client_for(user)
        before = denials(user)
        assert_denied(client.get(request_url(waiting)), user, before)
        answer = post(client, request_url(waiting, "answer"), {"answers": {"pain": 1}})
        assert_denied(answer, user, before + 1)
    assert client_for(patient2).get(REQUESTS).json()["results"] == []
    before = denials(clinician)
    assert_denied(client_for(clinician).get(REQUESTS), clinician, before)
    waiting.refresh_from_db()
    assert waiting.status == QuestionnaireRequest.Status.SENT


# ---------------------------------------------------------------------------------------------
# Doses


@pytest.fixture
def doses(record: Patient, clinician: User, practitioner: Practitioner) -> list[DoseReminder]:
    """A line of a signed prescription and three of its doses: one to answer now, one later
    today, one answered yesterday."""
    medication, _ = Medication.objects.get_or_create(
        name="Bisoprolol 5 mg", defaults={"atc_code": "C07AB07"}
    )
    do_sign_prescription(
        access_as(clinician, record),
        clinician,
        [
            {
                "medication": medication,
                "dose": "1 comprimé",
                "route": "oral",
                "frequency": 1,
                "as_needed": False,
                "duration_days": 30,
                "quantity": 1,
            }
        ],
        valid_days=90,
        override_reason="Traitement connu",
    )
    line = MedicationRequest.objects.get(patient=record, medication=medication)
    now = timezone.now()

    def dose(hours: float, **fields: Any) -> DoseReminder:
        at = now + dt.timedelta(hours=hours)
        return DoseReminder.objects.create(
            patient=record, line=line, scheduled_for=at, local_time="08:00", send_at=at, **fields
        )

    return [
        dose(-1, status=DoseReminder.Status.SENT, sent_at=now - dt.timedelta(hours=1)),
        dose(6),
        dose(-24, status=DoseReminder.Status.TAKEN, answered_at=now - dt.timedelta(hours=23)),
    ]


def dose_url(dose: DoseReminder, action: str = "") -> str:
    return reverse(f"api:dose-{action or 'detail'}", args=[dose.pk])


def test_the_patient_lists_and_answers_doses(doses: list[DoseReminder], patient: User) -> None:
    now_dose, later, yesterday = doses
    client = client_for(patient)

    upcoming = client.get(DOSES).json()["results"]
    assert [row["id"] for row in upcoming] == [now_dose.pk, later.pk]
    assert upcoming[0]["medication"] == "Bisoprolol 5 mg"
    assert [row["answerable"] for row in upcoming] == [True, False]
    recent = client.get(DOSES, {"when": "recent"}).json()["results"]
    assert [row["id"] for row in recent] == [yesterday.pk]
    assert client.get(DOSES, {"when": "someday"}).status_code == 400

    bad = post(client, dose_url(now_dose, "answer"), {"answer": "maybe"})
    assert bad.status_code == 400 and "answer" in bad.json()
    skipped = post(client, dose_url(now_dose, "answer"), {"answer": "skipped", "reason": "Nausée"})
    assert skipped.status_code == 200, skipped.content
    assert (skipped.json()["status"], skipped.json()["skip_reason"]) == ("skipped", "Nausée")
    again = post(client, dose_url(now_dose, "answer"), {"answer": "taken"})
    assert again.status_code == 400 and again.json()["detail"]
    early = post(client, dose_url(later, "answer"), {"answer": "taken"})
    assert early.status_code == 400 and early.json()["detail"]


def test_others_get_404_on_doses_all_audited(
    doses: list[DoseReminder], patient2: User, clinician: User, record2: Patient
) -> None:
    dose = doses[0]
    for user in (patient2, clinician):
        client = client_for(user)
        before = denials(user)
        assert_denied(client.get(dose_url(dose)), user, before)
        assert_denied(post(client, dose_url(dose, "answer"), {"answer": "taken"}), user, before + 1)
    assert client_for(patient2).get(DOSES).json()["results"] == []
    dose.refresh_from_db()
    assert dose.status == DoseReminder.Status.SENT


# ---------------------------------------------------------------------------------------------
# Decision-support proposals


@pytest.fixture
def proposal(record: Patient) -> Proposal:
    rule = Rule.objects.create(
        code="hba1c-drift",
        kind=Rule.Kind.DRIFT,
        title="Glycémie en hausse : contrôler l'HbA1c",
        title_en="Glucose drifting up: check HbA1c",
        rationale="La glycémie moyenne est passée de {before} à {after} mmol/l.",
        rationale_en="Mean glucose went from {before} to {after} mmol/l.",
        task_kind=Task.Kind.EXAM,
    )
    return Proposal.objects.create(
        patient=record,
        rule=rule,
        rule_code=rule.code,
        fingerprint="2026-03",
        evidence={"summary": {"before": "7.1", "after": "9.4"}},
    )


def proposal_url(proposal: Proposal, action: str = "") -> str:
    return reverse(f"api:proposal-{action or 'detail'}", args=[proposal.pk])


def test_a_clinician_lists_then_accepts_a_proposal(
    proposal: Proposal, record: Patient, clinician: User, nurse: User
) -> None:
    client = client_for(clinician)

    listing = client.get(PROPOSALS, {"patient": record.pk}).json()["results"]
    assert [row["id"] for row in listing] == [proposal.pk]
    assert listing[0]["title"] == "Glucose drifting up: check HbA1c"
    assert listing[0]["reason"] == "Mean glucose went from 7.1 to 9.4 mmol/l."
    assert client.get(PROPOSALS).status_code == 400  # the patient is required
    accepted = post(client, proposal_url(proposal, "accept"), {"assignee": nurse.pk})
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == "accepted"
    task = Task.objects.get(pk=accepted.json()["task"])
    assert (task.assignee_id, task.kind, task.origin) == (nurse.pk, "exam", "decision-support")
    twice = post(client, proposal_url(proposal, "dismiss"), {"reason": "Déjà fait"})
    assert twice.status_code == 400 and twice.json()["detail"]


def test_dismissing_needs_a_reason(proposal: Proposal, clinician: User) -> None:
    client = client_for(clinician)

    empty = post(client, proposal_url(proposal, "dismiss"), {"reason": ""})
    assert empty.status_code == 400 and empty.json()["detail"]
    done = post(client, proposal_url(proposal, "dismiss"), {"reason": "HbA1c faite hier."})
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["dismiss_reason"]) == (
        "dismissed",
        "HbA1c faite hier.",
    )
    assert client.get(proposal_url(proposal)).json()["decided_by"] == clinician.pk


def test_others_get_404_on_proposals_all_audited(
    proposal: Proposal, record: Patient, outsider: User, patient: User, billing_user: User
) -> None:
    for user in (outsider, patient, billing_user):
        client = client_for(user)
        before = denials(user)
        assert_denied(client.get(proposal_url(proposal)), user, before)
        assert_denied(client.get(PROPOSALS, {"patient": record.pk}), user, before + 1)
        accept = post(client, proposal_url(proposal, "accept"))
        assert_denied(accept, user, before + 2)
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.OPEN


# ---------------------------------------------------------------------------------------------
# Cost and schema


def test_list_pages_cost_the_same_whatever_their_size(
    plan: CarePlan,
    make_plan: Callable[..., CarePlan],
    make_task: Callable[..., Task],
    proposal: Proposal,
    record: Patient,
    clinician: User,
    django_assert_max_num_queries: Any,
) -> None:
    client = client_for(clinician)
    make_task(title="Une")
    pages = [PLANS, TASKS, f"{PROPOSALS}?patient={record.pk}"]
    client.get(PLANS)  # the session's first request writes its marks
    small = {}
    for url in pages:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        small[url] = len(captured)
    for n in range(6):
        make_plan(title=f"Plan {n}", status=CarePlan.Status.COMPLETED)
        make_task(title=f"Tâche {n}", assignee=clinician)
        Proposal.objects.create(
            patient=record, rule=proposal.rule, rule_code=proposal.rule_code, fingerprint=f"f{n}"
        )
    for url in pages:
        with django_assert_max_num_queries(small[url]):
            response = client.get(url)
        assert response.json()["count"] == 7, url


def test_the_openapi_schema_describes_the_care_endpoints() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in (
        "/api/v1/care-plans/",
        "/api/v1/care-plans/{id}/",
        "/api/v1/tasks/",
        "/api/v1/tasks/{id}/assign/",
        "/api/v1/tasks/{id}/complete/",
        "/api/v1/tasks/{id}/cancel/",
        "/api/v1/questionnaire-requests/{id}/answer/",
        "/api/v1/doses/{id}/answer/",
        "/api/v1/proposals/{id}/accept/",
        "/api/v1/proposals/{id}/dismiss/",
    ):
        assert path in schema["paths"], path
