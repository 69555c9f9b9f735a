"""Who may open the task pages: every page, fragment and action of a task, and the chart's
tab, answer 404 to whoever is not a clinician with access to the patient's record (a clinician
outside the care team, the patient, another patient, billing staff, an administrator); the
refusal is audited and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent, Outcome
from apps.care.models import Task, TaskNote
from apps.records.models import Patient
from tests.care.helpers import client_for, denials

# (method, address, data): {t} the task, {p} its patient.
TASK_URLS: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/clinic/tasks/{t}/", {}),
    ("get", "/clinic/tasks/{t}/row/", {}),
    ("get", "/clinic/tasks/{t}/row/?patient={p}", {}),
    ("get", "/clinic/tasks/{t}/live/", {}),
    ("post", "/clinic/tasks/{t}/assign/", {"me": "1"}),
    ("post", "/clinic/tasks/{t}/assign/", {"assign_to": "role:allied"}),
    ("post", "/clinic/tasks/{t}/start/", {}),
    ("post", "/clinic/tasks/{t}/hold/", {}),
    ("post", "/clinic/tasks/{t}/complete/", {"report": "Intrusion"}),
    ("post", "/clinic/tasks/{t}/cancel/", {"reason": "Intrusion"}),
    ("post", "/clinic/tasks/{t}/notes/", {"text": "Intrusion"}),
]
PATIENT_URLS: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/clinic/patients/{p}/tasks/", {}),
    ("get", "/clinic/patients/{p}/tasks/tabs/", {}),
    (
        "post",
        "/clinic/patients/{p}/tasks/new/",
        {"kind": "call", "title": "Intrusion", "assign_to": "role:nurse", "priority": "routine"},
    ),
]
# Everybody's lists: clinicians only.
LIST_URLS = ["/clinic/tasks/", "/clinic/tasks/tabs/", "/clinic/tasks/?tab=done"]
OTHERS = ["outsider", "patient", "patient2", "billing_user", "admin_user"]


def snapshot(task: Task) -> tuple[Any, ...]:
    task.refresh_from_db()
    return (
        task.status,
        task.assignee_id,
        task.assignee_role,
        task.report,
        task.cancel_reason,
        TaskNote.objects.count(),
        Task.objects.count(),
    )


@pytest.mark.parametrize(("method", "url", "data"), TASK_URLS + PATIENT_URLS)
def test_others_get_404_audited_and_change_nothing(
    request: pytest.FixtureRequest,
    make_task: Callable[..., Task],
    method: str,
    url: str,
    data: dict[str, Any],
) -> None:
    task = make_task(assignee_role=Role.NURSE)
    before = snapshot(task)
    for who in OTHERS:
        user: User = request.getfixturevalue(who)

        response = getattr(client_for(user), method)(url.format(t=task.pk, p=task.patient_id), data)

        assert response.status_code == 404, who
        refused = denials(user)
        assert len(refused) == 1, who
        assert refused[0].patient_id in ("", str(task.patient_id))
        assert snapshot(task) == before, who


@pytest.mark.parametrize("url", LIST_URLS)
def test_the_task_lists_are_for_clinicians(request: pytest.FixtureRequest, url: str) -> None:
    for who in ("patient", "patient2", "billing_user", "admin_user"):
        user: User = request.getfixturevalue(who)
        response = client_for(user).get(url)
        assert response.status_code == 404, who
        assert len(denials(user)) == 1, who


def test_an_outsiders_list_does_not_show_the_teams_tasks(
    make_task: Callable[..., Task], outsider: User
) -> None:
    make_task(assignee_role=Role.PHYSICIAN, title="Revoir le traitement")
    response = client_for(outsider).get("/clinic/tasks/?tab=profession")
    assert response.status_code == 200
    assert "Revoir le traitement" not in response.content.decode()
    assert "(0)" in response.content.decode()


def test_a_missing_task_is_a_404_too(clinician: User, record: Patient) -> None:
    client = client_for(clinician)
    for url in ("/clinic/tasks/999999/", "/clinic/tasks/999999/row/"):
        assert client.get(url).status_code == 404
    assert client.post("/clinic/tasks/999999/start/").status_code == 404
    assert (
        AuditEvent.objects.filter(
            actor_id=clinician.pk, outcome=Outcome.DENIED, object_id="999999"
        ).count()
        == 3
    )
