"""Task writes in the FHIR API, creating: a new Task through the care service, with its
permissions, audit rows and notifications; what is not ours to store is refused, and so are
system tokens, patients and clinicians off the care team (see test_fhir_task_update.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.care.fhir import SYS_TASK_KIND
from apps.care.models import CarePlan, Task, TaskNote
from apps.care.services.tasks import task_url
from apps.notifications.models import Notification
from apps.records.fhir import SYS_ROLE
from apps.records.models import Patient
from tests.care.helpers import Listener

from .conftest import Fhir, system_client
from .task_writes import SCOPES, changes, new_task, person, problem, put, read, send

# ---------------------------------------------------------------------------------------------
# Create


def test_a_clinician_creates_a_task_through_the_service(
    record: Patient,
    plan: CarePlan,
    clinician: User,
    nurse: User,
    fhir_client: Fhir,
) -> None:
    client = fhir_client(clinician, SCOPES)
    due = timezone.now().replace(microsecond=0) + dt.timedelta(days=2)
    resource = new_task(
        record,
        priority="urgent",
        owner=person(nurse),
        basedOn=[{"reference": f"CarePlan/{plan.fhir_id}"}],
        restriction={"period": {"end": due.isoformat()}},
        note=[{"text": "Ask about her weight this week."}, {"text": "She is deaf: speak up."}],
    )

    response = send(client, "POST", "/fhir/Task", resource)

    assert response.status_code == 201, response.content
    body = response.json()
    task = Task.objects.get(fhir_id=body["id"])
    assert response["Location"].endswith(f"/fhir/Task/{task.fhir_id}/_history/{task.version}")
    assert (task.patient, task.kind, task.title) == (record, "call", resource["description"])
    assert (task.requester, task.assignee, task.priority) == (clinician, nurse, "urgent")
    assert (task.plan, task.due_at, task.status) == (plan, due, "requested")
    assert task.instructions == "Ask about her weight this week."
    assert list(TaskNote.objects.filter(task=task).values_list("text", flat=True)) == [
        "She is deaf: speak up."
    ]
    created = AuditEvent.objects.get(
        object_type="care.task", object_id=str(task.pk), action="create"
    )
    assert created.actor_id == clinician.pk and created.patient_id == str(record.pk)
    assert created.ip == "127.0.0.1"  # the service's row knows the request, as in the portal
    assert AuditEvent.objects.filter(
        object_type="fhir.Task", object_id=str(task.fhir_id), action="create"
    ).exists()
    notice = Notification.objects.get(
        user=nurse, kind="care.task", title="A task was assigned to you"
    )
    assert notice.link == task_url(task)
    assert body["requester"]["identifier"]["value"] == str(clinician.pk)
    assert [note["text"] for note in body["note"]] == [n["text"] for n in resource["note"]]


def test_a_task_for_a_profession_and_the_team_hears_of_it(
    record: Patient,
    clinician: User,
    nurse: User,
    fhir_client: Fhir,
    django_capture_on_commit_callbacks: Any,
) -> None:
    page = Listener(nurse)
    nurses = {"coding": [{"system": SYS_ROLE, "code": "nurse"}]}
    resource = new_task(record, performerType=[nurses])

    with django_capture_on_commit_callbacks(execute=True):
        response = send(fhir_client(clinician, SCOPES), "POST", "/fhir/Task", resource)

    assert response.status_code == 201, response.content
    task = Task.objects.get(fhir_id=response.json()["id"])
    assert (task.assignee, task.assignee_role) == (None, "nurse")
    events = [e for e in page.receive(1) if e["type"] == "care.task"]
    assert [(e["id"], e["assignee_id"]) for e in events] == [(task.pk, None)]


def test_an_update_to_an_unknown_id_creates_the_task_with_that_id(
    record: Patient, clinician: User, fhir_client: Fhir
) -> None:
    chosen = str(uuid.uuid4())
    client = fhir_client(clinician, SCOPES)

    response = send(client, "PUT", f"/fhir/Task/{chosen}", {**new_task(record), "id": chosen})

    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert str(task.fhir_id) == chosen and task.requester == clinician
    assert response["Location"].endswith(f"/fhir/Task/{chosen}/_history/{task.version}")


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"code": {"coding": [{"system": SYS_TASK_KIND, "code": "juggle"}]}},
            "Task.code",
            "'juggle'",
        ),
        ({"code": {"text": "call"}}, "Task.code", SYS_TASK_KIND),
        ({"status": "in-progress"}, "Task.status", "'requested'"),
        ({"description": "  "}, "Task.description", "required"),
        ({"intent": "plan"}, "Task.intent", "'order'"),
        ({"identifier": [{"value": "CC-1"}]}, "Task.identifier", "not stored"),
        ({"output": [{"type": {"text": "x"}, "valueString": "done"}]}, "Task.output", "completing"),
    ],
)
def test_a_new_task_that_is_not_ours_to_store_is_422(
    record: Patient,
    clinician: User,
    fhir_client: Fhir,
    change: dict[str, Any],
    path: str,
    words: str,
) -> None:
    response = send(
        fhir_client(clinician, SCOPES), "POST", "/fhir/Task", new_task(record, **change)
    )

    assert response.status_code == 422, response.content
    issue = problem(response)
    assert path in issue["expression"] and words in issue["diagnostics"]
    assert not Task.objects.exists()


def test_the_requester_is_always_the_token_person(
    record: Patient, clinician: User, coordinator: User, fhir_client: Fhir
) -> None:
    client = fhir_client(clinician, SCOPES)
    claimed = new_task(record, requester=person(coordinator))

    refused = send(client, "POST", "/fhir/Task", claimed)
    accepted = send(client, "POST", "/fhir/Task", new_task(record, requester=person(clinician)))

    assert refused.status_code == 422
    assert problem(refused)["expression"] == ["Task.requester"]
    assert accepted.status_code == 201, accepted.content
    assert Task.objects.get().requester == clinician


def test_an_assignee_off_the_care_team_is_refused_with_the_service_message(
    record: Patient, clinician: User, outsider: User, fhir_client: Fhir
) -> None:
    resource = new_task(record, owner=person(outsider))

    response = send(fhir_client(clinician, SCOPES), "POST", "/fhir/Task", resource)

    assert response.status_code == 422
    issue = problem(response)
    assert issue["code"] == "business-rule"
    assert "is not on this patient's care team" in issue["diagnostics"]
    assert not Task.objects.exists()


def test_a_plan_of_another_patient_is_refused(
    record: Patient,
    record2: Patient,
    clinician: User,
    make_plan: Callable[..., CarePlan],
    fhir_client: Fhir,
) -> None:
    other = make_plan(chart=record2)
    resource = new_task(record, basedOn=[{"reference": f"CarePlan/{other.fhir_id}"}])

    response = send(fhir_client(clinician, SCOPES), "POST", "/fhir/Task", resource)

    assert response.status_code == 422
    assert "This plan belongs to another patient." in problem(response)["diagnostics"]
    assert not Task.objects.exists()


# ---------------------------------------------------------------------------------------------
# Who may write


def test_a_system_token_may_not_write_tasks(record: Patient, open_task: Task) -> None:
    client = system_client("system/Task.cruds")
    started = {**read(client, open_task), "status": "in-progress"}
    before = (Task.objects.count(), AuditEvent.objects.count())

    created = send(client, "POST", "/fhir/Task", new_task(record))
    updated = put(client, open_task, started)

    for response in (created, updated):
        assert response.status_code == 403
        assert "use a clinician's token" in problem(response)["diagnostics"]
    assert (Task.objects.count(), AuditEvent.objects.count()) == before
    open_task.refresh_from_db()
    assert open_task.status == "requested"


def test_a_patient_token_may_not_write_tasks(
    record: Patient, patient: User, fhir_client: Fhir
) -> None:
    response = send(fhir_client(patient, "patient/*.cruds"), "POST", "/fhir/Task", new_task(record))

    assert response.status_code == 403
    assert not Task.objects.exists()


def test_an_outsider_is_denied_audited_and_nothing_changes(
    record: Patient, open_task: Task, outsider: User, clinician: User, fhir_client: Fhir
) -> None:
    stored = read(fhir_client(clinician, "user/Task.rs"), open_task)
    client = fhir_client(outsider, SCOPES)

    created = send(client, "POST", "/fhir/Task", new_task(record))
    updated = put(
        client, open_task, {**stored, "status": "cancelled", "statusReason": {"text": "x"}}
    )

    assert (created.status_code, updated.status_code) == (404, 404)
    denials = AuditEvent.objects.filter(
        action="denied", actor_id=outsider.pk, object_type="fhir.Task"
    )
    assert sorted(denials.values_list("object_id", flat=True)) == sorted(
        [f"Patient/{record.fhir_id}", f"Task/{open_task.fhir_id}"]
    )
    assert Task.objects.count() == 1
    open_task.refresh_from_db()
    assert (open_task.status, open_task.version) == ("requested", 1)
    assert changes(open_task) == [""]  # the creation only


def test_a_read_only_token_may_not_update(open_task: Task, nurse: User, fhir_client: Fhir) -> None:
    client = fhir_client(nurse, "user/Task.rs")

    response = put(client, open_task, {**read(client, open_task), "status": "in-progress"})

    assert response.status_code == 403
    open_task.refresh_from_db()
    assert open_task.status == "requested"
