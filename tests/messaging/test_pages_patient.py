"""The patient's messaging pages: their conversations, a new one with photos, a thread with its
read receipt, expected answer time and emergency line, replies, and the files."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.accounts.models import User
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Attachment, Message, Participant, Thread, Topic
from apps.messaging.services.threads import do_mark_read, do_post_message
from apps.records.models import Patient

from .pages_support import (
    client_for,
    closed_today,
    jpeg_bytes,
    open_all_day,
    pdf_bytes,
    upload,
)


@pytest.fixture(autouse=True)
def _pages(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    open_all_day(settings)


def new_thread_data(**overrides: Any) -> dict[str, Any]:
    data = {"topic": Topic.WOUND, "subject": "Ma cicatrice", "body": "Elle est rouge depuis hier."}
    data.update(overrides)
    return data


def test_list_shows_own_conversations_only(
    patient: User,
    patient2: User,
    clinician: User,
    record2: Patient,
    make_thread: Callable[..., Thread],
) -> None:
    # given
    make_thread(subject="Mine, about my pills")
    make_thread(clinician, topic=Topic.CASE, subject="Staff secret about the patient")
    make_thread(patient2, subject="Somebody else's question")
    # when
    page = client_for(patient).get("/messages/").content.decode()
    # then
    assert "Mine, about my pills" in page
    assert "Staff secret" not in page
    assert "Somebody else" not in page
    assert 'href="/messages/new/"' in page


def test_list_marks_new_answers_and_what_the_team_read(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    answered = make_thread(subject="Answered")
    do_post_message(ThreadAccess(answered, clinician), body="Oui, le soir.")
    waiting = make_thread(subject="Waiting")
    read = make_thread(subject="Read by them")
    do_mark_read(ThreadAccess(read, clinician))

    page = client_for(patient).get("/messages/").content.decode()

    rows = {m[0]: m[1] for m in re.findall(r'<li id="thread-(\d+)"(.*?)</li>', page, re.S)}
    assert "is-unread" in rows[str(answered.pk)] and "New message" in rows[str(answered.pk)]
    assert "is-unread" not in rows[str(waiting.pk)]
    assert "Not read by the care team yet" in rows[str(waiting.pk)]
    assert "Read by the care team at" in rows[str(read.pk)]


def test_no_record_yet_offers_no_new_conversation(patient: User) -> None:
    page = client_for(patient).get("/messages/").content.decode()
    assert "not linked to a patient record yet" in page
    assert 'href="/messages/new/"' not in page


def test_new_conversation_form_offers_the_patient_topics_files_and_the_camera(
    patient: User, record: Patient
) -> None:
    page = client_for(patient).get("/messages/new/").content.decode()

    select = re.search(r'<select name="topic".*?</select>', page, re.S)
    assert select
    topics = re.findall(r'<option value="([a-z]+)"', select[0])
    assert topics == ["question", "symptom", "wound", "renewal", "administrative"]
    files = re.search(r'<input[^>]*name="attachments"[^>]*>', page)
    assert files and 'accept="image/*,application/pdf"' in files[0] and "multiple" in files[0]
    camera = re.search(r'<input[^>]*name="photo"[^>]*>', page)
    assert camera and 'capture="environment"' in camera[0] and 'accept="image/*"' in camera[0]
    assert "In an emergency call 144" in page


def test_patient_sends_photos_and_a_pdf(patient: User, record: Patient) -> None:
    client = client_for(patient)
    data = new_thread_data(
        attachments=[
            upload("plaie.jpg", jpeg_bytes()),
            upload("lettre.pdf", pdf_bytes(), "application/pdf"),
        ],
        photo=upload("camera.jpg", jpeg_bytes()),
    )

    response = client.post("/messages/new/", data)

    thread = Thread.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/messages/{thread.pk}/"
    assert (thread.patient, thread.topic, thread.subject) == (record, Topic.WOUND, "Ma cicatrice")
    files = {a.filename: a for a in Attachment.objects.filter(message__thread=thread)}
    assert set(files) == {"plaie.jpg", "lettre.pdf", "camera.jpg"}
    page = client.get(response["Location"]).content.decode()
    photo = files["plaie.jpg"]
    assert f'src="/messages/files/{photo.pk}/?thumb=1"' in page
    assert f'href="/messages/files/{files["lettre.pdf"].pk}/" download' in page
    assert "Elle est rouge depuis hier." in page


def test_a_refused_file_is_a_form_error_and_the_text_stays(patient: User, record: Patient) -> None:
    data = new_thread_data(
        subject="Texte à garder",
        body="Mon long message",
        attachments=[upload("faux.jpg", b"not an image")],
    )

    response = client_for(patient).post("/messages/new/", data)

    assert response.status_code == 400
    page = response.content.decode()
    assert "faux.jpg" in page and "cannot be sent" in page
    assert 'value="Texte à garder"' in page and "Mon long message</textarea>" in page
    assert not Thread.objects.exists()


def test_missing_subject_and_empty_message_are_form_errors(patient: User, record: Patient) -> None:
    response = client_for(patient).post(
        "/messages/new/", {"topic": "wound", "subject": "", "body": " "}
    )
    assert response.status_code == 400
    assert response.content.decode().count('class="field-error"') == 2
    assert not Thread.objects.exists()


def test_a_staff_topic_is_not_for_patients(patient: User, record: Patient) -> None:
    response = client_for(patient).post("/messages/new/", new_thread_data(topic=Topic.CASE))
    assert response.status_code == 400
    assert not Thread.objects.exists()


def test_thread_page_marks_read_and_shows_due_time_and_emergency_line(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    do_post_message(ThreadAccess(thread, clinician), body="Oui.")
    do_post_message(ThreadAccess(thread, patient), body="Merci, et demain ?")
    before = timezone.now()

    page = client_for(patient).get(f"/messages/{thread.pk}/").content.decode()

    marker = Participant.objects.get(thread=thread, user=patient)
    assert marker.last_read_at is not None and marker.last_read_at >= before
    thread.refresh_from_db()
    assert thread.response_due_at is not None
    assert "The care team will answer by" in page
    assert "In an emergency call 144" in page
    assert 'class="msg msg-own"' in page and 'class="msg msg-other"' in page


def test_read_receipt_once_the_team_has_read(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    client = client_for(patient)
    assert "not read by the care team yet" in client.get(f"/messages/{thread.pk}/").content.decode()

    client_for(clinician).get(f"/clinic/messages/{thread.pk}/")

    page = client.get(f"/messages/{thread.pk}/").content.decode()
    assert "Read by the care team at" in page


def test_automatic_reply_outside_opening_hours(
    settings: Any, patient: User, make_thread: Callable[..., Thread]
) -> None:
    closed_today(settings)
    thread = make_thread()

    page = client_for(patient).get(f"/messages/{thread.pk}/").content.decode()

    assert 'class="msg msg-automatic"' in page
    assert "Automatic reply" in page
    assert "call 144" in page


def test_reply_is_posted_and_redirects_to_it(
    patient: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    response = client_for(patient).post(f"/messages/{thread.pk}/reply/", {"body": "Encore moi"})
    message = thread.messages.order_by("-pk").first()
    assert message is not None and message.body == "Encore moi"
    assert response.status_code == 302
    assert response["Location"] == f"/messages/{thread.pk}/#message-{message.pk}"


def test_reply_from_the_script_gets_the_rendered_message(
    patient: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    response = client_for(patient).post(
        f"/messages/{thread.pk}/reply/",
        {"body": "Par le script", "attachments": [upload("p.jpg", jpeg_bytes())]},
        headers={"X-Requested-With": "fetch"},
    )
    assert response.status_code == 201
    html = response.content.decode()
    message = thread.messages.order_by("-pk").first()
    assert message is not None
    assert html.startswith(f'<li id="message-{message.pk}"') and "Par le script" in html
    assert "?thumb=1" in html


def test_reply_errors_keep_the_text(patient: User, make_thread: Callable[..., Thread]) -> None:
    thread = make_thread()
    client = client_for(patient)
    data = {"body": "Texte gardé", "attachments": [upload("x.jpg", b"GIF89a not really")]}

    page = client.post(f"/messages/{thread.pk}/reply/", data)
    fragment = client.post(
        f"/messages/{thread.pk}/reply/",
        {**data, "attachments": [upload("x.jpg", b"junk")]},
        headers={"X-Requested-With": "fetch"},
    )

    assert page.status_code == 400 and fragment.status_code == 400
    assert "Texte gardé</textarea>" in page.content.decode()
    assert fragment.content.decode().startswith('<form id="reply-form"')
    assert "Texte gardé</textarea>" in fragment.content.decode()
    assert "cannot be sent" in fragment.content.decode()
    assert thread.messages.count() == 1


def test_mark_read_moves_the_marker(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    do_post_message(ThreadAccess(thread, clinician), body="Réponse")
    response = client_for(patient).post(f"/messages/{thread.pk}/read/")
    assert response.status_code == 204
    marker = Participant.objects.get(thread=thread, user=patient)
    assert marker.last_read_at is not None and marker.last_read_at >= thread.last_message_at


def test_fragments_for_live_updates(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread(subject="Fragmented")
    answer = do_post_message(ThreadAccess(thread, clinician), body="La réponse")
    client = client_for(patient)

    message = client.get(f"/messages/message/{answer.pk}/").content.decode()
    status = client.get(f"/messages/{thread.pk}/status/").content.decode()
    row = client.get(f"/messages/{thread.pk}/row/").content.decode()

    assert message.startswith(f'<li id="message-{answer.pk}"') and "La réponse" in message
    assert status.startswith('<div id="thread-status"')
    assert row.startswith(f'<li id="thread-{thread.pk}"') and "Fragmented" in row
    assert "New message" in row


def test_picture_is_shown_inline_and_pdf_downloaded(
    patient: User, make_thread: Callable[..., Thread]
) -> None:
    make_thread(files=[upload("plaie.jpg", jpeg_bytes()), upload("doc.pdf", pdf_bytes())])
    image = Attachment.objects.get(filename="plaie.jpg")
    document = Attachment.objects.get(filename="doc.pdf")
    client = client_for(patient)

    shown = client.get(f"/messages/files/{image.pk}/")
    thumb = client.get(f"/messages/files/{image.pk}/?thumb=1")
    download = client.get(f"/messages/files/{document.pk}/")

    assert shown.status_code == 200 and shown["Content-Type"] == "image/jpeg"
    assert shown["Content-Disposition"].startswith("inline")
    assert shown.content[:2] == b"\xff\xd8"
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"].startswith("attachment")
    assert download.content.startswith(b"%PDF")
    for response in (shown, thumb, download):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"].startswith("default-src 'none'")
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert client.get(f"/messages/files/{document.pk}/?thumb=1").status_code == 404


def test_staff_on_the_portal_address_go_to_the_clinic_page(
    clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    response = client_for(clinician).get(f"/messages/{thread.pk}/")
    assert response.status_code == 302 and response["Location"] == f"/clinic/messages/{thread.pk}/"


def test_navigation_shows_unread_conversations(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    client = client_for(patient)
    badge = re.compile(r"data-messaging-badge\s*(hidden)?>.*?data-messaging-count>(\d+)<", re.S)

    quiet = badge.search(client.get("/messages/").content.decode())
    do_post_message(ThreadAccess(thread, clinician), body="Réponse")
    loud = badge.search(client.get("/").content.decode())

    assert quiet and quiet[1] == "hidden" and quiet[2] == "0"
    assert loud and loud[1] is None and loud[2] == "1"


def test_long_threads_show_the_newest_messages_and_link_to_earlier_ones(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread(body="Message 0")
    start = thread.last_message_at
    Message.objects.bulk_create(
        Message(
            thread=thread,
            patient_id=thread.patient_id,
            author=clinician if n % 2 else patient,
            sent_at=start + dt.timedelta(minutes=n),
            body=f"Message {n}",
        )
        for n in range(1, 60)
    )
    client = client_for(patient)

    latest = client.get(f"/messages/{thread.pk}/").content.decode()
    shown = re.findall(r"Message (\d+)</div>", latest)
    assert shown == [str(n) for n in range(10, 60)]
    earlier = re.search(r'href="\?before=(\d+)"', latest)
    assert earlier is not None
    older = client.get(f"/messages/{thread.pk}/?before={earlier[1]}").content.decode()
    assert re.findall(r"Message (\d+)</div>", older) == [str(n) for n in range(10)]
    assert 'href="?before=' not in older and "Show the latest messages" in older
    assert "data-live" not in older


def test_home_pages_count_unread_conversations_in_every_language(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    thread = make_thread()
    do_post_message(ThreadAccess(thread, clinician), body="Réponse")
    make_thread(subject="Second")
    for language in ("fr", "de", "en"):
        portal, clinic = client_for(patient), client_for(clinician)
        for client in (portal, clinic):
            client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = language
        home = portal.get("/")
        clinic_home = clinic.get("/clinic/")
        assert home.status_code == 200 and clinic_home.status_code == 200
        assert 'href="/messages/"' in home.content.decode()
        assert 'href="/clinic/messages/"' in clinic_home.content.decode()
    assert "1 conversation has a new message." in home.content.decode()
    assert "1 unread" in clinic_home.content.decode()
