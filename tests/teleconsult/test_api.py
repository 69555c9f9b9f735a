"""The room's JSON endpoints: status codes, error JSON, CSRF, and outsiders denied (audited)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.records.models import DocumentReference
from apps.teleconsult.models import (
    ChatMessage,
    Consultation,
    GuestInvite,
    Recording,
    RecordingChunk,
)
from apps.teleconsult.services.chat import do_post_message
from apps.teleconsult.services.guests import do_invite
from apps.teleconsult.services.recording import (
    do_add_chunk,
    do_set_consent,
    do_start_recording,
    do_stop_recording,
)
from apps.teleconsult.services.rooms import Member, arrive
from tests.conftest import signed_in_client, verified_client
from tests.teleconsult.records_cast import *  # noqa: F403
from tests.teleconsult.records_cast import (
    end,
    guest_client,
    guest_invite,
    in_call,
    member,
    png_bytes,
    webm_chunk,
)


def base(room: Consultation) -> str:
    return f"/consult/{room.room}/"


@dataclass
class Scene:
    """A call in progress with something behind every endpoint."""

    room: Consultation
    message: ChatMessage
    finished: Recording
    running: Recording
    invite: GuestInvite


@pytest.fixture
def scene(call: dict[str, Member], room: Consultation, clinician: User) -> Scene:
    message = do_post_message(
        call["patient"], "", SimpleUploadedFile("scan.png", png_bytes(), "image/png")
    )
    do_set_consent(call["patient"], True)
    do_set_consent(call["clinician"], True)
    finished = do_start_recording(call["clinician"])
    do_add_chunk(call["clinician"], finished.pk, 0, webm_chunk(0), content_type="video/webm")
    do_stop_recording(call["clinician"], finished.pk)
    running = do_start_recording(call["clinician"])
    invite, _token = do_invite(call["clinician"], "Ana", "interpreter")
    return Scene(room, message, finished, running, invite)


# (name, method, path under the room or absolute, body)
ENDPOINTS: list[tuple[str, str, Callable[[Scene], str], Callable[[], dict[str, Any]]]] = [
    ("chat list", "get", lambda s: base(s.room) + "chat/", dict),
    ("chat post", "post", lambda s: base(s.room) + "chat/", lambda: {"text": "hello"}),
    ("chat file", "get", lambda s: base(s.room) + f"chat/{s.message.pk}/file/", dict),
    ("consent", "post", lambda s: base(s.room) + "consent/", lambda: {"given": "1"}),
    ("record", "post", lambda s: base(s.room) + "recordings/", dict),
    (
        "chunk",
        "post",
        lambda s: base(s.room) + f"recordings/{s.running.pk}/chunks/0/",
        lambda: {"data": webm_chunk(0), "content_type": "video/webm"},
    ),
    ("stop", "post", lambda s: base(s.room) + f"recordings/{s.running.pk}/stop/", dict),
    (
        "snapshot",
        "post",
        lambda s: base(s.room) + "snapshot/",
        lambda: {"image": SimpleUploadedFile("s.png", png_bytes(), "image/png"), "title": "x"},
    ),
    (
        "invite",
        "post",
        lambda s: base(s.room) + "invites/",
        lambda: {"name": "Eve", "relation": "family"},
    ),
    ("revoke", "post", lambda s: base(s.room) + f"invites/{s.invite.pk}/revoke/", dict),
    ("download", "get", lambda s: f"/consult/recordings/{s.finished.pk}/", dict),
]


def send(client: Client, method: str, url: str, body: dict[str, Any]) -> Any:
    if "content_type" in body:
        return client.post(url, body["data"], content_type=body["content_type"])
    return getattr(client, method)(url, body)


def outsider_client(
    kind: str, patient2: User, outsider: User, other_room: Consultation
) -> tuple[Client, int | None]:
    if kind == "other patient":
        return signed_in_client(patient2), patient2.pk
    if kind == "clinician not taking part":
        return verified_client(outsider), outsider.pk
    if kind == "guest of another room":
        return guest_client(guest_invite(other_room, outsider)), None
    return Client(), None


@pytest.mark.parametrize(
    "kind", ["other patient", "clinician not taking part", "guest of another room", "anonymous"]
)
@pytest.mark.parametrize(
    ("name", "method", "path", "body"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_an_outsider_is_denied_and_the_denial_is_audited(
    scene: Scene,
    patient2: User,
    outsider: User,
    other_room: Consultation,
    kind: str,
    name: str,
    method: str,
    path: Callable[[Scene], str],
    body: Callable[[], dict[str, Any]],
) -> None:
    client, actor = outsider_client(kind, patient2, outsider, other_room)
    counts = (
        ChatMessage.objects.count(),
        Recording.objects.count(),
        RecordingChunk.objects.count(),
        DocumentReference.objects.count(),
        GuestInvite.objects.filter(revoked_at__isnull=True).count(),
    )
    before = AuditEvent.objects.filter(action=Action.DENIED).count()

    response = send(client, method, path(scene), body())

    assert response.status_code == 404
    if name != "download":
        assert list(response.json()) == ["error"]
    denied = AuditEvent.objects.filter(action=Action.DENIED).order_by("seq")
    assert denied.count() == before + 1
    assert denied.last().actor_id == actor  # type: ignore[union-attr]
    # nothing changed, nothing leaked
    assert counts == (
        ChatMessage.objects.count(),
        Recording.objects.count(),
        RecordingChunk.objects.count(),
        DocumentReference.objects.count(),
        GuestInvite.objects.filter(revoked_at__isnull=True).count(),
    )
    assert b"VH1" not in response.content and b"\x1a\x45\xdf\xa3" not in response.content


def test_posts_need_the_csrf_token(
    call: dict[str, Member], room: Consultation, patient: User
) -> None:
    client = signed_in_client(patient)
    client.handler.enforce_csrf_checks = True
    url = base(room) + "chat/"
    # without the token: refused, nothing written
    assert client.post(url, {"text": "hello"}).status_code == 403
    assert not ChatMessage.objects.exists()
    # with the cookie and the X-CSRFToken header, as consult.js sends it
    token = "k" * 32
    client.cookies["csrftoken"] = token
    response = client.post(url, {"text": "hello"}, headers={"X-CSRFToken": token})
    assert response.status_code == 201
    assert ChatMessage.objects.count() == 1


def test_chat_round_trip(
    call: dict[str, Member], room: Consultation, patient: User, clinician: User
) -> None:
    patient_client = signed_in_client(patient)
    doctor = verified_client(clinician)

    posted = doctor.post(
        base(room) + "chat/",
        {"text": "Bonjour", "file": SimpleUploadedFile("r.png", png_bytes(), "image/png")},
    )
    assert posted.status_code == 201
    line = posted.json()
    assert set(line) == {"id", "author", "seat", "sent_at", "text", "file"}
    assert line["seat"] == "clinician" and line["text"] == "Bonjour"
    assert line["file"]["name"] == "r.png"

    listed = patient_client.get(base(room) + "chat/")
    assert listed.status_code == 200
    assert listed.json() == {"messages": [line]}

    download = patient_client.get(line["file"]["url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "image/png"
    assert download["Content-Disposition"].startswith("attachment")
    assert download.content.startswith(b"\x89PNG")
    assert download["X-Content-Type-Options"] == "nosniff"


def test_the_chat_history_costs_the_same_whatever_its_length(
    call: dict[str, Member], room: Consultation, patient: User, django_assert_max_num_queries: Any
) -> None:
    client = signed_in_client(patient)
    do_post_message(call["patient"], "one")
    client.get(base(room) + "chat/")  # warm the session and the patient's second-factor check
    with CaptureQueriesContext(connection) as few:
        assert client.get(base(room) + "chat/").status_code == 200
    for n in range(15):
        do_post_message(call["clinician" if n % 2 else "patient"], f"line {n}")
    with django_assert_max_num_queries(len(few)):
        response = client.get(base(room) + "chat/")
    assert len(response.json()["messages"]) == 16


@pytest.mark.parametrize(
    ("data", "status"),
    [({"text": "x" * 2001}, 400), ({"text": ""}, 400), ({}, 400)],
)
def test_bad_chat_input_is_400(
    call: dict[str, Member], room: Consultation, patient: User, data: dict[str, str], status: int
) -> None:
    response = signed_in_client(patient).post(base(room) + "chat/", data)
    assert response.status_code == status
    assert "error" in response.json()


def test_a_waiting_member_gets_409(room: Consultation, patient: User) -> None:
    arrive(member(room, patient))
    client = signed_in_client(patient)
    assert client.get(base(room) + "chat/").status_code == 409
    response = client.post(base(room) + "chat/", {"text": "hello"})
    assert response.status_code == 409
    assert response.json()["error"]


def test_a_chat_file_over_the_limit_is_413(
    call: dict[str, Member], room: Consultation, patient: User, settings: Any
) -> None:
    settings.RECORDS_MAX_UPLOAD_BYTES = 500
    upload = SimpleUploadedFile("big.png", png_bytes((300, 300)), "image/png")
    response = signed_in_client(patient).post(base(room) + "chat/", {"file": upload})
    assert response.status_code == 413


def test_consent_then_record_then_download(
    call: dict[str, Member], room: Consultation, patient: User, clinician: User
) -> None:
    doctor = verified_client(clinician)
    patient_client = signed_in_client(patient)

    # no consents: 409
    refused = doctor.post(base(room) + "recordings/")
    assert refused.status_code == 409
    assert refused.json()["error"]

    # consent endpoints
    assert patient_client.post(base(room) + "consent/", {"given": "maybe"}).status_code == 400
    assert patient_client.post(base(room) + "consent/", {"given": "1"}).json() == {
        "consents": {"patient": True, "clinician": False},
        "recording": None,
        "allowed": False,
    }
    state = doctor.post(base(room) + "consent/", {"given": "1"}).json()
    assert state["allowed"] is True

    # the patient may not record; the clinician may
    assert patient_client.post(base(room) + "recordings/").status_code == 404
    started = doctor.post(base(room) + "recordings/")
    assert started.status_code == 201
    body = started.json()
    recording_id = body["id"]
    assert body["chunk_url"] == base(room) + f"recordings/{recording_id}/chunks/"
    assert body["stop_url"] == base(room) + f"recordings/{recording_id}/stop/"

    chunks = [webm_chunk(0), webm_chunk(1)]
    for seq, data in enumerate(chunks):
        sent = doctor.post(
            body["chunk_url"] + f"{seq}/", data, content_type="video/webm;codecs=vp8,opus"
        )
        assert sent.status_code == 204, sent.content
    # a retry of the same chunk is fine
    assert (
        doctor.post(body["chunk_url"] + "1/", chunks[1], content_type="video/webm").status_code
        == 204
    )
    # a chunk of another type is refused
    assert (
        doctor.post(body["chunk_url"] + "2/", b"<html>", content_type="text/html").status_code
        == 400
    )
    # the address without a number is not an upload
    assert doctor.post(body["chunk_url"], chunks[0], content_type="video/webm").status_code == 400

    stopped = doctor.post(body["stop_url"])
    assert stopped.status_code == 200
    assert stopped.json() == {"id": recording_id, "size": sum(map(len, chunks)), "chunks": 2}
    # after the stop, uploads conflict
    assert (
        doctor.post(body["chunk_url"] + "5/", chunks[0], content_type="video/webm").status_code
        == 409
    )

    end(room, clinician)
    download = patient_client.get(reverse("teleconsult:recording_download", args=[recording_id]))
    assert download.status_code == 200
    assert download.streaming
    assert download["Content-Type"] == "video/webm"
    assert int(download["Content-Length"]) == sum(map(len, chunks))
    assert download["Content-Disposition"].startswith("attachment")
    assert download["Content-Disposition"].endswith('.webm"')
    assert b"".join(download.streaming_content) == b"".join(chunks)


def test_safari_records_mp4(
    call: dict[str, Member], room: Consultation, clinician: User, patient: User
) -> None:
    do_set_consent(call["patient"], True)
    do_set_consent(call["clinician"], True)
    doctor = verified_client(clinician)
    started = doctor.post(base(room) + "recordings/", {"content_type": "video/mp4;codecs=avc1"})
    assert started.status_code == 201
    url = started.json()["chunk_url"] + "0/"
    assert (
        doctor.post(url, b"\x00\x00\x00\x20ftypisom", content_type="video/mp4").status_code == 204
    )
    doctor.post(started.json()["stop_url"])
    download = signed_in_client(patient).get(f"/consult/recordings/{started.json()['id']}/")
    assert download["Content-Type"] == "video/mp4"
    assert download["Content-Disposition"].endswith('.mp4"')


def test_a_chunk_over_the_limit_is_413(
    call: dict[str, Member], room: Consultation, clinician: User, settings: Any
) -> None:
    settings.TELECONSULT_RECORDING_CHUNK_BYTES = 1024
    do_set_consent(call["patient"], True)
    do_set_consent(call["clinician"], True)
    recording = do_start_recording(call["clinician"])
    url = base(room) + f"recordings/{recording.pk}/chunks/0/"
    response = verified_client(clinician).post(url, b"x" * 1025, content_type="video/webm")
    assert response.status_code == 413
    assert not RecordingChunk.objects.exists()


def test_wrong_methods_are_405(call: dict[str, Member], room: Consultation, patient: User) -> None:
    response = signed_in_client(patient).get(base(room) + "consent/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_a_snapshot_goes_to_the_record(
    call: dict[str, Member], room: Consultation, clinician: User, patient: User
) -> None:
    doctor = verified_client(clinician)
    picture = SimpleUploadedFile("frame.png", png_bytes((320, 180)), "image/png")

    response = doctor.post(
        base(room) + "snapshot/", {"image": picture, "title": "Radio du thorax annotée"}
    )

    assert response.status_code == 201
    document = DocumentReference.objects.get()
    assert response.json() == {
        "document_url": reverse("records:document_download", args=[document.pk])
    }
    assert document.category == "imaging"
    assert document.title == "Radio du thorax annotée"
    assert document.encounter_id == room.encounter_id is not None
    assert document.patient_id == room.patient_id
    assert document.recorded_by == clinician
    assert AuditEvent.objects.filter(
        action=Action.CREATE, object_type="records.documentreference"
    ).exists()
    # the patient sees it in the record
    assert signed_in_client(patient).get(response.json()["document_url"]).status_code == 200


def test_snapshots_are_png_and_for_clinicians(
    call: dict[str, Member], room: Consultation, clinician: User, patient: User
) -> None:
    doctor = verified_client(clinician)
    jpeg = SimpleUploadedFile("frame.png", b"\xff\xd8\xff" + b"0" * 100, "image/png")
    assert doctor.post(base(room) + "snapshot/", {"image": jpeg}).status_code == 400
    assert doctor.post(base(room) + "snapshot/", {}).status_code == 400
    picture = SimpleUploadedFile("frame.png", png_bytes(), "image/png")
    assert (
        signed_in_client(patient).post(base(room) + "snapshot/", {"image": picture}).status_code
        == 404
    )
    assert not DocumentReference.objects.exists()


def test_invite_and_revoke_a_guest(
    call: dict[str, Member], room: Consultation, clinician: User, patient: User
) -> None:
    doctor = verified_client(clinician)
    created = doctor.post(base(room) + "invites/", {"name": "Ana", "relation": "interpreter"})
    assert created.status_code == 201
    body = created.json()
    invite = GuestInvite.objects.get(pk=body["id"])
    assert body["url"].startswith("http://testserver/consult/join/")
    assert invite.expires_at.isoformat() == body["expires_at"]
    assert (
        doctor.post(base(room) + "invites/", {"name": "", "relation": "interpreter"}).status_code
        == 400
    )
    assert (
        signed_in_client(patient)
        .post(base(room) + "invites/", {"name": "Eve", "relation": "family"})
        .status_code
        == 404
    )

    revoked = doctor.post(base(room) + f"invites/{invite.pk}/revoke/")
    assert revoked.status_code == 200
    invite.refresh_from_db()
    assert invite.revoked_at is not None
    assert doctor.post(base(room) + "invites/999999/revoke/").status_code == 404


def test_a_guest_uses_the_chat_but_not_the_recording(
    call: dict[str, Member], room: Consultation, clinician: User
) -> None:
    invite = guest_invite(room, clinician)
    in_call(room, None, invite)  # type: ignore[arg-type]
    client = guest_client(invite)
    assert client.post(base(room) + "chat/", {"text": "Je traduis."}).status_code == 201
    assert client.post(base(room) + "consent/", {"given": "1"}).status_code == 404
    assert client.post(base(room) + "recordings/").status_code == 404


def test_the_admin_shows_what_happened_never_what_was_said(
    scene: Scene, admin_user: User, clinician: User
) -> None:
    browser = verified_client(admin_user)
    do_post_message(member(scene.room, clinician), "Secret médical 4711")

    page = browser.get(f"/admin/teleconsult/consultation/{scene.room.pk}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    assert scene.room.room in text
    assert "Secret médical 4711" not in text and "scan.png" not in text
    assert browser.get("/admin/teleconsult/consultation/").status_code == 200
    # revoking invitations is the one action
    response = browser.post(
        "/admin/teleconsult/guestinvite/",
        {"action": "revoke", "_selected_action": [scene.invite.pk]},
        follow=True,
    )
    assert response.status_code == 200
    scene.invite.refresh_from_db()
    assert scene.invite.revoked_at is not None
