"""Messaging REST API (`/api/v1/threads/`, `/api/v1/messaging/…`) through the messaging gate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import User
from apps.accounts.services import do_issue_token
from apps.audit.models import Action, AuditEvent
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Message, Participant, Thread, Topic
from apps.messaging.services.threads import (
    do_post_message,
    unread_thread_count,
)
from apps.messaging.services.triage import (
    do_assign,
    do_resolve,
    do_set_urgency,
)
from apps.records.models import Patient
from tests.conftest import signed_in_client, verified_client

from .conftest import photo


@pytest.fixture(autouse=True)
def _setting(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MESSAGING_OPENING_HOURS = (
        frozenset(range(1, 8)),
        dt.time(0, 0),
        dt.time(23, 59, 59, 999999),
    )


def client_for(user: User) -> Client:
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def post(client: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    return client.post(url, data or {}, content_type="application/json")


def last_audit() -> AuditEvent:
    found = AuditEvent.objects.order_by("-seq").first()
    assert found is not None
    return found


def denials() -> int:
    return AuditEvent.objects.filter(action=Action.DENIED).count()


@pytest.fixture
def thread(make_thread: Callable[..., Thread]) -> Thread:
    return make_thread(subject="Douleur au genou", body="Depuis lundi, surtout le soir.")


@pytest.fixture
def staff_thread(make_thread: Callable[..., Thread], clinician: User) -> Thread:
    return make_thread(clinician, topic=Topic.CASE, subject="Avis genou", body="IRM ?")


LIST = reverse("api:thread-list")
UNREAD = reverse("api:messaging-unread")


def url(name: str, thread: Thread) -> str:
    return reverse(f"api:thread-{name}", args=[thread.pk])


# ---------------------------------------------------------------------------------------------
# Listing


def test_a_patient_lists_their_conversations_never_the_staff_ones(
    thread: Thread, staff_thread: Thread, patient: User, clinician: User
) -> None:
    do_post_message(ThreadAccess(thread, clinician), body="Venez jeudi.")
    client = client_for(patient)

    listing = client.get(LIST).json()

    assert listing["count"] == 1
    [row] = listing["results"]
    assert row["id"] == thread.pk
    assert row["subject"] == "Douleur au genou"
    assert (row["topic"], row["topic_label"]) == ("question", "Question")
    assert row["unread"] is True  # the clinician answered
    assert row["staff_only"] is False
    assert row["url"] == f"/messages/{thread.pk}/"
    read = last_audit()
    assert (read.action, read.actor_id, read.object_type) == (
        "read",
        patient.pk,
        "messaging.thread",
    )
    assert read.detail == {"what": "api-threads", "count": 1, "patients": 1}
    assert read.patient_id == str(thread.patient_id)


def test_the_team_filters_its_inbox(
    make_thread: Callable[..., Thread],
    thread: Thread,
    staff_thread: Thread,
    record2: Patient,
    patient2: User,
    clinician: User,
    colleague: User,
) -> None:
    other = make_thread(patient2, patient_record=record2, subject="Ordonnance", body="Renouveler")
    do_assign(ThreadAccess(thread, clinician), clinician.pk)
    do_set_urgency(ThreadAccess(other, clinician), "urgent")
    do_resolve(ThreadAccess(staff_thread, clinician))
    client = client_for(clinician)

    def ids(**query: Any) -> list[int]:
        response = client.get(LIST, query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert sorted(ids()) == sorted([thread.pk, staff_thread.pk, other.pk])
    assert sorted(ids(state="open")) == sorted([thread.pk, other.pk])
    assert ids(state="resolved") == [staff_thread.pk]
    assert ids(urgency="urgent") == [other.pk]
    assert ids(assigned="me") == [thread.pk]
    assert sorted(ids(assigned="none")) == sorted([staff_thread.pk, other.pk])
    assert ids(patient=record2.pk) == [other.pk]
    assert sorted(ids(patient=thread.patient_id)) == sorted([thread.pk, staff_thread.pk])
    # the colleague is on `record`'s team only
    assert sorted(row["id"] for row in client_for(colleague).get(LIST).json()["results"]) == (
        sorted([thread.pk, staff_thread.pk])
    )
    assert client.get(LIST, {"state": "lost"}).status_code == 400
    assert client.get(LIST, {"assigned": "someone"}).status_code == 400


def test_the_inbox_costs_the_same_queries_for_3_or_12_threads(
    make_thread: Callable[..., Thread], clinician: User, colleague: User
) -> None:
    client = client_for(clinician)
    client.get(LIST)  # the session's first request does more (last seen, language)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(LIST).status_code == 200
        return len(captured)

    for n in range(3):
        thread = make_thread(subject=f"Question {n}")
        do_assign(ThreadAccess(thread, clinician), colleague.pk)
    few = queries()
    for n in range(9):
        make_thread(subject=f"Autre {n}")

    assert queries() == few


def test_someone_elses_patient_in_the_filter_is_404_and_audited(
    thread: Thread, record2: Patient, patient: User, colleague: User
) -> None:
    for user, patient_id in ((patient, record2.pk), (colleague, record2.pk)):
        before = denials()

        response = client_for(user).get(LIST, {"patient": patient_id})

        assert response.status_code == 404
        assert denials() == before + 1
        assert last_audit().patient_id == str(record2.pk)


# ---------------------------------------------------------------------------------------------
# Starting a conversation


def test_a_patient_starts_a_conversation(record: Patient, patient: User, clinician: User) -> None:
    client = client_for(patient)

    response = post(
        client,
        LIST,
        {"topic": "symptom", "subject": "Vertiges", "body": "Depuis ce matin.", "patient": 99},
    )

    assert response.status_code == 201, response.content
    created = response.json()
    thread = Thread.objects.get(pk=created["id"])
    assert thread.patient == record  # `patient` is ignored for a patient
    assert response["Location"] == url("detail", thread)
    assert [m["body"] for m in created["messages"]] == ["Depuis ce matin."]
    assert created["messages"][0]["side"] == "patient"
    assert created["awaiting_team"] is True and created["response_due_at"] is not None
    assert unread_thread_count(clinician) == 1


def test_a_clinician_starts_a_staff_discussion_with_a_mention(
    record: Patient, clinician: User, colleague: User
) -> None:
    response = post(
        client_for(clinician),
        LIST,
        {
            "topic": "handover",
            "subject": "Relève",
            "body": "Pansement ce soir.",
            "patient": record.pk,
            "mentions": [colleague.pk],
        },
    )

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["staff_only"] is True
    assert created["patient_read_at"] is None
    assert created["messages"][0]["mentions"] == [colleague.pk]
    assert created["url"] == f"/clinic/messages/{created['id']}/"


@pytest.mark.parametrize(
    ("who", "data", "field"),
    [
        ("patient", {"topic": "case", "subject": "x", "body": "y"}, "detail"),
        ("patient", {"topic": "question", "subject": "x", "body": "   "}, "detail"),
        ("patient", {"topic": "question", "subject": "", "body": "y"}, "subject"),
        ("patient", {"topic": "gossip", "subject": "x", "body": "y"}, "topic"),
        ("patient", {"topic": "question", "subject": "x", "body": "y", "mentions": [1]}, "detail"),
        ("clinician", {"topic": "case", "subject": "x", "body": "y"}, "patient"),
        ("clinician", {"topic": "question", "subject": "x", "body": "y" * 10_001}, "detail"),
    ],
)
def test_refused_starts_answer_400_and_create_nothing(
    who: str, data: dict[str, Any], field: str, record: Patient, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    if who == "clinician" and field != "patient":
        data = {**data, "patient": record.pk}

    response = post(client_for(user), LIST, data)

    assert response.status_code == 400
    assert field in response.json()
    assert not Thread.objects.exists()


@pytest.mark.parametrize("who", ["outsider", "billing_user", "admin_user"])
def test_starting_about_someone_elses_patient_is_404_and_audited(
    who: str, record: Patient, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    before = denials()

    response = post(
        client_for(user),
        LIST,
        {"topic": "case", "subject": "x", "body": "y", "patient": record.pk},
    )

    assert response.status_code == 404
    assert denials() == before + 1
    assert not Thread.objects.exists()


def test_a_photo_sent_as_multipart_is_downloadable_through_the_api(
    record: Patient, patient: User, clinician: User, outsider: User
) -> None:
    response = client_for(patient).post(
        LIST,
        {"topic": "wound", "subject": "Plaie", "body": "", "files": [photo(), photo("2.jpg")]},
    )

    assert response.status_code == 201, response.content
    [message] = response.json()["messages"]
    first, second = message["attachments"]
    assert (first["filename"], first["content_type"], first["is_image"]) == (
        "plaie.jpg",
        "image/jpeg",
        True,
    )
    assert second["filename"] == "2.jpg"
    doctor = client_for(clinician)
    download = doctor.get(first["url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "image/jpeg"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert b"PhoneCam" not in download.content  # the camera's EXIF data was stripped
    read = last_audit()
    assert (read.action, read.object_type) == ("read", "messaging.attachment")
    thumbnail = doctor.get(first["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/jpeg"
    # an outsider: 404, audited
    before = denials()
    assert client_for(outsider).get(first["url"]).status_code == 404
    assert denials() == before + 1


# ---------------------------------------------------------------------------------------------
# One conversation


def test_reading_a_conversation_is_audited_marks_it_read_and_shows_receipts(
    thread: Thread, patient: User, clinician: User
) -> None:
    do_post_message(ThreadAccess(thread, clinician), body="Venez jeudi.")
    client = client_for(patient)
    assert client.get(UNREAD).json() == {"threads": 1}

    response = client.get(url("detail", thread))

    assert response.status_code == 200
    shown = response.json()
    assert [(m["side"], m["body"]) for m in shown["messages"]] == [
        ("patient", "Depuis lundi, surtout le soir."),
        ("team", "Venez jeudi."),
    ]
    assert shown["messages"][1]["author_name"] == clinician.get_full_name()
    assert shown["team_read_at"] is not None  # the clinician read it by answering
    assert shown["patient_read_at"] is not None  # now read
    assert shown["unread"] is False
    assert client.get(UNREAD).json() == {"threads": 0}
    audited = AuditEvent.objects.filter(
        action="read", object_type="messaging.thread", object_id=str(thread.pk)
    )
    assert audited.get(actor_id=patient.pk).detail["what"] == "api-thread"


def test_a_conversation_costs_the_same_queries_for_2_or_12_messages(
    thread: Thread, patient: User, clinician: User, colleague: User
) -> None:
    client = client_for(clinician)
    client.get(url("detail", thread))  # the session's first request does more

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("detail", thread)).status_code == 200
        return len(captured)

    do_post_message(ThreadAccess(thread, clinician), body="Photo ?", mention_ids=[colleague.pk])
    few = queries()
    for n in range(5):
        do_post_message(ThreadAccess(thread, patient), body=f"Photo {n}", files=[photo()])
        do_post_message(ThreadAccess(thread, colleague), body="Vu", mention_ids=[clinician.pk])

    assert queries() == few


def test_an_automatic_reply_is_the_teams(
    settings: Any, make_thread: Callable[..., Thread], patient: User
) -> None:
    from django.utils import timezone

    after_tomorrow = (timezone.localdate() + dt.timedelta(days=2)).isoweekday()
    settings.MESSAGING_OPENING_HOURS = (frozenset({after_tomorrow}), dt.time(8), dt.time(18))
    thread = make_thread()

    messages = client_for(patient).get(url("detail", thread)).json()["messages"]

    assert [(m["automatic"], m["side"], m["author"]) for m in messages] == [
        (False, "patient", patient.pk),
        (True, "team", None),
    ]


def test_answering_with_json_and_with_files(
    thread: Thread, patient: User, clinician: User, colleague: User
) -> None:
    doctor = client_for(clinician)

    response = post(
        doctor, url("messages", thread), {"body": "Et la douleur ?", "mentions": [colleague.pk]}
    )

    assert response.status_code == 201, response.content
    answer = response.json()
    assert (answer["body"], answer["side"], answer["mentions"]) == (
        "Et la douleur ?",
        "team",
        [colleague.pk],
    )
    assert Message.objects.get(pk=answer["id"]).author == clinician
    with_files = client_for(patient).post(
        url("messages", thread), {"body": "Voici la photo", "files": [photo()]}
    )
    assert with_files.status_code == 201, with_files.content
    assert [a["filename"] for a in with_files.json()["attachments"]] == ["plaie.jpg"]
    thread.refresh_from_db()
    assert thread.awaiting_team


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"body": ""}, "detail"),
        ({"body": "x" * 10_001}, "detail"),
        ({"body": "Dr ?", "mentions": [1]}, "detail"),  # patients cannot mention
        ({"body": "ok", "mentions": ["x"]}, "mentions"),
    ],
)
def test_refused_answers_are_400(
    data: dict[str, Any], field: str, thread: Thread, patient: User
) -> None:
    response = post(client_for(patient), url("messages", thread), data)

    assert response.status_code == 400
    assert field in response.json()
    assert Message.objects.filter(thread=thread).count() == 1


def test_marking_read_answers_the_unread_count(
    thread: Thread, make_thread: Callable[..., Thread], clinician: User, colleague: User
) -> None:
    make_thread(subject="Deuxième question")
    client = client_for(colleague)
    assert client.get(UNREAD).json() == {"threads": 2}

    response = post(client, url("read", thread))

    assert response.json() == {"threads": 1}
    assert Participant.objects.get(thread=thread, user=colleague).last_read_at is not None
    assert unread_thread_count(clinician) == 2


# ---------------------------------------------------------------------------------------------
# Triage


def test_the_team_triages_through_the_api(thread: Thread, clinician: User, colleague: User) -> None:
    client = client_for(clinician)

    assigned = post(client, url("assign", thread), {"assignee": colleague.pk})
    assert assigned.status_code == 200, assigned.content
    assert (assigned.json()["assignee"], assigned.json()["assignee_name"]) == (
        colleague.pk,
        colleague.get_full_name(),
    )
    urgent = post(client, url("urgency", thread), {"urgency": "urgent"})
    assert urgent.json()["urgency"] == "urgent"
    resolved = post(client, url("resolve", thread))
    assert (resolved.json()["state"], resolved.json()["awaiting_team"]) == ("resolved", False)
    reopened = post(client, url("reopen", thread))
    assert reopened.json()["state"] == "open"
    unassigned = post(client, url("assign", thread), {"assignee": None})
    assert unassigned.json()["assignee"] is None
    whats = [
        a.detail["what"]
        for a in AuditEvent.objects.filter(action="update", object_id=str(thread.pk)).order_by(
            "seq"
        )
    ]
    assert whats == ["assign", "urgency", "resolve", "reopen", "assign"]


def test_triage_errors_are_400(thread: Thread, clinician: User, outsider: User) -> None:
    client = client_for(clinician)

    wrong_person = post(client, url("assign", thread), {"assignee": outsider.pk})
    assert wrong_person.status_code == 400
    assert "detail" in wrong_person.json()
    assert post(client, url("urgency", thread), {"urgency": "panic"}).status_code == 400
    assert post(client, url("assign", thread), {}).status_code == 400


@pytest.mark.parametrize("name", ["assign", "urgency", "resolve", "reopen"])
def test_patients_cannot_triage(name: str, thread: Thread, patient: User, clinician: User) -> None:
    data = {"assign": {"assignee": clinician.pk}, "urgency": {"urgency": "urgent"}}.get(name, {})

    response = post(client_for(patient), url(name, thread), data)

    assert response.status_code == 400
    assert response.json()["detail"] == "Only the care team can do this."
    thread.refresh_from_db()
    assert (thread.assignee, thread.urgency, thread.state) == (None, "routine", "open")


# ---------------------------------------------------------------------------------------------
# Who is refused


ENDPOINTS = ["detail", "messages", "read", "assign", "urgency", "resolve", "reopen"]


def call(client: Client, name: str, thread: Thread) -> Any:
    if name == "detail":
        return client.get(url(name, thread))
    data = {
        "messages": {"body": "Bonjour"},
        "assign": {"assignee": None},
        "urgency": {"urgency": "urgent"},
    }.get(name, {})
    return post(client, url(name, thread), data)


@pytest.mark.parametrize("who", ["outsider", "patient2", "billing_user", "admin_user"])
def test_outsiders_get_404_and_a_denial_row_on_every_endpoint(
    who: str, thread: Thread, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    client = client_for(user)
    for name in ENDPOINTS:
        before = denials()

        response = call(client, name, thread)

        assert response.status_code == 404, name
        assert denials() == before + 1, name
        denied = last_audit()
        assert (denied.actor_id, denied.object_type, denied.object_id) == (
            user.pk,
            "messaging.thread",
            str(thread.pk),
        )
    assert client.get(LIST).json()["count"] == 0
    assert client.get(UNREAD).json() == {"threads": 0}
    thread.refresh_from_db()
    assert (thread.message_count, thread.state, thread.urgency) == (1, "open", "routine")


def test_the_patient_gets_404_on_every_endpoint_of_a_staff_discussion(
    staff_thread: Thread, patient: User
) -> None:
    client = client_for(patient)
    for name in ENDPOINTS:
        before = denials()

        assert call(client, name, staff_thread).status_code == 404, name
        assert denials() == before + 1, name
    assert Message.objects.filter(thread=staff_thread).count() == 1


def test_an_unknown_thread_is_404_and_audited(clinician: User) -> None:
    response = client_for(clinician).get(reverse("api:thread-detail", args=[424242]))

    assert response.status_code == 404
    assert last_audit().object_id == "424242"


def test_anonymous_and_unverified_staff_are_refused(thread: Thread, clinician: User) -> None:
    assert Client().get(LIST).status_code in (401, 403)
    assert Client().get(url("detail", thread)).status_code in (401, 403)
    assert signed_in_client(clinician).get(url("detail", thread)).status_code == 403
    assert not AuditEvent.objects.filter(action="read", object_type="messaging.thread").exists()


def test_a_bearer_token_reads_the_inbox(thread: Thread, clinician: User) -> None:
    secret, _token = do_issue_token(clinician, name="inbox")

    listing = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get(LIST)

    assert listing.status_code == 200
    assert [row["id"] for row in listing.json()["results"]] == [thread.pk]


def test_the_openapi_schema_documents_the_messaging_api(patient: User) -> None:
    response = client_for(patient).get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/threads/",
        "/api/v1/threads/{id}/",
        "/api/v1/threads/{id}/messages/",
        "/api/v1/threads/{id}/read/",
        "/api/v1/threads/{id}/assign/",
        "/api/v1/threads/{id}/urgency/",
        "/api/v1/threads/{id}/resolve/",
        "/api/v1/threads/{id}/reopen/",
        "/api/v1/messaging/unread/",
        "/api/v1/messaging/files/{id}/",
    ):
        assert path in paths, path
    listing = {p["name"] for p in paths["/api/v1/threads/"]["get"]["parameters"]}
    assert {"state", "urgency", "assigned", "patient", "page"} <= listing
    start = paths["/api/v1/threads/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(start)
