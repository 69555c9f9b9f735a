"""The clinic's messaging pages: the triage inbox and its tabs, a thread with the team's actions
(assign, urgency, resolve, reopen, mentions, filing a photo into the record), and a patient's
conversations in the chart with new staff discussions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Attachment, Message, Thread, Topic
from apps.messaging.services.threads import (
    do_mark_read,
    do_post_message,
)
from apps.messaging.services.triage import (
    do_assign,
    do_resolve,
    do_set_urgency,
)
from apps.records.models import DocumentReference, Patient

from .pages_support import client_for, jpeg_bytes, open_all_day, pdf_bytes, upload


@pytest.fixture(autouse=True)
def _pages(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    open_all_day(settings)


def rows(page: str) -> dict[int, str]:
    return {
        int(pk): html for pk, html in re.findall(r'<li id="thread-(\d+)"(.*?)</li>', page, re.S)
    }


def team(thread: Thread, user: User) -> ThreadAccess:
    return ThreadAccess(thread, user)


def test_inbox_tabs(clinician: User, colleague: User, make_thread: Callable[..., Thread]) -> None:
    # given
    fresh = make_thread(subject="Fresh")
    mine = make_thread(subject="Mine")
    do_assign(team(mine, clinician), clinician.pk)
    theirs = make_thread(subject="Theirs")
    do_assign(team(theirs, clinician), colleague.pk)
    urgent = make_thread(subject="Urgent one")
    do_set_urgency(team(urgent, clinician), Thread.Urgency.URGENT)
    done = make_thread(subject="Done")
    do_resolve(team(done, clinician))
    client = client_for(clinician)

    def listed(tab: str) -> set[int]:
        return set(rows(client.get(f"/clinic/messages/?tab={tab}").content.decode()))

    # then
    assert listed("unassigned") == {fresh.pk, urgent.pk}
    assert listed("mine") == {mine.pk}
    assert listed("urgent") == {urgent.pk}
    assert listed("open") == {fresh.pk, mine.pk, theirs.pk, urgent.pk}
    assert listed("resolved") == {done.pk}
    default = client.get("/clinic/messages/").content.decode()
    assert set(rows(default)) == listed("open")
    assert 'Unassigned <span class="tab-count">(2)</span>' in default


def test_inbox_row_shows_what_triage_needs(
    clinician: User,
    colleague: User,
    patient: User,
    record: Patient,
    make_thread: Callable[..., Thread],
) -> None:
    late = make_thread(subject="Late answer")
    Thread.objects.filter(pk=late.pk).update(response_due_at=timezone.now() - dt.timedelta(hours=1))
    do_set_urgency(team(late, clinician), Thread.Urgency.URGENT)
    do_assign(team(late, clinician), colleague.pk)
    answered = make_thread(subject="Answered")
    do_post_message(team(answered, clinician), body="Voilà")

    page = client_for(clinician).get("/clinic/messages/").content.decode()

    row = rows(page)[late.pk]
    assert record.full_name in row and "Late answer" in row
    assert "Urgent" in row and "Awaiting answer" in row and "Overdue" in row
    assert colleague.get_full_name() in row
    assert "Question" in row
    assert "Unread" in row
    other = rows(page)[answered.pk]
    assert "Awaiting answer" not in other and "Overdue" not in other and "Unread" not in other


def test_inbox_is_paginated_by_25(
    clinician: User, patient: User, record: Patient, make_thread: Callable[..., Thread]
) -> None:
    for n in range(27):
        make_thread(subject=f"Thread {n}")
    client = client_for(clinician)
    first = client.get("/clinic/messages/").content.decode()
    second = client.get("/clinic/messages/?tab=open&page=2").content.decode()
    assert len(rows(first)) == 25 and len(rows(second)) == 2
    assert "tab=open&amp;page=2" in first


def test_inbox_lists_staff_discussions_marked(
    clinician: User, record: Patient, make_thread: Callable[..., Thread]
) -> None:
    staff = make_thread(clinician, topic=Topic.CASE, subject="Between us")
    page = client_for(clinician).get("/clinic/messages/").content.decode()
    assert "Staff only" in rows(page)[staff.pk]


def test_clinic_thread_page(
    clinician: User, colleague: User, patient: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread(files=[upload("plaie.jpg", jpeg_bytes())])
    photo = Attachment.objects.get()

    page = client_for(clinician).get(f"/clinic/messages/{thread.pk}/").content.decode()

    assert f'src="/messages/files/{photo.pk}/?thumb=1"' in page
    assert (
        f'action="/clinic/messages/files/{photo.pk}/file/"' in page and "File into record" in page
    )
    # Mentions: the care team but oneself.
    assert f'name="mentions" value="{colleague.pk}"' in page
    assert f'name="mentions" value="{clinician.pk}"' not in page
    assigns = re.search(r'<select name="assignee".*?</select>', page, re.S)
    assert assigns and f'value="{colleague.pk}"' in assigns[0]
    assert "Assign to me" in page and "Mark as urgent" in page and "Mark as resolved" in page
    assert "An answer is expected by" in page
    assert "Staff only" not in page
    marker = thread.participants.get(user=clinician)
    assert marker.last_read_at is not None


def test_staff_only_thread_is_marked(
    clinician: User, record: Patient, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread(clinician, topic=Topic.HANDOVER, subject="Handover")
    page = client_for(clinician).get(f"/clinic/messages/{thread.pk}/").content.decode()
    assert "Staff only — the patient does not see this." in page
    assert "Write to your colleagues" in page


def test_triage_actions(
    clinician: User, colleague: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    client = client_for(clinician)
    url = f"/clinic/messages/{thread.pk}/"

    assert client.post(url + "assign/", {"me": "1"})["Location"] == url
    thread.refresh_from_db()
    assert thread.assignee_id == clinician.pk

    client.post(url + "assign/", {"assignee": str(colleague.pk)})
    thread.refresh_from_db()
    assert thread.assignee_id == colleague.pk

    client.post(url + "assign/", {"assignee": ""})
    thread.refresh_from_db()
    assert thread.assignee_id is None

    client.post(url + "urgency/", {"urgency": "urgent"})
    thread.refresh_from_db()
    assert thread.urgency == Thread.Urgency.URGENT

    client.post(url + "resolve/")
    thread.refresh_from_db()
    assert thread.state == Thread.State.RESOLVED
    assert "Reopen" in client.get(url).content.decode()

    client.post(url + "reopen/")
    thread.refresh_from_db()
    assert thread.state == Thread.State.OPEN


def test_assigning_an_outsider_is_an_error_shown(
    clinician: User, outsider: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    client = client_for(clinician)
    response = client.post(
        f"/clinic/messages/{thread.pk}/assign/", {"assignee": str(outsider.pk)}, follow=True
    )
    thread.refresh_from_db()
    assert thread.assignee_id is None
    assert "care team can be assigned" in response.content.decode()


def test_reply_with_a_mention(
    clinician: User, colleague: User, patient: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    response = client_for(clinician).post(
        f"/messages/{thread.pk}/reply/", {"body": "Vu, je demande", "mentions": [str(colleague.pk)]}
    )
    message = Message.objects.filter(thread=thread).order_by("-pk").first()
    assert response.status_code == 302 and message is not None
    assert list(message.mentions.all()) == [colleague]
    page = client_for(clinician).get(f"/clinic/messages/{thread.pk}/").content.decode()
    assert f"Mentioned: {colleague.get_full_name()}" in page
    patient_page = client_for(patient).get(f"/messages/{thread.pk}/").content.decode()
    assert "Mentioned" not in patient_page and "Vu, je demande" in patient_page


def test_file_a_photo_into_the_record(
    clinician: User, record: Patient, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread(files=[upload("plaie.jpg", jpeg_bytes())])
    photo = Attachment.objects.get()
    client = client_for(clinician)

    response = client.post(f"/clinic/messages/files/{photo.pk}/file/")
    again = client.post(f"/clinic/messages/files/{photo.pk}/file/")

    assert response.status_code == 302
    assert response["Location"] == f"/clinic/messages/{thread.pk}/#message-{photo.message_id}"
    assert again.status_code == 302
    document = DocumentReference.objects.get()
    assert document.patient == record and document.category == DocumentReference.Category.PHOTO
    page = client.get(f"/clinic/messages/{thread.pk}/").content.decode()
    assert (
        "Filed in the record" in page and f'href="/clinic/patients/{record.pk}/documents/"' in page
    )
    assert "File into record" not in page
    documents = client.get(f"/clinic/patients/{record.pk}/documents/").content.decode()
    assert "plaie.jpg" in documents


def test_a_pdf_is_filed_as_another_document(
    clinician: User, record: Patient, make_thread: Callable[..., Thread]
) -> None:
    make_thread(files=[upload("lettre.pdf", pdf_bytes(), "application/pdf")])
    client_for(clinician).post(f"/clinic/messages/files/{Attachment.objects.get().pk}/file/")
    assert DocumentReference.objects.get().category == DocumentReference.Category.OTHER


def test_patient_conversations_in_the_chart(
    clinician: User,
    record: Patient,
    record2: Patient,
    patient2: User,
    make_thread: Callable[..., Thread],
) -> None:
    staff = make_thread(clinician, topic=Topic.CASE, subject="Case of the week")
    done = make_thread(subject="Old question")
    do_resolve(team(done, clinician))
    make_thread(patient2, subject="Another patient")

    page = client_for(clinician).get(f"/clinic/patients/{record.pk}/messages/").content.decode()

    assert set(rows(page)) == {staff.pk, done.pk}
    assert "New staff discussion" in page and "Write to the patient" in page
    staff_topics = re.search(r'<select name="topic" id="staff-topic".*?</select>', page, re.S)
    patient_topics = re.search(r'<select name="topic" id="patient-topic".*?</select>', page, re.S)
    assert staff_topics and re.findall(r'value="(\w+)"', staff_topics[0]) == ["case", "handover"]
    assert patient_topics and "question" in patient_topics[0] and "case" not in patient_topics[0]
    assert f'href="/clinic/patients/{record.pk}/messages/" aria-current="page"' in page


def test_the_chart_links_to_the_conversations(clinician: User, record: Patient) -> None:
    page = client_for(clinician).get(f"/clinic/patients/{record.pk}/").content.decode()
    assert f'href="/clinic/patients/{record.pk}/messages/"' in page


def test_start_a_staff_discussion_with_a_mention(
    clinician: User, colleague: User, record: Patient
) -> None:
    response = client_for(clinician).post(
        f"/clinic/patients/{record.pk}/messages/new/",
        {
            "kind": "staff",
            "topic": "handover",
            "subject": "Pansement",
            "body": "À refaire demain",
            "mentions": [str(colleague.pk)],
        },
    )
    thread = Thread.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/clinic/messages/{thread.pk}/"
    assert thread.staff_only and thread.topic == Topic.HANDOVER and thread.patient == record
    assert list(thread.messages.get().mentions.all()) == [colleague]


def test_write_to_the_patient(clinician: User, patient: User, record: Patient) -> None:
    client_for(clinician).post(
        f"/clinic/patients/{record.pk}/messages/new/",
        {"kind": "patient", "topic": "question", "subject": "Vos résultats", "body": "Bons."},
    )
    thread = Thread.objects.get()
    assert not thread.staff_only
    assert "Vos résultats" in client_for(patient).get("/messages/").content.decode()


def test_new_thread_errors_keep_the_text(clinician: User, record: Patient) -> None:
    response = client_for(clinician).post(
        f"/clinic/patients/{record.pk}/messages/new/",
        {"kind": "staff", "topic": "question", "subject": "Sujet gardé", "body": "Texte gardé"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'value="Sujet gardé"' in page and "Texte gardé</textarea>" in page
    assert not Thread.objects.exists()


def test_row_fragment_follows_the_tab(
    clinician: User, colleague: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread(subject="Row")
    client = client_for(clinician)
    url = f"/messages/{thread.pk}/row/"

    assert (
        client.get(url + "?tab=unassigned")
        .content.decode()
        .startswith(f'<li id="thread-{thread.pk}"')
    )
    do_assign(team(thread, clinician), colleague.pk)
    assert client.get(url + "?tab=unassigned").status_code == 204
    assert client.get(url + "?tab=open").status_code == 200
    assert client.get(url + f"?tab=all&patient={thread.patient_id}").status_code == 200
    assert client.get(url + f"?tab=all&patient={thread.patient_id + 1}").status_code == 204


def test_team_read_receipt(
    clinician: User, patient: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    do_post_message(team(thread, clinician), body="Réponse")
    client = client_for(clinician)
    assert (
        "Sent, not read by the patient yet"
        in client.get(f"/clinic/messages/{thread.pk}/").content.decode()
    )
    do_mark_read(ThreadAccess(thread, patient))
    assert "Read by the patient at" in client.get(f"/messages/{thread.pk}/status/").content.decode()


def test_clinician_navigation_links_the_inbox(
    clinician: User, make_thread: Callable[..., Thread]
) -> None:
    make_thread()
    page = client_for(clinician).get("/clinic/").content.decode()
    link = re.search(r'<a href="/clinic/messages/"[^>]*>Messages <span class="badge"[^>]*>', page)
    assert link and "hidden" not in link[0]
