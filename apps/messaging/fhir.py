"""Messages as FHIR R4 Communication (read and search only; written in the portals).

Message                 Communication
  fhir_id, version,     id, meta.versionId, meta.lastUpdated
  updated_at
  (always)              status = completed: a message exists once it is sent
  thread                identifier[0] = SYS_THREAD|<thread fhir_id> (use "secondary"): every
                        message of a conversation carries it, so clients group them (search
                        `identifier=SYS_THREAD|<id>`); topic.text = the thread's subject
  thread.topic          category[0] = SYS_MESSAGE_TOPIC|question, symptom, wound, renewal,
                        administrative, case, handover (display in English)
  thread.staff_only     category[1] = SYS_MESSAGE_AUDIENCE|patient or staff-only (staff-only
                        messages are never served to a patient's token)
  thread.urgency        priority = routine | urgent
  (previous message)    inResponseTo[0] = the message before it in the thread
  patient               subject = Patient/<id>
  sent_at               sent
  author                sender: a clinician as Practitioner/<id> when they have one (always
                        with the account identifier SYS_USER and their name); the patient as
                        Patient/<id>; the automatic reply as the patient's Organization with
                        display "automatic reply"
  (who it is for)       recipient: the patient for the team's messages and automatic replies
                        of a patient conversation; the patient's CareTeam otherwise (the
                        patient's messages, and every message of a staff-only discussion)
  body                  payload[0].contentString
  attachments           payload[1..].contentAttachment: contentType, title = file name, size,
                        url = the file's download page (messaging:attachment, same permission
                        rules as the portal). Attachment.hash is SHA-1 in FHIR while we keep
                        SHA-256: it goes in the extension EXT + "sha256" (hex), as for
                        DocumentReference, and `hash` is left out.

Mentions, read markers, assignment and the thread's state are workflow, not exported.

A page of messages costs a fixed number of queries: `with_fhir_related` joins the thread,
patient, organisation and author, prefetches the files and annotates the previous message's id
and the care team's id (a sub-select each, per returned row). `to_fhir` looks them up itself
for a message loaded any other way.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.urls import NoReverseMatch, reverse
from django.utils import translation

from apps.accounts.models import Role
from apps.records.fhir import CANONICAL
from apps.records.fhir.helpers import _clean, _ext, _meta, _user_ref
from apps.records.models import CareTeam

from .models import Attachment, Message, Thread, Topic

SYS_THREAD = CANONICAL + "/sid/message-thread"
SYS_MESSAGE_TOPIC = CANONICAL + "/CodeSystem/message-topic"
SYS_MESSAGE_AUDIENCE = CANONICAL + "/CodeSystem/message-audience"
STAFF_ONLY = "staff-only"
PATIENT_AUDIENCE = "patient"
AUDIENCE_DISPLAY = {PATIENT_AUDIENCE: "Patient and care team", STAFF_ONLY: "Staff only"}
AUTOMATIC_REPLY = "automatic reply"
CARE_TEAM = "care team"

SELECT_RELATED = ("thread", "patient__organization", "author__practitioner")
PREFETCH_RELATED = ("attachments",)


@functools.cache
def topic_display() -> dict[str, str]:
    """The topics' labels in English: codes of a code system are not translated."""
    with translation.override(None):
        return {topic.value: str(topic.label) for topic in Topic}


def previous_message() -> Subquery:
    """The fhir_id of the message before this one in its thread (same order as the page)."""
    earlier = Message.objects.filter(thread_id=OuterRef("thread_id")).filter(
        Q(sent_at__lt=OuterRef("sent_at")) | Q(sent_at=OuterRef("sent_at"), pk__lt=OuterRef("pk"))
    )
    return Subquery(earlier.order_by("-sent_at", "-pk").values("fhir_id")[:1])


def care_team() -> Subquery:
    """The fhir_id of the patient's care team (the active one, the oldest first)."""
    teams = CareTeam.objects.filter(patient_id=OuterRef("patient_id"))
    return Subquery(teams.order_by("-active", "pk").values("fhir_id")[:1])


def with_fhir_related(queryset: QuerySet[Message]) -> QuerySet[Message]:
    """`queryset` loading everything `to_fhir` reads, in a fixed number of queries."""
    return (
        queryset.select_related(*SELECT_RELATED)
        .prefetch_related(*PREFETCH_RELATED)
        .annotate(fhir_in_response_to=previous_message(), fhir_care_team=care_team())
    )


def _attachment_url(pk: int) -> str | None:
    try:
        return settings.SITE_URL + reverse("messaging:attachment", args=[pk])
    except NoReverseMatch:  # the messaging pages are not installed
        return None


def _attachment(attachment: Attachment) -> dict[str, Any]:
    return {
        "contentAttachment": {
            "extension": [_ext("sha256", "valueString", attachment.sha256)],
            "contentType": attachment.content_type,
            "url": _attachment_url(attachment.pk),
            "size": attachment.size,
            "title": attachment.filename,
        }
    }


def _patient_ref(message: Message) -> dict[str, Any]:
    patient = message.patient
    return {
        "reference": f"Patient/{patient.fhir_id}",
        "display": f"{patient.given_names} {patient.family_name}".strip(),
    }


def _care_team_ref(message: Message) -> dict[str, Any]:
    team = getattr(message, "fhir_care_team", None)
    return {"reference": f"CareTeam/{team}" if team else None, "display": CARE_TEAM}


def _sender(message: Message) -> dict[str, Any] | None:
    if message.author is None:
        organization = message.patient.organization
        return {
            "reference": f"Organization/{organization.fhir_id}" if organization else None,
            "display": AUTOMATIC_REPLY,
        }
    if message.author.role == Role.PATIENT:
        return _patient_ref(message)
    return _user_ref(message.author)


def _written_by_patient(message: Message) -> bool:
    return message.author is not None and message.author.role == Role.PATIENT


def _load_missing(message: Message) -> None:
    """The annotations of `with_fhir_related`, for a message loaded without them."""
    if hasattr(message, "fhir_in_response_to") and hasattr(message, "fhir_care_team"):
        return
    found = (
        Message.objects.filter(pk=message.pk)
        .annotate(fhir_in_response_to=previous_message(), fhir_care_team=care_team())
        .values("fhir_in_response_to", "fhir_care_team")
        .first()
        or {}
    )
    message.fhir_in_response_to = found.get("fhir_in_response_to")  # type: ignore[attr-defined]
    message.fhir_care_team = found.get("fhir_care_team")  # type: ignore[attr-defined]


def message_to_fhir(message: Message) -> dict[str, Any]:
    """A Communication; load lists with `with_fhir_related` (a fixed number of queries)."""
    _load_missing(message)
    thread: Thread = message.thread
    audience = STAFF_ONLY if thread.staff_only else PATIENT_AUDIENCE
    previous = getattr(message, "fhir_in_response_to", None)
    if thread.staff_only or _written_by_patient(message):
        recipient = _care_team_ref(message)
    else:
        recipient = _patient_ref(message)
    payload = [{"contentString": message.body}]
    payload += [_attachment(attachment) for attachment in message.attachments.all()]
    return _clean(
        {
            "resourceType": "Communication",
            "id": str(message.fhir_id),
            "meta": _meta(message),
            "identifier": [
                {"use": "secondary", "system": SYS_THREAD, "value": str(thread.fhir_id)}
            ],
            "inResponseTo": [{"reference": f"Communication/{previous}"}] if previous else None,
            "status": "completed",
            "category": [
                {
                    "coding": [
                        {
                            "system": SYS_MESSAGE_TOPIC,
                            "code": thread.topic,
                            "display": topic_display().get(thread.topic),
                        }
                    ]
                },
                {
                    "coding": [
                        {
                            "system": SYS_MESSAGE_AUDIENCE,
                            "code": audience,
                            "display": AUDIENCE_DISPLAY[audience],
                        }
                    ]
                },
            ],
            "priority": thread.urgency,
            "subject": {"reference": f"Patient/{message.patient.fhir_id}"},
            "topic": {"text": thread.subject},
            "sent": message.sent_at.isoformat(),
            "recipient": [recipient],
            "sender": _sender(message),
            "payload": payload,
        }
    )
