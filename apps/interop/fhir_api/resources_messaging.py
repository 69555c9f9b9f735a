"""Secure messages as FHIR Communication (read and search only).

A Communication is in its patient's compartment (patient_path "patient"), and the messaging
access rule narrows what `scope.py` lets through (`restrict`):
- a patient's token never sees the staff-only discussions about them;
- a staff token sees the messages of the patients whose care team they are on, and only those:
  an emergency (break-the-glass) access opens the record, not the patient's conversations;
- a system token sees every message its scopes name.
The mapping is `apps.messaging.fhir`; writing happens in the portals (`apps.messaging`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Case, CharField, Model, QuerySet, Value, When
from django.db.models.lookups import In

from apps.messaging.fhir import (
    PATIENT_AUDIENCE,
    STAFF_ONLY,
    SYS_MESSAGE_AUDIENCE,
    SYS_MESSAGE_TOPIC,
    SYS_THREAD,
    message_to_fhir,
    with_fhir_related,
)
from apps.messaging.models import Message
from apps.records.access import patients_for_user

from .auth import PATIENT, USER, Caller
from .registry import DATE, REFERENCE, TOKEN, ResourceType, SearchParam, register


def _uuids(values: Any) -> list[uuid.UUID]:
    found = []
    for value in values if isinstance(values, list | tuple | set) else [values]:
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


class MessagesOfThread(In):
    """`id__fhir_thread=<thread fhir_id, or a list>`: the messages of those conversations (a
    malformed id matches nothing instead of failing the UUID cast)."""

    lookup_name = "fhir_thread"

    def get_prep_lookup(self) -> Any:
        messages = Message.objects.filter(thread__fhir_id__in=_uuids(self.rhs))
        self.rhs = messages.values("pk").query
        return super().get_prep_lookup()


Message._meta.get_field("id").register_lookup(MessagesOfThread)


class CommunicationType(ResourceType):
    """Messages with what their mapping reads, narrowed by the messaging access rule."""

    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        audience = Case(
            When(thread__staff_only=True, then=Value(STAFF_ONLY)),
            default=Value(PATIENT_AUDIENCE),
            output_field=CharField(),
        )
        return with_fhir_related(super().queryset(model)).annotate(fhir_audience=audience)

    def restrict(self, caller: Caller, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if caller.kind == PATIENT:
            return queryset.filter(thread__staff_only=False)
        if caller.kind == USER:
            if caller.user is None:
                return queryset.none()
            return queryset.filter(patient__in=patients_for_user(caller.user).values("pk"))
        return queryset


register(
    CommunicationType(
        "Communication",
        (Message,),
        message_to_fhir,
        patient_path="patient",
        params={
            "_id": SearchParam("_id", TOKEN, ("fhir_id",)),
            "_lastUpdated": SearchParam("_lastUpdated", DATE, ("updated_at",), sortable=True),
            "patient": SearchParam(
                "patient", REFERENCE, ("patient__fhir_id",), targets=("Patient",)
            ),
            "subject": SearchParam(
                "subject", REFERENCE, ("patient__fhir_id",), targets=("Patient",)
            ),
            "sent": SearchParam("sent", DATE, ("sent_at",), sortable=True),
            "category": SearchParam(
                "category",
                TOKEN,
                (f"={SYS_MESSAGE_TOPIC}|thread__topic", f"={SYS_MESSAGE_AUDIENCE}|fhir_audience"),
                documentation=(
                    f"The conversation's topic ({SYS_MESSAGE_TOPIC}: question, symptom, wound, "
                    "renewal, administrative, case, handover) or its audience "
                    f"({SYS_MESSAGE_AUDIENCE}: patient, staff-only)."
                ),
            ),
            "priority": SearchParam("priority", TOKEN, ("thread__urgency",)),
            "identifier": SearchParam(
                "identifier",
                TOKEN,
                (f"={SYS_THREAD}|id__fhir_thread",),
                documentation=f"The conversation: {SYS_THREAD}|<id> gives all its messages.",
            ),
        },
        default_sort="-sent_at",
        includes=("patient",),
    )
)
