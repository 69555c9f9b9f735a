"""The in-call chat: admitted people only, texts and files encrypted at rest, live to the room."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import Http404

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.core.realtime import EVENT_TYPES
from apps.records.services.documents import storage_path
from apps.teleconsult.models import ChatMessage, Consultation
from apps.teleconsult.services import ConsultError
from apps.teleconsult.services.chat import (
    MAX_TEXT,
    do_post_message,
    get_chat_file_for_user,
    list_messages,
    transcript,
)
from apps.teleconsult.services.errors import Conflict, TooLarge
from apps.teleconsult.services.rooms import Member, arrive, room_group
from tests.teleconsult.records_cast import *  # noqa: F403
from tests.teleconsult.records_cast import end, guest_invite, in_call, member, png_bytes


def test_an_admitted_member_posts_a_line_the_room_receives(
    call: dict[str, Member], room: Consultation, django_capture_on_commit_callbacks: Any
) -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room_group(room.room), channel)

    # when the patient writes
    with django_capture_on_commit_callbacks(execute=True):
        message = do_post_message(call["patient"], "  J'ai mal depuis mardi.  ")

    # then the line is kept, audited and pushed to the room in the declared shape
    assert message.text == "J'ai mal depuis mardi."
    event = async_to_sync(layer.receive)(channel)["event"]
    assert event["type"] == "consult.chat"
    assert set(event) - {"type"} == EVENT_TYPES["consult.chat"]
    assert event["room"] == room.room
    assert event["seat"] == "patient"
    assert event["author"] == call["patient"].display_name
    assert event["file"] is None
    audit = AuditEvent.objects.get(action=Action.CREATE, object_type="teleconsult.chatmessage")
    assert audit.patient_id == str(room.patient_id)
    assert audit.detail["what"] == "consultation-chat"


def test_the_text_is_encrypted_in_the_database(call: dict[str, Member]) -> None:
    message = do_post_message(call["clinician"], "Tension 182/110, contrôle demain")
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM teleconsult_chatmessage WHERE id = %s", [message.pk])
        stored = cursor.fetchone()[0]
    assert "182/110" not in str(stored)
    assert ChatMessage.objects.get(pk=message.pk).text == "Tension 182/110, contrôle demain"


def test_nobody_writes_before_being_admitted(room: Consultation, patient: User) -> None:
    waiting = member(room, patient)
    arrive(waiting)  # in the waiting room, not admitted
    with pytest.raises(Conflict):
        do_post_message(waiting, "Bonjour ?")
    with pytest.raises(Conflict):
        list_messages(waiting)
    assert not ChatMessage.objects.exists()


def test_a_member_who_never_arrived_cannot_write(room: Consultation, patient: User) -> None:
    with pytest.raises(Conflict):
        do_post_message(member(room, patient), "Bonjour ?")


@pytest.mark.parametrize(
    ("text", "error"),
    [("", "Write a message"), ("   ", "Write a message"), ("x" * (MAX_TEXT + 1), "too long")],
)
def test_empty_and_overlong_lines_are_refused(
    call: dict[str, Member], text: str, error: str
) -> None:
    with pytest.raises(ConsultError, match=error):
        do_post_message(call["patient"], text)
    assert not ChatMessage.objects.exists()


def test_a_line_of_the_maximum_length_is_kept(call: dict[str, Member]) -> None:
    assert len(do_post_message(call["patient"], "é" * MAX_TEXT).text) == MAX_TEXT


def test_a_file_is_checked_and_stored_encrypted(
    call: dict[str, Member], room: Consultation, patient: User, media: Path
) -> None:
    # given a PNG picture sent in the chat
    picture = png_bytes((300, 200))
    upload = SimpleUploadedFile("wound.png", picture, content_type="image/png")

    # when it is posted with a line of text
    message = do_post_message(call["patient"], "La plaie ce matin", upload)

    # then it is on disk sealed: neither the picture nor its PNG signature is readable there
    on_disk = storage_path(message.storage_name).read_bytes()
    assert on_disk.startswith(b"VH1")
    assert b"\x89PNG" not in on_disk and b"IHDR" not in on_disk and b"IDAT" not in on_disk
    assert message.key_id and message.filename == "wound.png"
    # only the file itself is kept (no preview left behind)
    assert [p.name for p in (media / "records").iterdir()] == [message.storage_name]

    # and members of the call open it decrypted, as recorded
    found, content = get_chat_file_for_user(patient, room.room, message.pk)
    assert found == message
    assert content.startswith(b"\x89PNG")
    assert hashlib.sha256(content).hexdigest() == message.sha256
    assert AuditEvent.objects.filter(
        action=Action.READ, object_type="teleconsult.chatmessage", object_id=str(message.pk)
    ).exists()


def test_files_that_are_not_documents_or_pictures_are_refused(
    call: dict[str, Member], media: Path
) -> None:
    upload = SimpleUploadedFile("run.html", b"<html><script>alert(1)</script>", "text/html")
    with pytest.raises(ConsultError, match="Only PDF documents and JPEG or PNG"):
        do_post_message(call["patient"], "", upload)
    assert not ChatMessage.objects.exists()
    assert not (media / "records").exists() or not list((media / "records").iterdir())


def test_a_file_over_the_limit_is_too_large(call: dict[str, Member], settings: Any) -> None:
    settings.RECORDS_MAX_UPLOAD_BYTES = 1000
    upload = SimpleUploadedFile("big.png", png_bytes((400, 400)), "image/png")
    with pytest.raises(TooLarge):
        do_post_message(call["patient"], "", upload)


def test_late_joiners_read_the_chat_so_far_in_order(
    call: dict[str, Member], room: Consultation, colleague: User
) -> None:
    first = do_post_message(call["clinician"], "Bonjour")
    second = do_post_message(
        call["patient"], "", SimpleUploadedFile("scan.png", png_bytes(), "image/png")
    )
    late = in_call(room, colleague)

    lines = list_messages(late)

    assert [line["id"] for line in lines] == [first.pk, second.pk]
    assert lines[0] == {
        "id": first.pk,
        "author": call["clinician"].display_name,
        "seat": "clinician",
        "sent_at": first.sent_at.isoformat(),
        "text": "Bonjour",
        "file": None,
    }
    assert lines[1]["file"] == {
        "name": "scan.png",
        "size": second.size,
        "url": f"/consult/{room.room}/chat/{second.pk}/file/",
    }


def test_guests_take_part_in_the_chat(
    room: Consultation, clinician: User, call: dict[str, Member]
) -> None:
    invite = guest_invite(room, clinician)
    guest = in_call(room, None, invite)  # type: ignore[arg-type]
    message = do_post_message(guest, "Je traduis pour Madame.")
    assert message.attendance.seat == "guest"
    assert [line["author"] for line in list_messages(guest)] == ["Ana Interprète"]


def test_after_the_call_the_files_belong_to_the_record(
    call: dict[str, Member],
    room: Consultation,
    clinician: User,
    patient: User,
    patient2: User,
    outsider: User,
    billing_user: User,
) -> None:
    message = do_post_message(
        call["patient"], "", SimpleUploadedFile("scan.png", png_bytes(), "image/png")
    )
    invite = guest_invite(room, clinician)
    end(room, clinician)

    # the patient and their clinical staff still open the file
    for reader in (patient, clinician):
        assert get_chat_file_for_user(reader, room.room, message.pk)[0] == message
    # the transcript remains for the summary
    assert [line["id"] for line in transcript(room)] == [message.pk]

    # nobody else does, guests included: each refusal is audited
    for stranger in (patient2, outsider, billing_user, None):
        with pytest.raises(Http404):
            get_chat_file_for_user(stranger, room.room, message.pk, guest_id=invite.pk)
    assert (
        AuditEvent.objects.filter(
            action=Action.DENIED, detail__what="consultation-chat-file"
        ).count()
        == 4
    )


def test_a_file_of_another_room_is_not_found(
    call: dict[str, Member], room: Consultation, other_room: Consultation, outsider: User
) -> None:
    message = do_post_message(
        call["patient"], "", SimpleUploadedFile("scan.png", png_bytes(), "image/png")
    )
    in_call(other_room, outsider)
    with pytest.raises(Http404):
        get_chat_file_for_user(outsider, other_room.room, message.pk)


@pytest.mark.django_db
def test_the_demo_has_a_finished_consultation_with_its_chat(settings: Any) -> None:
    from django.core.management import call_command

    from apps.teleconsult.models import Consultation as Model

    settings.DEBUG = True
    with open("/dev/null", "w") as null:
        call_command("seed_demo", stdout=null)
        counts = (Model.objects.count(), ChatMessage.objects.count())
        call_command("seed_demo", stdout=null)
    assert (Model.objects.count(), ChatMessage.objects.count()) == counts
    finished = Model.objects.get(status="ended")
    assert finished.encounter is not None and finished.encounter.status == "finished"
    assert finished.encounter.kind == "VR"
    assert finished.duration is not None and finished.encounter.ended_at == finished.ended_at
    assert len(transcript(finished)) == 4
    ready = Model.objects.exclude(status="ended").get()
    assert ready.appointment is not None and ready.appointment.mode == "video"
    assert ready.appointment.patient_id == finished.patient_id
