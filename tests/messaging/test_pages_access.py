"""Who may open the messaging pages: every page, fragment, action and file of a thread answers
404 to whoever may not see it (a clinician outside the care team, billing staff, an
administrator, another patient; a patient for a staff-only discussion), the refusal is audited
and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import User
from apps.audit.models import AuditEvent, Outcome
from apps.messaging.models import Attachment, Message, Thread, Topic
from apps.records.models import DocumentReference, Patient

from .pages_support import client_for, jpeg_bytes, open_all_day, upload


@pytest.fixture(autouse=True)
def _pages(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    open_all_day(settings)


# (method, address, data): {t} the thread, {m} its message, {a} its file, {p} the patient.
THREAD_URLS: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/messages/{t}/", {}),
    ("post", "/messages/{t}/reply/", {"body": "Intrusion"}),
    ("post", "/messages/{t}/read/", {}),
    ("get", "/messages/{t}/row/", {}),
    ("get", "/messages/{t}/status/", {}),
    ("get", "/messages/message/{m}/", {}),
    ("get", "/messages/files/{a}/", {}),
    ("get", "/messages/files/{a}/?thumb=1", {}),
    ("get", "/clinic/messages/{t}/", {}),
    ("post", "/clinic/messages/{t}/assign/", {"me": "1"}),
    ("post", "/clinic/messages/{t}/urgency/", {"urgency": "urgent"}),
    ("post", "/clinic/messages/{t}/resolve/", {}),
    ("post", "/clinic/messages/{t}/reopen/", {}),
    ("post", "/clinic/messages/files/{a}/file/", {}),
]
PATIENT_URLS: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/clinic/patients/{p}/messages/", {}),
    (
        "post",
        "/clinic/patients/{p}/messages/new/",
        {"kind": "staff", "topic": "case", "subject": "Intrusion", "body": "Intrusion"},
    ),
]
ALL_URLS = THREAD_URLS + PATIENT_URLS


@pytest.fixture
def thread(make_thread: Callable[..., Thread]) -> Thread:
    return make_thread(files=[upload("plaie.jpg", jpeg_bytes())])


def addresses(thread: Thread, urls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    message = Message.objects.filter(thread=thread).first()
    attachment = Attachment.objects.filter(message__thread=thread).first()
    ids = {
        "t": thread.pk,
        "m": message.pk if message else 0,
        "a": attachment.pk if attachment else 0,
        "p": thread.patient_id,
    }
    return [(method, url.format(**ids), data) for method, url, data in urls]


def snapshot(thread: Thread) -> tuple[Any, ...]:
    thread.refresh_from_db()
    return (
        thread.state,
        thread.urgency,
        thread.assignee_id,
        thread.message_count,
        Thread.objects.count(),
        Message.objects.count(),
        DocumentReference.objects.count(),
    )


def assert_all_refused(
    user: User, thread: Thread, urls: list[tuple[str, str, dict[str, Any]]]
) -> None:
    client = client_for(user)
    before = snapshot(thread)
    for method, url, data in addresses(thread, urls):
        denials = AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED).count()
        response = getattr(client, method)(url, data)
        assert response.status_code == 404, (method, url, response.status_code)
        after = AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED).count()
        assert after == denials + 1, (method, url, "the refusal is not audited")
    assert snapshot(thread) == before


@pytest.mark.parametrize("who", ["outsider", "billing_user", "admin_user"])
def test_staff_outside_the_care_team_are_refused_everywhere(
    request: pytest.FixtureRequest, who: str, thread: Thread
) -> None:
    assert_all_refused(request.getfixturevalue(who), thread, ALL_URLS)


def test_another_patient_is_refused_everywhere(
    patient2: User, record2: Patient, thread: Thread
) -> None:
    assert_all_refused(patient2, thread, ALL_URLS)


def test_the_patient_is_refused_on_the_clinic_addresses(patient: User, thread: Thread) -> None:
    clinic = [entry for entry in ALL_URLS if entry[1].startswith("/clinic/")]
    assert_all_refused(patient, thread, clinic)


def test_the_patient_never_reaches_a_staff_only_discussion(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    staff = make_thread(
        clinician, topic=Topic.CASE, subject="Staff", files=[upload("x.jpg", jpeg_bytes())]
    )
    portal = [entry for entry in THREAD_URLS if entry[1].startswith("/messages/")]
    assert_all_refused(patient, staff, portal)
    assert "Staff" not in client_for(patient).get("/messages/").content.decode()


def test_an_emergency_access_does_not_open_the_messages(
    outsider: User, record: Patient, thread: Thread
) -> None:
    from apps.records.services.break_glass import do_break_glass

    do_break_glass(outsider, record.pk, reason="Unconscious patient in the emergency room")
    assert_all_refused(outsider, thread, ALL_URLS)


def test_lists_are_refused_to_who_has_none(billing_user: User, admin_user: User) -> None:
    for user in (billing_user, admin_user):
        client = client_for(user)
        for url in ("/messages/", "/messages/new/", "/clinic/messages/"):
            denials = AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED).count()
            assert client.get(url).status_code == 404, url
            assert (
                AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED).count()
                == denials + 1
            )


def test_outsider_inbox_is_empty(outsider: User, thread: Thread) -> None:
    page = client_for(outsider).get("/clinic/messages/").content.decode()
    assert f'id="thread-{thread.pk}"' not in page and thread.subject not in page


def test_patient_cannot_use_the_clinic_inbox(patient: User) -> None:
    assert client_for(patient).get("/clinic/messages/").status_code == 404


def test_unknown_ids_are_refused_and_audited(outsider: User) -> None:
    client = client_for(outsider)
    for url in ("/messages/999999/", "/clinic/messages/999999/", "/messages/files/999999/"):
        assert client.get(url).status_code == 404
    assert AuditEvent.objects.filter(actor_id=outsider.pk, outcome=Outcome.DENIED).count() == 3


def test_reads_are_audited(clinician: User, patient: User, thread: Thread) -> None:
    attachment = Attachment.objects.get()
    client_for(patient).get(f"/messages/{thread.pk}/")
    client_for(clinician).get(f"/clinic/messages/{thread.pk}/")
    client_for(clinician).get(f"/messages/files/{attachment.pk}/")
    reads = AuditEvent.objects.filter(
        outcome=Outcome.SUCCESS, action="read", patient_id=str(thread.patient_id)
    )
    assert reads.filter(actor_id=patient.pk, object_type__contains="thread").exists()
    assert reads.filter(actor_id=clinician.pk, object_type__contains="thread").exists()
    assert reads.filter(actor_id=clinician.pk, object_type__contains="attachment").exists()
