"""The audit trail as FHIR AuditEvent (administrators' and systems' tokens only).

Audit rows have no `fhir_id`, `version` or `updated_at` column: the queryset annotates them
(the id is the first half of the row's hash, see `apps.audit.fhir`), so reads, `_id` and
`_lastUpdated` work like on every other type. `patient` and `agent` searches take FHIR ids and
are translated to the keys the rows store by the lookups below, which keep the row indexes usable.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import CharField, F, Model, Q, QuerySet, UUIDField, Value
from django.db.models.functions import Cast, Left
from django.db.models.lookups import In

from apps.accounts.models import Role, User
from apps.audit.fhir import action_expression, attach_references, audit_event_to_fhir
from apps.audit.fhir import outcome_expression as audit_outcome_expression
from apps.audit.models import AuditEvent
from apps.records.models import Patient

from .auth import SYSTEM, USER, Caller
from .registry import DATE, REFERENCE, TOKEN, ResourceType, SearchParam, register


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class PatientByFhirId(In):
    """`patient_id__fhir_patient=<Patient fhir_id>`: rows naming that patient."""

    lookup_name = "fhir_patient"

    def get_prep_lookup(self) -> Any:
        fhir_id = _uuid_or_none(self.rhs)
        patients = Patient.objects.filter(fhir_id=fhir_id) if fhir_id else Patient.objects.none()
        self.rhs = patients.annotate(key=Cast("pk", CharField())).values("key").query
        return super().get_prep_lookup()


class AgentByFhirId(In):
    """`actor_id__fhir_agent=<Practitioner or Patient fhir_id>`: rows that person wrote."""

    lookup_name = "fhir_agent"

    def get_prep_lookup(self) -> Any:
        fhir_id = _uuid_or_none(self.rhs)
        users = User.objects.none()
        if fhir_id is not None:
            users = User.objects.filter(
                Q(practitioner__fhir_id=fhir_id) | Q(patient_record__fhir_id=fhir_id)
            )
        self.rhs = users.values("pk").query
        return super().get_prep_lookup()


AuditEvent._meta.get_field("patient_id").register_lookup(PatientByFhirId)
AuditEvent._meta.get_field("actor_id").register_lookup(AgentByFhirId)


class AuditEventQuerySet(QuerySet[AuditEvent]):
    """Resolves the references of every fetched page at once (a fixed number of queries)."""

    def _fetch_all(self) -> None:
        already = self._result_cache is not None
        super()._fetch_all()
        if not already and self._result_cache and isinstance(self._result_cache[0], AuditEvent):
            attach_references(self._result_cache)


def may_read_audit(caller: Caller) -> bool:
    """Administrators' user tokens and backend systems (their scopes decide the rest)."""
    if caller.kind == SYSTEM:
        return True
    user = caller.user
    return (
        caller.kind == USER
        and user is not None
        and user.is_active
        and (user.is_staff or user.role == Role.ADMIN)
    )


class AuditEventType(ResourceType):
    """The AuditEvent type: annotated rows and a caller check beyond the token's kind."""

    def allows(self, caller: Caller) -> bool:
        return may_read_audit(caller)

    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        return AuditEventQuerySet(AuditEvent).annotate(
            fhir_id=Cast(Left("hash", 32), UUIDField()),
            version=Value(1),
            updated_at=F("occurred_at"),
            fhir_action=action_expression(),
            fhir_outcome=audit_outcome_expression(),
        )


register(
    AuditEventType(
        "AuditEvent",
        (AuditEvent,),
        audit_event_to_fhir,  # type: ignore[arg-type]
        patient_path=None,
        params={
            "_id": SearchParam("_id", TOKEN, ("fhir_id",)),
            "_lastUpdated": SearchParam("_lastUpdated", DATE, ("occurred_at",), sortable=True),
            "date": SearchParam("date", DATE, ("occurred_at",), sortable=True),
            "action": SearchParam("action", TOKEN, ("fhir_action",)),
            "outcome": SearchParam("outcome", TOKEN, ("fhir_outcome",)),
            "patient": SearchParam(
                "patient",
                REFERENCE,
                ("patient_id__fhir_patient",),
                targets=("Patient",),
                documentation="The patient whose record the event is about.",
            ),
            "agent": SearchParam(
                "agent",
                REFERENCE,
                ("actor_id__fhir_agent",),
                targets=("Practitioner", "Patient"),
                documentation="Who did it (a practitioner or a patient).",
            ),
        },
        default_sort="-occurred_at",
        kinds=(USER, SYSTEM),
    )
)
