"""The audit trail as FHIR R4 AuditEvent resources.

An audit row has no FHIR id column (rows are append-only and hash-chained): its id is the UUID
made of the first 32 hex digits of its hash, stable and opaque (never the sequence number).
People and objects are referenced by their FHIR ids where they have one; the keys stored in
the row (user, patient and object primary keys) never leave the server. `attach_references`
resolves them for a whole page of rows in a fixed number of queries.
"""

from __future__ import annotations

import base64
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Case, Value, When

from .models import Action, AuditEvent, Outcome

AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
OBSERVER = "Hôpital virtuel"

# AuditEvent.action: Create, Read, Update, Delete, Execute.
ACTION_CODES: dict[str, str] = {
    Action.CREATE: "C",
    Action.READ: "R",
    Action.UPDATE: "U",
    Action.SIGN: "U",
    Action.DELETE: "D",
    Action.EXPORT: "R",
}
# AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure.
OUTCOME_CODES: dict[str, str] = {Outcome.SUCCESS: "0", Outcome.DENIED: "4", Outcome.FAILURE: "8"}

# DICOM audit event types (and subtypes) of the rows that are not FHIR interactions.
_LOGIN = ("110114", "User Authentication")
_SECURITY = ("110113", "Security Alert")
DCM_TYPES: dict[str, tuple[tuple[str, str], tuple[str, str] | None]] = {
    Action.LOGIN: (_LOGIN, ("110122", "Login")),
    Action.LOGIN_FAILED: (_LOGIN, ("110122", "Login")),
    Action.OTP_VERIFIED: (_LOGIN, ("110122", "Login")),
    Action.OTP_FAILED: (_LOGIN, ("110122", "Login")),
    Action.LOGOUT: (_LOGIN, ("110123", "Logout")),
    Action.SESSION_EXPIRED: (_LOGIN, ("110123", "Logout")),
    Action.EXPORT: (("110106", "Export"), None),
    Action.BREAK_GLASS: (_SECURITY, ("110127", "Emergency Override Started")),
    Action.OTP_ENABLED: (_SECURITY, ("110137", "User Security Attributes Changed")),
    Action.OTP_DISABLED: (_SECURITY, ("110137", "User Security Attributes Changed")),
    Action.TOKEN_ISSUED: (_SECURITY, ("110137", "User Security Attributes Changed")),
    Action.TOKEN_REVOKED: (_SECURITY, ("110137", "User Security Attributes Changed")),
    Action.INVITED: (_SECURITY, ("110137", "User Security Attributes Changed")),
    Action.DEACTIVATED: (_SECURITY, ("110137", "User Security Attributes Changed")),
}
# FHIR interactions as the API records them (detail["fhir"]) -> restful-interaction codes.
INTERACTIONS = {
    "read": "read",
    "vread": "vread",
    "search": "search-type",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "transaction": "transaction",
    "batch": "batch",
    "everything": "operation",
    "binary": "read",
    "export": "operation",
}


def audit_fhir_id(event: AuditEvent) -> str:
    """The event's FHIR id: a UUID made of the first half of its hash."""
    return str(uuid.UUID(event.hash[:32]))


# The API's interactions (detail["fhir"]) decide the action where present: a denied read is
# still a read, and a search executes a query (FHIR's guidance records searches as Execute).
INTERACTION_ACTIONS = {
    "read": "R",
    "vread": "R",
    "binary": "R",
    "everything": "R",
    "export": "R",
    "search": "E",
    "create": "C",
    "update": "U",
    "delete": "D",
}
OUTCOME_TEXT: dict[str, str] = {Outcome.DENIED: "Access refused", Outcome.FAILURE: "Failed"}


def fhir_action(event: AuditEvent) -> str:
    interaction = str(event.detail.get("fhir", ""))
    if interaction in INTERACTION_ACTIONS:
        return INTERACTION_ACTIONS[interaction]
    return ACTION_CODES.get(event.action, "E")


def action_expression() -> Case:
    """`fhir_action` as a database expression, so that searches can filter on it."""
    by_code: dict[str, list[str]] = defaultdict(list)
    for interaction, code in INTERACTION_ACTIONS.items():
        by_code[code].append(interaction)
    by_action: dict[str, list[str]] = defaultdict(list)
    for action, code in ACTION_CODES.items():
        by_action[code].append(str(action))
    whens = [When(detail__fhir__in=names, then=Value(code)) for code, names in by_code.items()]
    whens += [When(action__in=names, then=Value(code)) for code, names in by_action.items()]
    return Case(*whens, default=Value("E"), output_field=models.CharField())


def outcome_expression() -> Case:
    whens = [When(outcome=str(name), then=Value(code)) for name, code in OUTCOME_CODES.items()]
    return Case(*whens, default=Value("8"), output_field=models.CharField())


@dataclass
class References:
    """FHIR ids of what a page of audit rows names, keyed by what the rows store."""

    practitioner_by_user: dict[int, str] = field(default_factory=dict)
    patient_by_user: dict[int, str] = field(default_factory=dict)
    patient_by_pk: dict[str, str] = field(default_factory=dict)
    # (object_type, object_id) -> (FHIR type, fhir_id)
    objects: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def _published_models() -> dict[str, tuple[str, type[models.Model]]]:
    """Model label ('records.observation') -> (FHIR type, model) for the record's types."""
    from apps.records.fhir import RESOURCE_MODELS

    found: dict[str, tuple[str, type[models.Model]]] = {}
    for type_name, model_or_models in RESOURCE_MODELS.items():
        targets = model_or_models if isinstance(model_or_models, tuple) else (model_or_models,)
        for model in targets:
            found[model._meta.label_lower] = (type_name, model)
    return found


def attach_references(events: Iterable[AuditEvent]) -> References:
    """Resolve the people, patients and objects of `events` (one query per kind)."""
    from apps.records.models import Patient, Practitioner

    rows = list(events)
    refs = References()
    users = {e.actor_id for e in rows if e.actor_id is not None}
    if users:
        refs.practitioner_by_user = {
            user: str(fhir_id)
            for user, fhir_id in Practitioner.objects.filter(user_id__in=users).values_list(
                "user_id", "fhir_id"
            )
        }
        refs.patient_by_user = {
            user: str(fhir_id)
            for user, fhir_id in Patient.objects.filter(user_id__in=users).values_list(
                "user_id", "fhir_id"
            )
        }
    patient_pks = {int(e.patient_id) for e in rows if e.patient_id.isdigit()}
    if patient_pks:
        refs.patient_by_pk = {
            str(pk): str(fhir_id)
            for pk, fhir_id in Patient.objects.filter(pk__in=patient_pks).values_list(
                "pk", "fhir_id"
            )
        }
    published = _published_models()
    wanted: dict[str, set[int]] = defaultdict(set)
    for event in rows:
        if event.object_type in published and event.object_id.isdigit():
            wanted[event.object_type].add(int(event.object_id))
    for label, pks in wanted.items():
        type_name, model = published[label]
        for pk, fhir_id in model._default_manager.filter(pk__in=pks).values_list("pk", "fhir_id"):
            refs.objects[(label, str(pk))] = (type_name, str(fhir_id))
    for event in rows:
        event._fhir_refs = refs  # type: ignore[attr-defined]
    return refs


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _type_and_subtype(event: AuditEvent) -> tuple[dict[str, str], list[dict[str, str]]]:
    interaction = event.detail.get("fhir")
    if event.object_type.startswith("fhir.") and interaction:
        code = INTERACTIONS.get(str(interaction), "operation")
        return _coding(AUDIT_TYPE, "rest", "RESTful Operation"), [_coding(INTERACTION, code)]
    if event.action in DCM_TYPES:
        (code, display), subtype = DCM_TYPES[event.action]
        return _coding(DCM, code, display), [_coding(DCM, *subtype)] if subtype else []
    if event.patient_id:
        return _coding(DCM, "110110", "Patient Record"), []
    return _coding(DCM, "110100", "Application Activity"), []


def _agent(event: AuditEvent, refs: References) -> dict[str, Any]:
    caller = str(event.detail.get("caller", ""))
    who: dict[str, Any] = {"display": event.actor_label or caller or "anonymous"}
    if event.actor_id is not None:
        if event.actor_id in refs.practitioner_by_user:
            who["reference"] = f"Practitioner/{refs.practitioner_by_user[event.actor_id]}"
        elif event.actor_id in refs.patient_by_user:
            who["reference"] = f"Patient/{refs.patient_by_user[event.actor_id]}"
        kind = _coding(SECURITY_ROLE, "humanuser", "human user")
    elif caller.startswith("client:"):
        kind = _coding(DCM, "110150", "Application")
    else:
        kind = _coding(SECURITY_ROLE, "humanuser", "human user")
    agent: dict[str, Any] = {"type": {"coding": [kind]}, "who": who, "requestor": True}
    if event.actor_role:
        agent["role"] = [{"text": event.actor_role}]
    if event.ip:
        agent["network"] = {"address": event.ip, "type": "2"}  # 2: IP address
    return agent


def _object_entity(event: AuditEvent, refs: References) -> dict[str, Any] | None:
    if not event.object_type:
        return None
    what: dict[str, Any]
    if event.object_type.startswith("fhir."):
        type_name = event.object_type.removeprefix("fhir.")
        what = {"display": type_name}
        if event.object_id:
            what = {"reference": f"{type_name}/{event.object_id}"}
    elif (event.object_type, event.object_id) in refs.objects:
        type_name, fhir_id = refs.objects[(event.object_type, event.object_id)]
        what = {"reference": f"{type_name}/{fhir_id}"}
    else:
        # Something that is not a FHIR resource (or no longer exists): name its kind only,
        # since its key would be a sequential database id.
        what = {"display": event.object_type}
    entity: dict[str, Any] = {
        "what": what,
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
    }
    query = event.detail.get("query")
    if query:
        entity["query"] = base64.b64encode(str(query).encode()).decode()
    return entity


def _patient_entity(event: AuditEvent, refs: References) -> dict[str, Any] | None:
    fhir_id = refs.patient_by_pk.get(event.patient_id)
    if fhir_id is None:
        return None
    return {
        "what": {"reference": f"Patient/{fhir_id}"},
        "type": _coding(ENTITY_TYPE, "1", "Person"),
        "role": _coding(OBJECT_ROLE, "1", "Patient"),
    }


def audit_event_to_fhir(event: AuditEvent) -> dict[str, Any]:
    """One FHIR R4 AuditEvent for an audit row (references resolved unless attached already)."""
    refs: References = getattr(event, "_fhir_refs", None) or attach_references([event])
    event_type, subtype = _type_and_subtype(event)
    recorded = event.occurred_at.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": audit_fhir_id(event),
        "meta": {"versionId": "1", "lastUpdated": recorded},
        "type": event_type,
        "action": fhir_action(event),
        "recorded": recorded,
        "outcome": OUTCOME_CODES.get(event.outcome, "8"),
        "agent": [_agent(event, refs)],
        "source": {
            "observer": {"display": OBSERVER},
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if subtype:
        resource["subtype"] = subtype
    if event.outcome != Outcome.SUCCESS:
        resource["outcomeDesc"] = OUTCOME_TEXT.get(event.outcome, "Failed")
    if event.action == Action.BREAK_GLASS:
        resource["purposeOfEvent"] = [
            {"coding": [_coding(ACT_REASON, "ETREAT", "Emergency Treatment")]}
        ]
    entities = [_object_entity(event, refs), _patient_entity(event, refs)]
    if any(entities):
        resource["entity"] = [entity for entity in entities if entity]
    return resource
