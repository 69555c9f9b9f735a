"""Care coordination as FHIR R4: each mapping validates with fhir.resources and carries what the
rows hold (apps/care/fhir.py documents the element mapping)."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.care.fhir import (
    GOAL_ACHIEVEMENT,
    PATHWAY_URL,
    QUESTIONNAIRE_URL,
    SYS_ACTIVITY_KIND,
    SYS_ORIGIN,
    SYS_QUESTIONNAIRE_PURPOSE,
    SYS_TASK_KIND,
    SYS_TASK_OUTPUT,
    TRANSLATION,
    careplan_to_fhir,
    plans_with_related,
    questionnaire_to_fhir,
    response_to_fhir,
    task_to_fhir,
)
from apps.care.models import CarePlan, Questionnaire, QuestionnaireResponse, Task
from apps.records.fhir import EXT, SYS_ROLE, SYS_USER, validate
from apps.records.models import CareTeam, Patient, Practitioner


def test_a_care_plan_reads_as_a_valid_careplan_with_goals_and_activities(
    plan: CarePlan, task: Task, record: Patient, coordinator: User
) -> None:
    resource = careplan_to_fhir(plan)

    validate(resource)
    assert resource["id"] == str(plan.fhir_id)
    assert resource["meta"]["versionId"] == str(plan.version)
    assert (resource["status"], resource["intent"]) == ("active", "plan")
    assert resource["instantiatesCanonical"] == [f"{PATHWAY_URL}heart-failure|2"]
    assert resource["title"] == "Insuffisance cardiaque — suivi"
    assert resource["description"] == "Stabiliser le poids et la tension."
    assert resource["subject"] == {"reference": f"Patient/{record.fhir_id}"}
    assert resource["period"] == {"start": "2026-03-02"}
    # The coordinator has no Practitioner: named by their account.
    assert resource["author"] == {
        "identifier": {"system": SYS_USER, "value": str(coordinator.pk)},
        "display": coordinator.get_full_name(),
    }
    team = CareTeam.objects.get(patient=record)
    assert resource["careTeam"] == [{"reference": f"CareTeam/{team.fhir_id}"}]
    assert resource["extension"] == [
        {
            "url": EXT + "follow-up-interval",
            "valueDuration": {
                "value": 30,
                "unit": "d",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            },
        },
        {"url": EXT + "next-follow-up", "valueDate": "2026-04-01"},
    ]
    # Goals: contained, referenced in order.
    first, second = resource["contained"]
    assert resource["goal"] == [{"reference": f"#{first['id']}"}, {"reference": f"#{second['id']}"}]
    assert first["lifecycleStatus"] == "active"
    assert first["description"] == {"text": "Tension systolique sous 140"}
    assert first["target"] == [
        {
            "measure": {
                "coding": [
                    {
                        "system": "http://loinc.org",
                        "code": "8480-6",
                        "display": "Systolic blood pressure",
                    }
                ]
            },
            "detailRange": {
                "low": {"value": 100, "unit": "mm[Hg]"},
                "high": {"value": 140, "unit": "mm[Hg]"},
            },
            "dueDate": "2026-06-01",
        }
    ]
    assert second["lifecycleStatus"] == "completed"
    assert second["achievementStatus"]["coding"][0] == {
        "system": GOAL_ACHIEVEMENT,
        "code": "achieved",
        "display": "Achieved",
    }
    # Activities: kind, code, status, schedule, performer or profession, origin, tasks.
    weighing, visit, education = resource["activity"]
    assert weighing["detail"]["kind"] == "ServiceRequest"
    assert weighing["detail"]["code"] == {
        "coding": [
            {"system": SYS_ACTIVITY_KIND, "code": "monitoring", "display": "remote monitoring"}
        ],
        "text": "Pesée quotidienne",
    }
    assert weighing["detail"]["status"] == "not-started"
    assert weighing["detail"]["scheduledTiming"] == {
        "event": ["2026-03-09"],
        "repeat": {"frequency": 1, "period": 7, "periodUnit": "d"},
    }
    assert weighing["detail"]["extension"] == [
        {
            "url": EXT + "responsible-role",
            "valueCodeableConcept": {
                "coding": [{"system": SYS_ROLE, "code": "nurse", "display": "Nurse"}]
            },
        },
        {
            "url": EXT + "origin",
            "valueCoding": {
                "system": SYS_ORIGIN,
                "code": "template",
                "display": "pathway template",
            },
        },
    ]
    assert weighing["outcomeReference"] == [{"reference": f"Task/{task.fhir_id}"}]
    assert visit["detail"]["kind"] == "Appointment"
    assert visit["detail"]["scheduledPeriod"] == {"end": "2026-04-01"}
    assert visit["detail"]["performer"][0]["identifier"]["value"] == str(coordinator.pk)
    assert visit["detail"]["status"] == "scheduled"
    assert education["detail"]["kind"] == "CommunicationRequest"
    assert education["detail"]["description"] == "Régime pauvre en sel"
    assert education["detail"]["status"] == "completed"
    assert "addresses" not in resource and "basedOn" not in resource


def test_a_plan_from_scratch_has_no_canonical_and_a_draft_stays_a_draft(
    make_plan: object, record: Patient
) -> None:
    plan = CarePlan.objects.create(
        patient=record,
        title="Plan libre",
        status=CarePlan.Status.DRAFT,
        created_by=record.user,  # type: ignore[misc]
        end_date=dt.date(2030, 1, 1),
    )

    resource = careplan_to_fhir(plan)

    validate(resource)
    assert resource["status"] == "draft"
    assert "instantiatesCanonical" not in resource
    assert "goal" not in resource and "activity" not in resource and "contained" not in resource
    assert resource["period"]["end"] == "2030-01-01"


def test_the_plan_mapping_reads_a_page_in_a_fixed_number_of_queries(
    plan: CarePlan, make_plan: object, record: Patient, coordinator: User
) -> None:
    def page() -> int:
        with CaptureQueriesContext(connection) as captured:
            for row in plans_with_related(CarePlan.objects.filter(patient=record)):
                validate(careplan_to_fhir(row))
        return len(captured)

    one = page()
    for n in range(3):
        other = CarePlan.objects.create(
            patient=record, title=f"Autre {n}", created_by=coordinator, coordinator=coordinator
        )
        for goal in plan.goals.all():
            goal.pk = None
            goal.plan = other
            goal.save()
    assert page() == one


def test_a_task_reads_as_a_valid_task(
    task: Task,
    plan: CarePlan,
    record: Patient,
    clinician: User,
    nurse: User,
    practitioner: Practitioner,
) -> None:
    resource = task_to_fhir(task)

    validate(resource)
    assert resource["id"] == str(task.fhir_id)
    assert (resource["status"], resource["intent"], resource["priority"]) == (
        "completed",
        "order",
        "urgent",
    )
    assert resource["code"] == {
        "coding": [
            {"system": SYS_TASK_KIND, "code": "wound-care", "display": "wound care / dressing"}
        ]
    }
    assert resource["description"] == "Refaire le pansement"
    assert resource["for"] == {"reference": f"Patient/{record.fhir_id}"}
    assert resource["basedOn"] == [{"reference": f"CarePlan/{plan.fhir_id}"}]
    assert resource["requester"]["reference"] == f"Practitioner/{practitioner.fhir_id}"
    assert resource["owner"]["identifier"] == {"system": SYS_USER, "value": str(nurse.pk)}
    assert "performerType" not in resource  # assigned to a person
    assert dt.datetime.fromisoformat(resource["restriction"]["period"]["end"]) == task.due_at
    assert dt.datetime.fromisoformat(resource["authoredOn"]) == task.created_at
    assert dt.datetime.fromisoformat(resource["lastModified"]) == task.updated_at
    assert dt.datetime.fromisoformat(resource["executionPeriod"]["end"]) == task.completed_at
    instructions, note = resource["note"]
    assert instructions["text"] == "Pansement sec, contrôler la rougeur."
    assert instructions["authorReference"]["reference"] == f"Practitioner/{practitioner.fhir_id}"
    assert note["text"] == "Patiente absente ce matin, repasse."
    assert note["authorReference"]["identifier"]["value"] == str(nurse.pk)
    assert resource["output"] == [
        {
            "type": {
                "coding": [{"system": SYS_TASK_OUTPUT, "code": "report", "display": "Report"}]
            },
            "valueString": "Plaie propre, pansement refait.",
        }
    ]


def test_an_unassigned_cancelled_task_names_the_profession_and_the_reason(
    make_task: object, record: Patient
) -> None:
    task = make_task(assignee_role="physician", kind=Task.Kind.REVIEW_RESULTS)  # type: ignore[operator]
    Task.objects.filter(pk=task.pk).update(
        status=Task.Status.CANCELLED, cancel_reason="Fait en consultation."
    )
    task.refresh_from_db()

    resource = task_to_fhir(task)

    validate(resource)
    assert resource["status"] == "cancelled"
    assert resource["statusReason"] == {"text": "Fait en consultation."}
    assert "owner" not in resource
    assert resource["performerType"] == [
        {"coding": [{"system": SYS_ROLE, "code": "physician", "display": "Physician"}]}
    ]
    assert "output" not in resource and "basedOn" not in resource


def test_a_questionnaire_reads_with_its_items_types_options_and_translations(
    questionnaire: Questionnaire,
) -> None:
    resource = questionnaire_to_fhir(questionnaire)

    validate(resource)
    assert resource["url"] == QUESTIONNAIRE_URL + "post-op-knee"
    assert resource["version"] == str(questionnaire.version)
    assert resource["name"] == "post-op-knee"
    assert (resource["status"], resource["language"]) == ("active", "fr")
    assert resource["title"] == "Suivi après opération du genou"
    assert resource["_title"]["extension"] == [
        {
            "url": TRANSLATION,
            "extension": [
                {"url": "lang", "valueCode": "en"},
                {"url": "content", "valueString": "Follow-up after knee surgery"},
            ],
        },
        {
            "url": TRANSLATION,
            "extension": [
                {"url": "lang", "valueCode": "de"},
                {"url": "content", "valueString": "Nachsorge nach Knieoperation"},
            ],
        },
    ]
    assert resource["useContext"][0]["valueCodeableConcept"]["coding"][0] == {
        "system": SYS_QUESTIONNAIRE_PURPOSE,
        "code": "follow-up",
        "display": "follow-up questionnaire",
    }
    pain, wound, temp, fever, comment = resource["item"]
    assert [i["type"] for i in resource["item"]] == [
        "integer",
        "choice",
        "decimal",
        "boolean",
        "text",
    ]
    assert (pain["linkId"], pain["text"], pain["required"]) == ("pain", "Douleur (0 à 10)", True)
    assert pain["extension"] == [
        {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
        {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10},
    ]
    assert len(pain["_text"]["extension"]) == 2
    assert temp["extension"][1] == {
        "url": "http://hl7.org/fhir/StructureDefinition/maxValue",
        "valueDecimal": 42,
    }
    assert wound["answerOption"][0]["valueCoding"]["code"] == "ok"
    assert wound["answerOption"][0]["valueCoding"]["display"] == "Propre"
    assert len(wound["answerOption"][0]["valueCoding"]["_display"]["extension"]) == 2
    assert wound["answerOption"][1]["valueCoding"]["_display"]["extension"][0]["extension"][1] == {
        "url": "content",
        "valueString": "Red",
    }
    assert fever["required"] is False and "answerOption" not in fever
    assert "_text" not in comment


def test_a_response_reads_with_typed_answers_in_the_questionnaires_order(
    response: QuestionnaireResponse, questionnaire: Questionnaire, record: Patient
) -> None:
    resource = response_to_fhir(response)

    validate(resource)
    assert resource["questionnaire"] == (
        f"{QUESTIONNAIRE_URL}post-op-knee|{response.questionnaire_version}"
    )
    assert resource["status"] == "completed"
    patient_ref = {"reference": f"Patient/{record.fhir_id}"}
    assert resource["subject"] == resource["author"] == resource["source"] == patient_ref
    assert dt.datetime.fromisoformat(resource["authored"]) == response.authored_at
    assert resource["extension"] == [{"url": EXT + "needs-attention", "valueBoolean": True}]
    assert [(i["linkId"], i["answer"]) for i in resource["item"]] == [
        ("pain", [{"valueInteger": 8}]),
        ("wound", [{"valueCoding": {"code": "red", "display": "Rouge"}}]),
        ("temp", [{"valueDecimal": 37.8}]),
        ("fever", [{"valueBoolean": False}]),
        ("comment", [{"valueString": "Ça tire"}]),
    ]
    assert resource["item"][0]["text"] == "Douleur (0 à 10)"


def test_a_response_to_an_older_version_keeps_the_answers_of_removed_questions(
    response: QuestionnaireResponse, questionnaire: Questionnaire, clinician: User
) -> None:
    questionnaire.items = questionnaire.items[:1]
    questionnaire.save()
    QuestionnaireResponse.objects.filter(pk=response.pk).update(author=clinician, flagged=False)
    response.refresh_from_db()

    resource = response_to_fhir(response)

    validate(resource)
    assert resource["questionnaire"].endswith(f"|{response.questionnaire_version}")
    assert response.questionnaire_version < questionnaire.version
    assert resource["author"]["identifier"]["value"] == str(clinician.pk)
    assert "extension" not in resource
    answers = {i["linkId"]: i["answer"][0] for i in resource["item"]}
    assert answers["pain"] == {"valueInteger": 8}
    assert answers["wound"] == {"valueString": "red"}
    assert answers["fever"] == {"valueBoolean": False}
