"""CarePlan, Task, Questionnaire and QuestionnaireResponse in the FHIR API: read and search under
the care access rule (patients see their plans and responses, never the tasks; the care team
sees all three; outsiders and billing staff none), $everything, $export, the capability
statement, bad parameters and a constant cost per page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.care.fhir import QUESTIONNAIRE_URL, SYS_QUESTIONNAIRE, SYS_TASK_KIND
from apps.care.models import CarePlan, Questionnaire, QuestionnaireResponse, Task
from apps.records.fhir import SYS_USER, validate
from apps.records.models import Patient, Practitioner
from tests.interop.conftest import entries
from tests.interop.test_fhir_bulk import download, finish, kick, manifest

from .conftest import Fhir, last_audit, system_client

CARE_TYPES = ("CarePlan", "Task", "QuestionnaireResponse")


def ids(client: Client, resource_type: str, **params: Any) -> set[str]:
    response = client.get(f"/fhir/{resource_type}", params)
    assert response.status_code == 200, response.content
    found = entries(response.json())
    for resource in found:
        validate(resource)
    return {resource["id"] for resource in found if resource["resourceType"] == resource_type}


def read(client: Client, resource_type: str, obj: Any) -> Any:
    return client.get(f"/fhir/{resource_type}/{obj.fhir_id}")


# ---------------------------------------------------------------------------------------------
# Reads and who sees what


def test_the_care_team_reads_each_type_and_the_read_is_audited(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    questionnaire: Questionnaire,
    record: Patient,
    nurse: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(nurse, "user/*.rs")
    for resource_type, obj in (
        ("CarePlan", plan),
        ("Task", task),
        ("QuestionnaireResponse", response),
        ("Questionnaire", questionnaire),
    ):
        answer = read(client, resource_type, obj)
        assert answer.status_code == 200, (resource_type, answer.content)
        resource = answer.json()
        validate(resource)
        assert (resource["resourceType"], resource["id"]) == (resource_type, str(obj.fhir_id))
        assert answer["ETag"] == f'W/"{obj.version}"'
        event = last_audit()
        assert (event.action, event.object_type) == ("read", f"fhir.{resource_type}")
        assert event.object_id == str(obj.fhir_id)
        assert event.patient_id == ("" if resource_type == "Questionnaire" else str(record.pk))


def test_a_patient_reads_their_plans_and_responses_but_never_a_task(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    record: Patient,
    patient: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(patient, "patient/*.rs")

    assert read(client, "CarePlan", plan).status_code == 200
    assert read(client, "QuestionnaireResponse", response).status_code == 200
    answer = read(client, "Task", task)
    assert answer.status_code == 404
    assert answer.json()["resourceType"] == "OperationOutcome"
    denial = last_audit()
    assert (denial.action, denial.object_type) == ("denied", "fhir.Task")
    assert (denial.object_id, denial.actor_id) == (str(task.fhir_id), patient.pk)
    assert ids(client, "CarePlan") == {str(plan.fhir_id)}
    assert ids(client, "QuestionnaireResponse") == {str(response.fhir_id)}
    assert ids(client, "Task") == set()
    assert ids(client, "Task", patient=str(record.fhir_id)) == set()


def test_a_patient_does_not_see_a_draft_plan(
    plan: CarePlan, make_plan: Callable[..., CarePlan], patient: User, fhir_client: Fhir
) -> None:
    draft = make_plan(title="En préparation", status=CarePlan.Status.DRAFT)
    client = fhir_client(patient, "patient/*.rs")

    assert ids(client, "CarePlan") == {str(plan.fhir_id)}
    assert read(client, "CarePlan", draft).status_code == 404
    assert last_audit().action == "denied"


def test_another_patient_sees_none_of_them(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    record2: Patient,
    patient2: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(patient2, "patient/*.rs")

    for resource_type, obj in (("CarePlan", plan), ("QuestionnaireResponse", response)):
        assert read(client, resource_type, obj).status_code == 404
        assert last_audit().action == "denied"
        assert ids(client, resource_type) == set()


def test_an_outsider_clinician_gets_404_and_empty_searches_all_audited(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    record: Patient,
    outsider: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(outsider, "user/*.rs")
    for resource_type, obj in (
        ("CarePlan", plan),
        ("Task", task),
        ("QuestionnaireResponse", response),
    ):
        answer = read(client, resource_type, obj)
        assert answer.status_code == 404
        denial = last_audit()
        assert (denial.action, denial.outcome) == ("denied", "denied")
        assert (denial.object_type, denial.object_id) == (
            f"fhir.{resource_type}",
            str(obj.fhir_id),
        )
        assert denial.actor_id == outsider.pk
        for params in ({}, {"patient": str(record.fhir_id)}):
            bundle = client.get(f"/fhir/{resource_type}", params).json()
            assert bundle["total"] == 0 and not entries(bundle)
            search = last_audit()
            assert (search.object_type, search.detail["fhir"]) == (
                f"fhir.{resource_type}",
                "search",
            )
            assert search.actor_id == outsider.pk


def test_billing_staff_see_none_of_them(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    record: Patient,
    billing_user: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(billing_user, "user/*.rs")
    # Billing staff may open the patient's administrative data, not care coordination.
    assert client.get(f"/fhir/Patient/{record.fhir_id}").status_code == 200
    for resource_type, obj in (
        ("CarePlan", plan),
        ("Task", task),
        ("QuestionnaireResponse", response),
    ):
        assert read(client, resource_type, obj).status_code == 404
        assert last_audit().action == "denied"
        assert ids(client, resource_type, patient=str(record.fhir_id)) == set()


def test_a_system_token_reads_what_its_scopes_name(
    plan: CarePlan, task: Task, response: QuestionnaireResponse, questionnaire: Questionnaire
) -> None:
    everything = system_client()
    assert ids(everything, "CarePlan") == {str(plan.fhir_id)}
    assert ids(everything, "Task") == {str(task.fhir_id)}
    assert ids(everything, "QuestionnaireResponse") == {str(response.fhir_id)}
    assert str(questionnaire.fhir_id) in ids(everything, "Questionnaire")
    plans_only = system_client("system/CarePlan.rs")
    assert ids(plans_only, "CarePlan") == {str(plan.fhir_id)}
    answer = plans_only.get("/fhir/Task")
    assert answer.status_code == 403
    assert answer.json()["resourceType"] == "OperationOutcome"


def test_an_emergency_access_opens_the_care_plan_as_the_portal_does(
    plan: CarePlan, task: Task, record: Patient, outsider: User, fhir_client: Fhir
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.records.models import BreakGlassAccess

    BreakGlassAccess.objects.create(
        user=outsider,
        patient=record,
        reason="Patient inconscient aux urgences.",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    client = fhir_client(outsider, "user/*.rs")

    assert read(client, "CarePlan", plan).status_code == 200
    assert read(client, "Task", task).status_code == 200


# ---------------------------------------------------------------------------------------------
# Searching


def test_search_plans_by_patient_subject_status_and_date(
    plan: CarePlan,
    make_plan: Callable[..., CarePlan],
    record: Patient,
    record2: Patient,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    done = make_plan(title="Ancien plan", status=CarePlan.Status.COMPLETED)
    other = make_plan(chart=record2, title="Plan de la voisine")
    client = fhir_client(clinician, "user/*.rs")

    assert ids(client, "CarePlan", patient=str(record.fhir_id)) == {
        str(plan.fhir_id),
        str(done.fhir_id),
    }
    assert ids(client, "CarePlan", subject=f"Patient/{record2.fhir_id}") == {str(other.fhir_id)}
    assert ids(client, "CarePlan", status="completed") == {str(done.fhir_id)}
    assert ids(client, "CarePlan", status="active,completed", patient=str(record.fhir_id)) == {
        str(plan.fhir_id),
        str(done.fhir_id),
    }
    assert ids(client, "CarePlan", date="2026-03-02") == {str(plan.fhir_id)}
    assert ids(client, "CarePlan", _lastUpdated="gt2000-01-01") == {
        str(plan.fhir_id),
        str(done.fhir_id),
        str(other.fhir_id),
    }
    included = client.get(
        "/fhir/CarePlan", {"_id": str(plan.fhir_id), "_include": "CarePlan:patient"}
    ).json()
    assert [e["resource"]["resourceType"] for e in included["entry"]] == ["CarePlan", "Patient"]


def test_search_tasks_by_owner_code_status_plan_and_page_them(
    plan: CarePlan,
    task: Task,
    make_task: Callable[..., Task],
    record: Patient,
    clinician: User,
    nurse: User,
    coordinator: User,
    fhir_client: Fhir,
) -> None:
    nurse_practitioner = Practitioner.objects.create(user=nurse, registration_number="7601000999")
    calls = [make_task(title=f"Appel {n}") for n in range(4)]
    for_coordinator = make_task(assignee=coordinator, kind=Task.Kind.HANDOVER)
    client = fhir_client(clinician, "user/*.rs")
    every = {str(t.fhir_id) for t in [task, *calls, for_coordinator]}

    assert ids(client, "Task", patient=str(record.fhir_id)) == every
    nurses = {str(t.fhir_id) for t in [task, *calls]}
    assert ids(client, "Task", owner=f"Practitioner/{nurse_practitioner.fhir_id}") == nurses
    assert ids(client, "Task", owner=f"{SYS_USER}|{nurse.pk}") == nurses
    assert ids(client, "Task", owner=str(coordinator.pk)) == {str(for_coordinator.fhir_id)}
    assert ids(client, "Task", owner="not-a-person") == set()
    assert ids(client, "Task", code=f"{SYS_TASK_KIND}|handover") == {str(for_coordinator.fhir_id)}
    assert ids(client, "Task", code="wound-care") == {str(task.fhir_id)}
    assert ids(client, "Task", code="http://other.example|wound-care") == set()
    assert ids(client, "Task", status="completed") == {str(task.fhir_id)}
    assert ids(client, "Task", status="requested", owner=str(nurse.pk)) == {
        str(t.fhir_id) for t in calls
    }
    assert ids(client, "Task", priority="urgent") == {str(task.fhir_id)}
    assert ids(client, "Task", **{"based-on": f"CarePlan/{plan.fhir_id}"}) == {str(task.fhir_id)}
    assert ids(client, "Task", requester=f"{SYS_USER}|{clinician.pk}") == every
    # Paging: _count with next links until the end, each task once.
    seen: list[str] = []
    url: str | None = "/fhir/Task?_count=2&_sort=authored-on"
    while url:
        bundle = client.get(url).json()
        assert bundle["total"] == 6
        seen += [r["id"] for r in entries(bundle)]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert len(seen) == 6 and set(seen) == every
    assert seen[0] == str(task.fhir_id)  # the oldest first


def test_search_responses_and_questionnaires(
    response: QuestionnaireResponse,
    questionnaire: Questionnaire,
    record: Patient,
    clinician: User,
    patient: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    survey = Questionnaire.objects.create(
        code="satisfaction-consultation",
        title="Votre avis sur la consultation",
        purpose=Questionnaire.Purpose.SATISFACTION,
        status=Questionnaire.Status.RETIRED,
        items=[{"link_id": "note", "text": "Note", "type": "integer"}],
    )
    answered = QuestionnaireResponse.objects.create(
        patient=record,
        questionnaire=survey,
        questionnaire_version=1,
        answers={"note": 9},
        author=patient,
    )

    assert ids(client, "QuestionnaireResponse", patient=str(record.fhir_id)) == {
        str(response.fhir_id),
        str(answered.fhir_id),
    }
    assert ids(client, "QuestionnaireResponse", status="completed") == {
        str(response.fhir_id),
        str(answered.fhir_id),
    }
    assert ids(client, "QuestionnaireResponse", status="in-progress") == set()
    assert ids(
        client, "QuestionnaireResponse", questionnaire=f"Questionnaire/{survey.fhir_id}"
    ) == {str(answered.fhir_id)}
    # Questionnaires: by canonical URL, identifier, status, name and title.
    assert ids(client, "Questionnaire", url=QUESTIONNAIRE_URL + "post-op-knee") == {
        str(questionnaire.fhir_id)
    }
    assert ids(client, "Questionnaire", identifier=f"{SYS_QUESTIONNAIRE}|{survey.code}") == {
        str(survey.fhir_id)
    }
    assert str(survey.fhir_id) in ids(client, "Questionnaire", status="retired")
    assert str(questionnaire.fhir_id) not in ids(client, "Questionnaire", status="retired")
    assert ids(client, "Questionnaire", name="post-op") == {str(questionnaire.fhir_id)}
    assert ids(client, "Questionnaire", title="Follow-up after") == {str(questionnaire.fhir_id)}
    # A patient reads the forms too (they are not patient data).
    patient_client = fhir_client(patient, "patient/*.rs")
    assert read(patient_client, "Questionnaire", survey).status_code == 200


def test_bad_search_parameters_answer_an_operation_outcome(
    plan: CarePlan, clinician: User, fhir_client: Fhir
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    for resource_type, params, expression in (
        ("CarePlan", {"colour": "blue"}, "colour"),
        ("Task", {"owner": "Patient/0b5e3f54-8a6e-4c8e-9a53-7b6f1c2d3e4f"}, "owner"),
        ("Task", {"authored-on": "yesterday"}, "created_at"),
        ("QuestionnaireResponse", {"_count": "many"}, "_count"),
        ("Questionnaire", {"_sort": "colour"}, "_sort"),
        ("Task", {"_sort": "code"}, "_sort"),
    ):
        answer = client.get(f"/fhir/{resource_type}", params)
        assert answer.status_code == 400, (resource_type, params)
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        validate(outcome)
        assert outcome["issue"][0]["expression"] == [expression]


def test_plans_are_read_only_and_a_closed_task_stays_closed(
    task: Task, plan: CarePlan, clinician: User, fhir_client: Fhir
) -> None:
    client = fhir_client(clinician, "user/*.cruds")
    care_plan = read(client, "CarePlan", plan).json()
    resource = read(client, "Task", task).json()
    resource["status"] = "cancelled"
    resource["statusReason"] = {"text": "Plus nécessaire"}

    plan_put = client.put(
        f"/fhir/CarePlan/{plan.fhir_id}", care_plan, content_type="application/fhir+json"
    )
    created = client.post("/fhir/Task", resource, content_type="application/fhir+json")
    updated = client.put(
        f"/fhir/Task/{task.fhir_id}", resource, content_type="application/fhir+json"
    )

    assert plan_put.status_code == 405
    # Tasks are written (see test_fhir_task_write.py), but a new one starts as requested and a
    # completed one is never reopened or cancelled
    assert created.status_code == updated.status_code == 422
    assert created.json()["resourceType"] == updated.json()["resourceType"] == "OperationOutcome"
    task.refresh_from_db()
    assert task.status == Task.Status.COMPLETED
    assert Task.objects.count() == 1


def test_the_capability_statement_lists_the_care_types() -> None:
    statement = Client().get("/fhir/metadata").json()
    validate(statement)
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    expected = {
        "CarePlan": {"patient", "subject", "status", "date", "_lastUpdated"},
        "Task": {"patient", "subject", "status", "owner", "code", "_lastUpdated", "based-on"},
        "QuestionnaireResponse": {"patient", "subject", "status", "authored", "questionnaire"},
        "Questionnaire": {"url", "status", "name", "title", "identifier"},
    }
    reading = {"read", "vread", "search-type"}
    for resource_type, params in expected.items():
        entry = resources[resource_type]
        written = {"create", "update"} if resource_type == "Task" else set()
        assert {i["code"] for i in entry["interaction"]} == reading | written, resource_type
        assert params <= {p["name"] for p in entry["searchParam"]}, resource_type
    assert "Task:based-on" in resources["CarePlan"]["searchRevInclude"]


# ---------------------------------------------------------------------------------------------
# $everything and $export


def test_everything_includes_the_care_types_each_caller_may_read(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    record: Patient,
    patient: User,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    for user, scopes, expected in (
        (clinician, "user/*.rs", {plan.fhir_id, task.fhir_id, response.fhir_id}),
        (patient, "patient/*.rs", {plan.fhir_id, response.fhir_id}),
    ):
        client = fhir_client(user, scopes)
        answer = client.get(f"/fhir/Patient/{record.fhir_id}/$everything", {"_count": 500})
        assert answer.status_code == 200
        bundle = answer.json()
        found = {
            (r["resourceType"], r["id"]) for r in entries(bundle) if r["resourceType"] in CARE_TYPES
        }
        assert {fhir_id for _type, fhir_id in found} == {str(i) for i in expected}, user
        for resource in entries(bundle):
            validate(resource)
    staff = fhir_client(clinician, "user/*.rs")
    only_tasks = staff.get(
        f"/fhir/Patient/{record.fhir_id}/$everything", {"_type": "Patient,Task"}
    ).json()
    assert [r["resourceType"] for r in entries(only_tasks)] == ["Patient", "Task"]


def test_the_bulk_export_has_the_care_types_each_caller_may_read(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    patient: User,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    for user, scopes, expected in (
        (
            clinician,
            "user/*.rs",
            {"CarePlan": plan, "Task": task, "QuestionnaireResponse": response},
        ),
        (patient, "patient/*.rs", {"CarePlan": plan, "QuestionnaireResponse": response}),
    ):
        client = fhir_client(user, scopes)
        job_id = kick(client, _type=",".join(CARE_TYPES))
        files = download(client, manifest(client, str(finish(job_id, block_size=2).pk)))
        assert set(files) == set(expected), user
        for resource_type, obj in expected.items():
            (exported,) = files[resource_type]
            assert exported["id"] == str(obj.fhir_id)
            assert exported == read(client, resource_type, obj).json()


def test_the_system_export_has_the_questionnaires(
    questionnaire: Questionnaire, response: QuestionnaireResponse
) -> None:
    client = system_client()
    job_id = kick(client, "/fhir/$export", _type="Questionnaire,QuestionnaireResponse")
    files = download(client, manifest(client, str(finish(job_id).pk)))
    assert str(questionnaire.fhir_id) in {r["id"] for r in files["Questionnaire"]}
    assert [r["id"] for r in files["QuestionnaireResponse"]] == [str(response.fhir_id)]


# ---------------------------------------------------------------------------------------------
# Cost


def test_a_search_page_costs_the_same_whatever_its_size(
    plan: CarePlan,
    task: Task,
    response: QuestionnaireResponse,
    make_plan: Callable[..., CarePlan],
    make_task: Callable[..., Task],
    record: Patient,
    clinician: User,
    patient: User,
    nurse: User,
    fhir_client: Fhir,
    django_assert_num_queries: Any,
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    client.get("/fhir/Patient", {"_summary": "count"})  # the token's first use is written
    params = {"patient": str(record.fhir_id), "_count": 1}
    small = {}
    for resource_type in CARE_TYPES:
        with CaptureQueriesContext(connection) as captured:
            client.get(f"/fhir/{resource_type}", params)
        small[resource_type] = len(captured)
    # More of each, with more related rows.
    for n in range(4):
        other = make_plan(title=f"Plan {n}", status=CarePlan.Status.COMPLETED)
        for activity in plan.activities.all():
            activity.pk = None
            activity.plan = other
            activity.save()
        extra = make_task(title=f"Tâche {n}", plan=other, instructions="Voir dossier")
        extra.notes.create(author=nurse, text=f"Note {n}")
        QuestionnaireResponse.objects.create(
            patient=record,
            questionnaire=response.questionnaire,
            questionnaire_version=1,
            answers={"pain": n},
            author=patient,
        )
    for resource_type in CARE_TYPES:
        with django_assert_num_queries(small[resource_type]):
            bundle = client.get(f"/fhir/{resource_type}", {**params, "_count": 5}).json()
        assert len(entries(bundle)) == 5 and bundle["total"] == 5, resource_type
