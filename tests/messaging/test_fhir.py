"""Messages as FHIR Communication: the mapping, read and search under the messaging access rule
(patients never see staff-only discussions; only the care team, not an emergency access, sees a
patient's messages), the bulk export, and a constant cost per page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import do_issue_token
from apps.audit.models import AuditEvent
from apps.interop.fhir_api.oauth import do_create_fhir_client
from apps.messaging.access import ThreadAccess
from apps.messaging.fhir import SYS_MESSAGE_AUDIENCE, SYS_MESSAGE_TOPIC, SYS_THREAD
from apps.messaging.models import Message, Thread, Topic
from apps.messaging.services.threads import (
    do_post_message,
)
from apps.messaging.services.triage import (
    do_set_urgency,
)
from apps.records.fhir import EXT, SYS_USER, validate
from apps.records.models import BreakGlassAccess, CareTeam, Patient, Practitioner
from tests.interop.conftest import entries
from tests.interop.test_fhir_bulk import download, finish, kick, manifest
from tests.messaging.conftest import photo

Fhir = Callable[..., Client]


@pytest.fixture(autouse=True)
def _setup(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Always open: no automatic reply unless a test closes the team.
    settings.MESSAGING_OPENING_HOURS = (frozenset(range(1, 8)), dt.time(0), dt.time(23, 59, 59))
    yield


@pytest.fixture
def fhir_client() -> Fhir:
    """A Django test client that sends a bearer token for `user` with `scopes`."""

    def make(user: User, *scopes: str) -> Client:
        secret, _token = do_issue_token(user, name="fhir test", scopes=list(scopes))
        return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT="application/fhir+json")

    return make


@pytest.fixture
def practitioner(clinician: User) -> Practitioner:
    return Practitioner.objects.create(user=clinician, registration_number="7601000123456")


@pytest.fixture
def conversation(
    make_thread: Callable[..., Thread], clinician: User, practitioner: Practitioner
) -> tuple[Thread, Message, Message]:
    """The patient asks with a photo; the clinician (a Practitioner) answers."""
    thread = make_thread(topic=Topic.WOUND, subject="Plaie au genou", files=[photo()])
    question = thread.messages.get()
    answer = do_post_message(ThreadAccess(thread, clinician), body="Elle cicatrise bien.")
    return thread, question, answer


@pytest.fixture
def discussion(make_thread: Callable[..., Thread], colleague: User, record: Patient) -> Thread:
    """A staff-only case discussion about the same patient, started by the nurse."""
    return make_thread(
        colleague, topic=Topic.CASE, subject="Antibiotique ?", body="Faut-il un antibiotique ?"
    )


def system_client(scopes: str = "system/*.rs") -> Client:
    """A backend system's client with a token of `scopes`."""
    import secrets

    from oauth2_provider.models import AccessToken

    client, _secret = do_create_fhir_client("Messages reader", scopes)
    token = secrets.token_urlsafe(16)
    AccessToken.objects.create(
        application=client.application, token=token, scope=scopes, expires="2999-01-01T00:00Z"
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/fhir+json")


def ids(client: Client, **params: Any) -> set[str]:
    response = client.get("/fhir/Communication", params)
    assert response.status_code == 200, response.content
    bundle = response.json()
    for resource in entries(bundle):
        validate(resource)
    return {resource["id"] for resource in entries(bundle)}


def last_audit() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


# ---------------------------------------------------------------------------------------------
# The mapping


def test_a_team_answer_reads_as_a_communication(
    conversation: tuple[Thread, Message, Message],
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    fhir_client: Fhir,
) -> None:
    thread, question, answer = conversation

    response = fhir_client(clinician, "user/*.rs").get(f"/fhir/Communication/{answer.fhir_id}")

    assert response.status_code == 200
    resource = response.json()
    validate(resource)
    assert resource["id"] == str(answer.fhir_id)
    assert resource["status"] == "completed"
    assert resource["identifier"] == [
        {"use": "secondary", "system": SYS_THREAD, "value": str(thread.fhir_id)}
    ]
    assert resource["category"][0]["coding"][0] == {
        "system": SYS_MESSAGE_TOPIC,
        "code": "wound",
        "display": "Wound photo",
    }
    assert resource["category"][1]["coding"][0]["code"] == "patient"
    assert resource["priority"] == "routine"
    assert resource["subject"] == {"reference": f"Patient/{record.fhir_id}"}
    assert resource["topic"] == {"text": "Plaie au genou"}
    assert resource["inResponseTo"] == [{"reference": f"Communication/{question.fhir_id}"}]
    assert dt.datetime.fromisoformat(resource["sent"]) == answer.sent_at
    assert resource["sender"] == {
        "reference": f"Practitioner/{practitioner.fhir_id}",
        "identifier": {"system": SYS_USER, "value": str(clinician.pk)},
        "display": clinician.get_full_name(),
    }
    assert resource["recipient"][0]["reference"] == f"Patient/{record.fhir_id}"
    assert resource["payload"] == [{"contentString": "Elle cicatrise bien."}]
    # the read is audited against the patient
    event = last_audit()
    assert (event.action, event.object_type) == ("read", "fhir.Communication")
    assert event.patient_id == str(record.pk) and event.object_id == str(answer.fhir_id)


def test_the_patients_message_is_from_the_patient_to_the_care_team_with_its_file(
    conversation: tuple[Thread, Message, Message], record: Patient, patient: User, fhir_client: Fhir
) -> None:
    _thread, question, _answer = conversation
    attachment = question.attachments.get()

    resource = (
        fhir_client(patient, "patient/*.rs").get(f"/fhir/Communication/{question.fhir_id}").json()
    )

    validate(resource)
    assert resource["sender"]["reference"] == f"Patient/{record.fhir_id}"
    team = CareTeam.objects.get(patient=record)
    assert resource["recipient"] == [
        {"reference": f"CareTeam/{team.fhir_id}", "display": "care team"}
    ]
    assert "inResponseTo" not in resource  # the first message of the thread
    text, file = resource["payload"]
    assert text == {"contentString": "Bonjour, puis-je prendre mon comprimé le soir ?"}
    assert file["contentAttachment"] == {
        "extension": [{"url": EXT + "sha256", "valueString": attachment.sha256}],
        "contentType": "image/jpeg",
        "url": f"http://127.0.0.1:8000/messages/files/{attachment.pk}/",
        "size": attachment.size,
        "title": "plaie.jpg",
    }


def test_the_automatic_reply_comes_from_the_organisation(
    settings: Any, make_thread: Callable[..., Thread], record: Patient, clinician: User
) -> None:
    from apps.messaging.fhir import message_to_fhir

    today = timezone.localtime().isoweekday()
    settings.MESSAGING_OPENING_HOURS = (
        frozenset(range(1, 8)) - {today},
        dt.time(0),
        dt.time(23, 59, 59),
    )
    thread = make_thread()
    reply = thread.messages.get(automatic=True)

    resource = message_to_fhir(reply)

    validate(resource)
    assert resource["sender"] == {
        "reference": f"Organization/{record.organization.fhir_id}",
        "display": "automatic reply",
    }
    assert resource["recipient"][0]["reference"] == f"Patient/{record.fhir_id}"
    first = thread.messages.get(automatic=False)
    assert resource["inResponseTo"] == [{"reference": f"Communication/{first.fhir_id}"}]


def test_a_staff_only_message_is_labelled_and_addressed_to_the_care_team(
    discussion: Thread, colleague: User, record: Patient, fhir_client: Fhir
) -> None:
    message = discussion.messages.get()

    resource = (
        fhir_client(colleague, "user/*.rs").get(f"/fhir/Communication/{message.fhir_id}").json()
    )

    validate(resource)
    assert resource["category"][0]["coding"][0]["code"] == "case"
    assert resource["category"][1]["coding"][0] == {
        "system": SYS_MESSAGE_AUDIENCE,
        "code": "staff-only",
        "display": "Staff only",
    }
    # the nurse has no Practitioner row: named, with the account identifier
    assert resource["sender"] == {
        "identifier": {"system": SYS_USER, "value": str(colleague.pk)},
        "display": colleague.get_full_name(),
    }
    assert resource["recipient"][0]["reference"].startswith("CareTeam/")


# ---------------------------------------------------------------------------------------------
# Who sees what


def test_a_patient_sees_their_conversations_but_never_the_staff_discussion(
    conversation: tuple[Thread, Message, Message],
    discussion: Thread,
    record: Patient,
    patient: User,
    fhir_client: Fhir,
) -> None:
    _thread, question, answer = conversation
    staff_message = discussion.messages.get()
    client = fhir_client(patient, "patient/*.rs")

    assert ids(client) == {str(question.fhir_id), str(answer.fhir_id)}
    assert ids(client, patient=str(record.fhir_id), category="staff-only") == set()

    response = client.get(f"/fhir/Communication/{staff_message.fhir_id}")
    assert response.status_code == 404
    event = last_audit()
    assert (event.action, event.object_type) == ("denied", "fhir.Communication")
    assert event.object_id == str(staff_message.fhir_id)
    # nor inside $everything
    everything = client.get(f"/fhir/Patient/{record.fhir_id}/$everything").json()
    found = {e["resource"]["id"] for e in everything["entry"]}
    assert str(answer.fhir_id) in found and str(staff_message.fhir_id) not in found


def test_another_patient_sees_none_of_them(
    conversation: tuple[Thread, Message, Message],
    record2: Patient,
    patient2: User,
    fhir_client: Fhir,
) -> None:
    _thread, question, _answer = conversation
    client = fhir_client(patient2, "patient/*.rs")

    assert ids(client) == set()
    assert client.get(f"/fhir/Communication/{question.fhir_id}").status_code == 404
    assert last_audit().action == "denied"


def test_the_care_team_sees_the_staff_discussion_too(
    conversation: tuple[Thread, Message, Message],
    discussion: Thread,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    _thread, question, answer = conversation
    staff_message = discussion.messages.get()
    client = fhir_client(clinician, "user/*.rs")

    assert ids(client) == {str(question.fhir_id), str(answer.fhir_id), str(staff_message.fhir_id)}
    assert ids(client, category="staff-only") == {str(staff_message.fhir_id)}
    assert ids(client, category=f"{SYS_MESSAGE_TOPIC}|case") == {str(staff_message.fhir_id)}
    assert ids(client, category=f"{SYS_MESSAGE_AUDIENCE}|patient") == {
        str(question.fhir_id),
        str(answer.fhir_id),
    }


def test_an_outsider_clinician_gets_404_and_an_empty_search_both_audited(
    conversation: tuple[Thread, Message, Message],
    record: Patient,
    outsider: User,
    fhir_client: Fhir,
) -> None:
    _thread, question, _answer = conversation
    client = fhir_client(outsider, "user/*.rs")

    response = client.get(f"/fhir/Communication/{question.fhir_id}")

    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    denial = last_audit()
    assert (denial.action, denial.outcome) == ("denied", "denied")
    assert denial.object_type == "fhir.Communication"
    assert denial.object_id == str(question.fhir_id)
    assert denial.actor_id == outsider.pk

    for params in ({}, {"patient": str(record.fhir_id)}):
        bundle = client.get("/fhir/Communication", params).json()
        assert bundle["total"] == 0 and not entries(bundle)
        search = last_audit()
        assert search.object_type == "fhir.Communication" and search.detail["fhir"] == "search"
        assert search.detail["total"] == 0 and search.actor_id == outsider.pk


def test_an_emergency_access_opens_the_record_but_not_the_messages(
    conversation: tuple[Thread, Message, Message],
    record: Patient,
    outsider: User,
    fhir_client: Fhir,
) -> None:
    _thread, question, _answer = conversation
    BreakGlassAccess.objects.create(
        user=outsider,
        patient=record,
        reason="Patient inconscient aux urgences.",
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    client = fhir_client(outsider, "user/*.rs")

    assert client.get(f"/fhir/Patient/{record.fhir_id}").status_code == 200
    assert client.get(f"/fhir/Communication/{question.fhir_id}").status_code == 404
    assert ids(client, patient=str(record.fhir_id)) == set()


def test_a_system_token_sees_every_message(
    conversation: tuple[Thread, Message, Message], discussion: Thread
) -> None:
    assert ids(system_client()) == {str(m.fhir_id) for m in Message.objects.all()}
    assert len(ids(system_client())) == 3
    assert system_client("system/Observation.rs").get("/fhir/Communication").status_code == 403


# ---------------------------------------------------------------------------------------------
# Searching


def test_search_by_patient_date_priority_and_conversation(
    conversation: tuple[Thread, Message, Message],
    discussion: Thread,
    record: Patient,
    record2: Patient,
    make_thread: Callable[..., Thread],
    patient2: User,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    thread, question, answer = conversation
    other = make_thread(patient2, patient_record=record2, subject="Autre question")
    other_message = other.messages.get()
    Message.objects.filter(pk=question.pk).update(sent_at=timezone.now() - dt.timedelta(days=10))
    do_set_urgency(ThreadAccess(thread, clinician), "urgent")
    client = fhir_client(clinician, "user/*.rs")
    staff_message = discussion.messages.get()

    by_patient = ids(client, patient=str(record.fhir_id))
    assert by_patient == {str(question.fhir_id), str(answer.fhir_id), str(staff_message.fhir_id)}
    assert ids(client, subject=f"Patient/{record2.fhir_id}") == {str(other_message.fhir_id)}
    week_ago = (timezone.localdate() - dt.timedelta(days=7)).isoformat()
    assert ids(client, patient=str(record.fhir_id), sent=f"lt{week_ago}") == {str(question.fhir_id)}
    assert str(question.fhir_id) not in ids(client, sent=f"ge{week_ago}")
    assert ids(client, priority="urgent") == {str(question.fhir_id), str(answer.fhir_id)}
    assert ids(client, identifier=f"{SYS_THREAD}|{thread.fhir_id}") == {
        str(question.fhir_id),
        str(answer.fhir_id),
    }
    assert ids(client, identifier=f"{SYS_THREAD}|not-a-uuid") == set()
    assert ids(client, category="wound") == {str(question.fhir_id), str(answer.fhir_id)}
    # newest first by default; oldest first on request
    sorted_bundle = client.get(
        "/fhir/Communication", {"patient": str(record.fhir_id), "_sort": "sent"}
    ).json()
    assert entries(sorted_bundle)[0]["id"] == str(question.fhir_id)
    included = client.get(
        "/fhir/Communication",
        {"identifier": f"{SYS_THREAD}|{thread.fhir_id}", "_include": "Communication:patient"},
    ).json()
    assert [e["resource"]["resourceType"] for e in included["entry"]] == [
        "Communication",
        "Communication",
        "Patient",
    ]


def test_communication_is_in_the_capability_statement() -> None:
    statement = Client().get("/fhir/metadata").json()
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Communication"]
    assert {i["code"] for i in entry["interaction"]} == {"read", "vread", "search-type"}
    assert {"patient", "subject", "sent", "category", "priority", "identifier"} <= {
        p["name"] for p in entry["searchParam"]
    }


def test_a_search_page_costs_the_same_whatever_its_size(
    conversation: tuple[Thread, Message, Message],
    discussion: Thread,
    record: Patient,
    patient: User,
    clinician: User,
    colleague: User,
    fhir_client: Fhir,
    django_assert_num_queries: Any,
) -> None:
    thread, _question, _answer = conversation
    for kind, client in (
        ("user", fhir_client(clinician, "user/*.rs")),
        ("patient", fhir_client(patient, "patient/*.rs")),
    ):
        client.get("/fhir/Patient", {"_summary": "count"})  # the token's first use is written
        params = {"patient": str(record.fhir_id), "_count": 2}
        with CaptureQueriesContext(connection) as small:
            client.get("/fhir/Communication", params)
        # more messages, by other authors, with more files
        for author in (patient, colleague, clinician):
            do_post_message(
                ThreadAccess(thread, author), body=f"{kind} {author.pk}", files=[photo()]
            )
        with django_assert_num_queries(len(small)):
            bundle = client.get("/fhir/Communication", {**params, "_count": 5}).json()
        # both pages are full (so both count the matches)
        assert len(entries(bundle)) == 5 and bundle["total"] >= 5
        for resource in entries(bundle):
            validate(resource)


def test_a_read_costs_the_same_whatever_the_message(
    conversation: tuple[Thread, Message, Message],
    clinician: User,
    fhir_client: Fhir,
    django_assert_num_queries: Any,
) -> None:
    _thread, question, answer = conversation  # a first message with a file; an answer without
    client = fhir_client(clinician, "user/*.rs")
    client.get("/fhir/Patient", {"_summary": "count"})
    with CaptureQueriesContext(connection) as first:
        client.get(f"/fhir/Communication/{question.fhir_id}")
    with django_assert_num_queries(len(first)):
        assert client.get(f"/fhir/Communication/{answer.fhir_id}").status_code == 200


# ---------------------------------------------------------------------------------------------
# Bulk export


def test_the_bulk_export_has_the_communications_each_caller_may_read(
    conversation: tuple[Thread, Message, Message],
    discussion: Thread,
    patient: User,
    clinician: User,
    fhir_client: Fhir,
) -> None:
    _thread, question, answer = conversation
    staff_message = discussion.messages.get()
    for user, scopes, expected in (
        (clinician, "user/*.rs", {question, answer, staff_message}),
        (patient, "patient/*.rs", {question, answer}),
    ):
        client = fhir_client(user, scopes)
        job_id = kick(client, _type="Communication")
        files = download(client, manifest(client, str(finish(job_id, block_size=2).pk)))
        exported = files["Communication"]
        assert {r["id"] for r in exported} == {str(m.fhir_id) for m in expected}
        for resource in exported:
            assert resource == client.get(f"/fhir/Communication/{resource['id']}").json()


def test_communication_is_read_only(
    conversation: tuple[Thread, Message, Message], clinician: User, fhir_client: Fhir
) -> None:
    _thread, _question, answer = conversation
    client = fhir_client(clinician, "user/*.cruds")
    resource = client.get(f"/fhir/Communication/{answer.fhir_id}").json()
    resource["payload"] = [{"contentString": "Changé par l'API"}]

    created = client.post("/fhir/Communication", resource, content_type="application/fhir+json")
    updated = client.put(
        f"/fhir/Communication/{answer.fhir_id}", resource, content_type="application/fhir+json"
    )

    assert created.status_code == updated.status_code == 405
    answer.refresh_from_db()
    assert answer.body == "Elle cicatrise bien." and Message.objects.count() == 2
