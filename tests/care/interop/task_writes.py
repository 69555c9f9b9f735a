"""Helpers of the FHIR Task write tests: requests, a new Task's body, the outcome's issue."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.care.fhir import SYS_TASK_KIND
from apps.care.models import Task
from apps.records.fhir import SYS_USER
from apps.records.models import Patient

FHIR = "application/fhir+json"
SCOPES = "user/Task.cruds"


def send(client: Client, method: str, url: str, body: Any, **headers: str) -> Any:
    call = getattr(client, method.lower())
    return call(url, data=json.dumps(body), content_type=FHIR, **headers)


def person(user: User) -> dict[str, Any]:
    return {"identifier": {"system": SYS_USER, "value": str(user.pk)}}


def new_task(chart: Patient, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": SYS_TASK_KIND, "code": "call"}]},
        "description": "Call the patient about her weight",
        "for": {"reference": f"Patient/{chart.fhir_id}"},
    }
    resource.update(extra)
    return resource


def read(client: Client, task: Task) -> dict[str, Any]:
    response = client.get(f"/fhir/Task/{task.fhir_id}")
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


def put(client: Client, task: Task, resource: dict[str, Any], **headers: str) -> Any:
    return send(client, "PUT", f"/fhir/Task/{task.fhir_id}", resource, **headers)


def problem(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]  # type: ignore[no-any-return]


def changes(task: Task) -> list[str]:
    """The changes the care service audited on the task, oldest first."""
    events = AuditEvent.objects.filter(object_type="care.task", object_id=str(task.pk))
    return [event.detail.get("change", "") for event in events.order_by("seq")]
