"""The admin shows conversations' metadata, read-only, and never what patients wrote: no
subject, no message text, no file name. Opening a page is audited."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Message, Thread, Topic
from apps.messaging.services.threads import do_post_message
from apps.records.models import Patient
from tests.conftest import verified_client
from tests.messaging.conftest import photo

SUBJECT = "SUBJECT-7f3a Douleur thoracique"
BODY = "BODY-7f3a J'ai mal depuis hier soir"
ANSWER = "ANSWER-7f3a Appelez le 144"
STAFF = "STAFF-7f3a Suspicion d'infarctus"
FILE = "FILENAME-7f3a.jpg"
SECRETS = ("7f3a",)


@pytest.fixture(autouse=True)
def _setup(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MESSAGING_OPENING_HOURS = (frozenset(range(1, 8)), dt.time(0), dt.time(23, 59, 59))


@pytest.fixture
def thread(
    make_thread: Callable[..., Thread], clinician: User, colleague: User, record: Patient
) -> Thread:
    asked = make_thread(subject=SUBJECT, body=BODY, files=[photo(FILE)])
    do_post_message(ThreadAccess(asked, clinician), body=ANSWER)
    make_thread(colleague, topic=Topic.CASE, subject=STAFF, body=STAFF)
    return asked


def assert_no_patient_content(html: str) -> None:
    for secret in SECRETS:
        assert secret not in html


@pytest.mark.parametrize(
    "path",
    [
        "/admin/messaging/thread/",
        "/admin/messaging/thread/?staff_only__exact=1",
        "/admin/messaging/thread/{thread}/change/",
        "/admin/messaging/message/",
        "/admin/messaging/message/{message}/change/",
        "/admin/messaging/",
    ],
)
def test_admin_pages_load_without_any_patient_content(
    path: str, thread: Thread, admin_user: User
) -> None:
    message = thread.messages.order_by("sent_at").first()
    assert message is not None
    url = path.format(thread=thread.pk, message=message.pk)

    response = verified_client(admin_user).get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert_no_patient_content(html)


def test_the_thread_page_shows_its_metadata_and_is_audited(
    thread: Thread, admin_user: User, record: Patient
) -> None:
    response = verified_client(admin_user).get(f"/admin/messaging/thread/{thread.pk}/change/")

    html = response.content.decode()
    assert str(thread.fhir_id) in html
    assert str(record) in html
    # the messages are listed by date and author only
    assert html.count("/admin/messaging/message/") >= 2
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.action, event.object_type) == ("read", "messaging.thread")
    assert event.object_id == str(thread.pk) and event.patient_id == str(record.pk)
    assert event.actor_id == admin_user.pk


def test_the_message_page_counts_files_without_naming_them(
    thread: Thread, admin_user: User
) -> None:
    message = Message.objects.get(thread=thread, attachments__isnull=False)

    response = verified_client(admin_user).get(f"/admin/messaging/message/{message.pk}/change/")

    html = response.content.decode()
    assert_no_patient_content(html)
    assert re.search(r'field-files">.*?<div class="readonly">1</div>', html, re.DOTALL)
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.object_type == "messaging.message"


def test_nothing_can_be_added_changed_or_deleted(thread: Thread, admin_user: User) -> None:
    client = verified_client(admin_user)
    message = thread.messages.first()
    assert message is not None

    assert client.get("/admin/messaging/thread/add/").status_code == 403
    assert client.get(f"/admin/messaging/thread/{thread.pk}/delete/").status_code == 403
    assert client.get(f"/admin/messaging/message/{message.pk}/delete/").status_code == 403
    response = client.post(
        f"/admin/messaging/thread/{thread.pk}/change/", {"state": "resolved", "topic": "case"}
    )
    assert response.status_code == 403
    thread.refresh_from_db()
    assert thread.state == Thread.State.OPEN and thread.topic == Topic.QUESTION


def test_files_and_read_markers_have_no_admin_page(thread: Thread, admin_user: User) -> None:
    client = verified_client(admin_user)
    assert client.get("/admin/messaging/attachment/").status_code == 404
    assert client.get("/admin/messaging/participant/").status_code == 404


def test_clinicians_and_patients_cannot_open_the_admin(
    thread: Thread, clinician: User, patient: User
) -> None:
    for user in (clinician, patient):
        response = verified_client(user).get("/admin/messaging/thread/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
