"""The tasks in the admin: read-only, metadata only (never what the team wrote), and opening a
task is audited against its patient."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.care.models import Task
from apps.care.services.tasks import do_complete_task
from apps.records.models import Patient
from tests.care.conftest import access_as
from tests.care.helpers import client_for

SECRETS = ("Douleurs thoraciques", "Glycémie 14 mmol/l", "Saignement")


@pytest.fixture
def client(admin_user: User) -> Client:
    admin_user.is_superuser = True
    admin_user.save(update_fields=["is_superuser"])
    return client_for(admin_user)


@pytest.fixture
def task(make_task: Callable[..., Task], nurse: User, record: Patient) -> Task:
    made = make_task(title=SECRETS[0], instructions=SECRETS[1])
    do_complete_task(access_as(nurse, record), made, SECRETS[2])
    return made


def test_the_list_and_the_page_show_no_clinical_words(client: Client, task: Task) -> None:
    listing = client.get("/admin/care/task/")
    page = client.get(f"/admin/care/task/{task.pk}/change/")

    for response in (listing, page):
        assert response.status_code == 200
        html = response.content.decode()
        assert not [secret for secret in SECRETS if secret in html]
    assert "call the patient" in listing.content.decode()


def test_opening_a_task_is_audited_against_its_patient(
    client: Client, task: Task, admin_user: User
) -> None:
    client.get(f"/admin/care/task/{task.pk}/change/")
    event = AuditEvent.objects.filter(actor_id=admin_user.pk).order_by("-seq").first()
    assert event is not None
    assert (event.action, event.object_type, event.object_id) == ("read", "care.task", str(task.pk))
    assert event.patient_id == str(task.patient_id)


def test_nothing_is_added_changed_or_deleted_here(client: Client, task: Task) -> None:
    assert client.get("/admin/care/task/add/").status_code == 403
    assert client.post(f"/admin/care/task/{task.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(f"/admin/care/task/{task.pk}/change/", {"status": "cancelled"})
    assert Task.objects.get(pk=task.pk).status == "completed"
