"""Task writes in the FHIR API, updating: status, owner and new notes through the care
services (If-Match, the claim race, hand-overs); every other change of a Task is refused;
transaction Bundles (see test_fhir_task_create.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent
from apps.care.fhir import SYS_TASK_KIND, SYS_TASK_OUTPUT
from apps.care.models import CarePlan, Task, TaskNote
from apps.notifications.models import Notification
from apps.records.fhir import SYS_ROLE
from apps.records.models import Patient, Practitioner

from .conftest import Fhir
from .task_writes import SCOPES, changes, new_task, person, problem, put, read, send

# ---------------------------------------------------------------------------------------------
# Status


def test_the_assignee_starts_holds_and_resumes_the_task(
    open_task: Task, nurse: User, clinician: User, fhir_client: Fhir
) -> None:
    client = fhir_client(nurse, SCOPES)

    started = put(client, open_task, {**read(client, open_task), "status": "in-progress"})
    assert started.status_code == 200, started.content
    assert started.json()["executionPeriod"]["start"]
    held = put(client, open_task, {**read(client, open_task), "status": "on-hold"})
    assert held.status_code == 200, held.content
    resumed = put(client, open_task, {**read(client, open_task), "status": "in-progress"})
    assert resumed.status_code == 200, resumed.content

    open_task.refresh_from_db()
    assert open_task.status == "in-progress" and open_task.started_at is not None
    assert changes(open_task) == ["", "started", "on-hold", "started"]
    assert Notification.objects.filter(user=clinician, title="A task was put on hold").exists()
    assert resumed["ETag"] == f'W/"{open_task.version}"'


def test_completing_needs_the_report_that_the_kind_requires(
    make_task: Callable[..., Task], nurse: User, clinician: User, fhir_client: Fhir
) -> None:
    task = make_task(kind=Task.Kind.REVIEW_RESULTS, title="Review the lab results")
    client = fhir_client(nurse, SCOPES)

    bare = put(client, task, {**read(client, task), "status": "completed"})
    assert bare.status_code == 422
    issue = problem(bare)
    assert "Write a report" in issue["diagnostics"]
    assert issue["expression"] == ["Task.status", "Task.output"]
    task.refresh_from_db()
    assert task.status == "requested"

    report = {"type": {"coding": [{"system": SYS_TASK_OUTPUT, "code": "report"}]}}
    done = {**read(client, task), "status": "completed"}
    done["output"] = [{**report, "valueString": "Potassium normal again."}]
    response = put(client, task, done)

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert (task.status, task.report, task.completed_by) == (
        "completed",
        done["output"][0]["valueString"],
        nurse,
    )
    assert response.json()["output"][0]["valueString"] == "Potassium normal again."
    completed = AuditEvent.objects.filter(object_type="care.task", object_id=str(task.pk))
    assert completed.order_by("-seq")[0].ip == "127.0.0.1"  # the request reaches the service
    assert Notification.objects.filter(
        user=clinician, title="A task you asked for is done"
    ).exists()


def test_cancelling_needs_a_reason(open_task: Task, clinician: User, fhir_client: Fhir) -> None:
    client = fhir_client(clinician, SCOPES)

    bare = put(client, open_task, {**read(client, open_task), "status": "cancelled"})
    assert bare.status_code == 422
    assert "Say why the task is cancelled." in problem(bare)["diagnostics"]

    reason = {"text": "The patient was admitted to hospital."}
    response = put(
        client,
        open_task,
        {**read(client, open_task), "status": "cancelled", "statusReason": reason},
    )

    assert response.status_code == 200, response.content
    open_task.refresh_from_db()
    assert (open_task.status, open_task.cancel_reason) == ("cancelled", reason["text"])
    assert response.json()["statusReason"] == reason
    assert changes(open_task)[-1] == "cancelled"


def test_a_completed_task_is_never_reopened(task: Task, nurse: User, fhir_client: Fhir) -> None:
    client = fhir_client(nurse, SCOPES)
    stored = read(client, task)

    restart = put(client, task, {**stored, "status": "in-progress"})
    back = put(client, task, {**stored, "status": "requested"})
    rewritten = put(
        client, task, {**stored, "output": [{**stored["output"][0], "valueString": "x"}]}
    )

    assert restart.status_code == 422
    assert "This task is already done." in problem(restart)["diagnostics"]
    assert back.status_code == 422
    assert "never reopened" in problem(back)["diagnostics"]
    assert rewritten.status_code == 422
    assert problem(rewritten)["expression"] == ["Task.output"]
    version = task.version
    task.refresh_from_db()
    assert (task.status, task.version) == ("completed", version)


def test_a_status_we_do_not_use_is_422(open_task: Task, nurse: User, fhir_client: Fhir) -> None:
    client = fhir_client(nurse, SCOPES)

    response = put(client, open_task, {**read(client, open_task), "status": "accepted"})

    assert response.status_code == 422
    assert problem(response)["expression"] == ["Task.status"]


# ---------------------------------------------------------------------------------------------
# Owner


def test_the_requester_hands_the_task_over(
    open_task: Task,
    clinician: User,
    coordinator: User,
    practitioner: Practitioner,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(clinician, SCOPES)

    response = put(client, open_task, {**read(client, open_task), "owner": person(coordinator)})

    assert response.status_code == 200, response.content
    open_task.refresh_from_db()
    assert open_task.assignee == coordinator
    assert changes(open_task)[-1] == "assigned"
    assert Notification.objects.filter(
        user=coordinator, title="A task was assigned to you"
    ).exists()

    # and the coordinator gives it back to the physician by their Practitioner resource
    back = {"reference": f"Practitioner/{practitioner.fhir_id}"}
    client = fhir_client(coordinator, SCOPES)
    response = put(client, open_task, {**read(client, open_task), "owner": back})
    assert response.status_code == 200, response.content
    open_task.refresh_from_db()
    assert open_task.assignee == clinician


def test_a_task_handed_over_in_progress_waits_for_its_new_owner(
    open_task: Task, nurse: User, clinician: User, coordinator: User, fhir_client: Fhir
) -> None:
    assignee = fhir_client(nurse, SCOPES)
    started = put(assignee, open_task, {**read(assignee, open_task), "status": "in-progress"})
    assert started.status_code == 200, started.content
    client = fhir_client(clinician, SCOPES)
    stored = read(client, open_task)
    assert stored["status"] == "in-progress"

    # the body still says in-progress, as read: the service puts it back to requested
    response = put(client, open_task, {**stored, "owner": person(coordinator)})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "requested"
    open_task.refresh_from_db()
    assert (open_task.assignee, open_task.status) == (coordinator, "requested")
    assert changes(open_task)[-2:] == ["started", "assigned"]


def test_handing_over_to_a_profession_and_claiming(
    open_task: Task, clinician: User, nurse2: User, fhir_client: Fhir
) -> None:
    nurses = [{"coding": [{"system": SYS_ROLE, "code": "nurse"}]}]
    requester = fhir_client(clinician, SCOPES)
    to_nurses = {**read(requester, open_task), "performerType": nurses}
    to_nurses.pop("owner")
    assert put(requester, open_task, to_nurses).status_code == 200
    open_task.refresh_from_db()
    assert (open_task.assignee, open_task.assignee_role) == (None, "nurse")

    client = fhir_client(nurse2, SCOPES)
    claimed = {**read(client, open_task), "owner": person(nurse2), "status": "in-progress"}
    response = put(client, open_task, claimed)

    assert response.status_code == 200, response.content
    open_task.refresh_from_db()
    assert (open_task.assignee, open_task.status) == (nurse2, "in-progress")
    assert changes(open_task)[-3:] == ["assigned", "claimed", "started"]


def test_a_nurse_claiming_a_task_already_taken_gets_the_service_refusal(
    make_task: Callable[..., Task], nurse: User, nurse2: User, fhir_client: Fhir
) -> None:
    task = make_task(assignee_role=Role.NURSE)
    first, second = fhir_client(nurse, SCOPES), fhir_client(nurse2, SCOPES)
    seen_by_second = read(second, task)  # both see it waiting for a nurse
    assert put(first, task, {**read(first, task), "owner": person(nurse)}).status_code == 200

    response = put(second, task, {**seen_by_second, "owner": person(nurse2)})

    assert response.status_code == 422
    issue = problem(response)
    assert issue["expression"] == ["Task.owner"]
    assert f"{nurse.get_full_name()} has already taken this task." in issue["diagnostics"]
    task.refresh_from_db()
    assert task.assignee == nurse


def test_only_the_parties_hand_an_assigned_task_over(
    open_task: Task, nurse2: User, coordinator: User, fhir_client: Fhir
) -> None:
    client = fhir_client(nurse2, SCOPES)

    response = put(client, open_task, {**read(client, open_task), "owner": person(coordinator)})

    assert response.status_code == 422
    assert "hands this task over" in problem(response)["diagnostics"]
    open_task.refresh_from_db()
    assert open_task.assignee is not None and open_task.assignee != coordinator


# ---------------------------------------------------------------------------------------------
# Everything else


def test_if_match_names_the_current_version(
    open_task: Task, nurse: User, fhir_client: Fhir
) -> None:
    client = fhir_client(nurse, SCOPES)
    stored = read(client, open_task)

    stale = put(client, open_task, {**stored, "status": "in-progress"}, HTTP_IF_MATCH='W/"7"')
    assert stale.status_code == 412
    open_task.refresh_from_db()
    assert open_task.status == "requested"

    current = put(client, open_task, {**stored, "status": "in-progress"}, HTTP_IF_MATCH='W/"1"')
    assert current.status_code == 200, current.content


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("Task.description", {"description": "Something else"}),
        ("Task.code", {"code": {"coding": [{"system": SYS_TASK_KIND, "code": "visit"}]}}),
        ("Task.priority", {"priority": "stat"}),
        ("Task.restriction", {"restriction": {"period": {"end": "2031-01-01T08:00:00+01:00"}}}),
        ("Task.basedOn", {"basedOn": None}),
        ("Task.requester", {"requester": None}),
        ("Task.note", {"note": []}),
        ("Task.statusReason", {"statusReason": {"text": "why not"}}),
        ("Task.output", {"output": [{"type": {"text": "report"}, "valueString": "done"}]}),
    ],
)
def test_other_elements_cannot_change(
    make_task: Callable[..., Task],
    plan: CarePlan,
    clinician: User,
    fhir_client: Fhir,
    path: str,
    change: dict[str, Any],
) -> None:
    task = make_task(
        plan=plan,
        instructions="Weigh her.",
        due_at=timezone.now() + dt.timedelta(days=1),
        priority="urgent",
    )
    client = fhir_client(clinician, SCOPES)
    resource = {**read(client, task), **change}
    resource = {key: value for key, value in resource.items() if value is not None}

    response = put(client, task, resource)

    assert response.status_code == 422, response.content
    issue = problem(response)
    assert issue["expression"] == [path]
    assert path in issue["diagnostics"]
    version = task.version
    task.refresh_from_db()
    assert task.version == version


def test_the_same_resource_sent_back_changes_nothing(
    open_task: Task, nurse: User, fhir_client: Fhir
) -> None:
    client = fhir_client(nurse, SCOPES)

    response = put(client, open_task, read(client, open_task))

    assert response.status_code == 200, response.content
    open_task.refresh_from_db()
    assert (open_task.version, changes(open_task)) == (1, [""])


def test_a_note_added_at_the_end_is_passed_on(
    open_task: Task, nurse: User, clinician: User, fhir_client: Fhir
) -> None:
    client = fhir_client(nurse, SCOPES)
    resource = read(client, open_task)
    resource["note"] = [*resource["note"], {"text": "Nobody answered; I try again at 14:00."}]

    response = put(client, open_task, resource)

    assert response.status_code == 200, response.content
    note = TaskNote.objects.get(task=open_task)
    assert (note.author, note.text) == (nurse, "Nobody answered; I try again at 14:00.")
    assert Notification.objects.filter(user=clinician, title="New note on a task").exists()
    assert [n["text"] for n in response.json()["note"]] == [n["text"] for n in resource["note"]]


def test_a_transaction_creates_and_updates_tasks(
    record: Patient, open_task: Task, clinician: User, fhir_client: Fhir
) -> None:
    client = fhir_client(clinician, SCOPES)
    on_hold = {**read(client, open_task), "status": "on-hold"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": new_task(record, description="Book the cardiology visit"),
                "request": {"method": "POST", "url": "Task"},
            },
            {
                "resource": on_hold,
                "request": {
                    "method": "PUT",
                    "url": f"Task/{open_task.fhir_id}",
                    "ifMatch": 'W/"1"',
                },
            },
        ],
    }

    response = send(client, "POST", "/fhir/", bundle)

    assert response.status_code == 200, response.content
    result = response.json()
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created", "200 OK"]
    created = Task.objects.get(title="Book the cardiology visit")
    assert result["entry"][0]["response"]["location"].endswith(
        f"/Task/{created.fhir_id}/_history/1"
    )
    assert created.requester == clinician
    open_task.refresh_from_db()
    assert open_task.status == "on-hold"


def test_a_refused_entry_undoes_the_whole_transaction(
    record: Patient, open_task: Task, clinician: User, fhir_client: Fhir
) -> None:
    client = fhir_client(clinician, SCOPES)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**read(client, open_task), "status": "on-hold"},
                "request": {"method": "PUT", "url": f"Task/{open_task.fhir_id}"},
            },
            {
                "resource": new_task(record, status="completed"),
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }

    response = send(client, "POST", "/fhir/", bundle)

    assert response.status_code == 422
    assert "Bundle.entry[1]" in problem(response)["diagnostics"]
    open_task.refresh_from_db()
    assert (open_task.status, Task.objects.count()) == ("requested", 1)
    assert changes(open_task) == [""]
