"""Small helpers shared by the FHIR mappers: elements, references, codes, people, security."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts.models import Organization

from ..models import (
    AllergyIntolerance,
    CareTeam,
    ClinicalNote,
    CodeSystem,
    Concept,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
    Practitioner,
    PractitionerRole,
    Prescription,
    Sensitivity,
)
from .codes import EXT, SENSITIVITY_ACT, SYS_PRESCRIPTION, SYS_USER, V3_ACT, V3_CONFIDENTIALITY

T = TypeVar("T")


class FhirError(ValueError):
    """A resource that is not valid FHIR R4, or names something we do not know."""


def _need(value: T | None, element: str) -> T:
    if value is None:
        raise FhirError(f"{element} is required")
    return value


def _clean(value: Any) -> Any:
    """Drop empty elements (FHIR forbids empty strings, arrays and objects)."""
    if isinstance(value, dict):
        return _clean_dict(value)
    if isinstance(value, list):
        return _clean_list(value)
    return value


# One pass per container, the common leaves (None, str) tested first: every read, search page
# and export line goes through here, and the generic recursion cost 60% of the mapping.
def _clean_dict(value: dict[str, Any]) -> dict[str, Any]:
    cleaned = {}
    for key, item in value.items():
        if item is None:
            continue
        if isinstance(item, str):
            if not item:
                continue
        elif isinstance(item, dict):
            item = _clean_dict(item)
            if not item:
                continue
        elif isinstance(item, list):
            item = _clean_list(item)
            if not item:
                continue
        cleaned[key] = item
    return cleaned


def _clean_list(value: list[Any]) -> list[Any]:
    cleaned = []
    for item in value:
        if item is None:
            continue
        if isinstance(item, str):
            if not item:
                continue
        elif isinstance(item, dict):
            item = _clean_dict(item)
            if not item:
                continue
        elif isinstance(item, list):
            item = _clean_list(item)
            if not item:
                continue
        cleaned.append(item)
    return cleaned


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value) if "T" in value else None
    if parsed is None:
        parsed = dt.datetime.combine(dt.date.fromisoformat(value[:10]), dt.time())
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


def _number(value: Decimal | int | None) -> int | float | None:
    if value is None:
        return None
    value = Decimal(value).normalize()
    return int(value) if value == value.to_integral_value() else float(value)


def _decimal(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


# The models behind each FHIR type. ClinicalNote is published as a DocumentReference: both share
# the type's id space, which is safe because ids are random UUIDs.
RESOURCE_MODELS: dict[str, type[models.Model] | tuple[type[models.Model], ...]] = {
    "Organization": Organization,
    "Patient": Patient,
    "Practitioner": Practitioner,
    "PractitionerRole": PractitionerRole,
    "CareTeam": CareTeam,
    "Encounter": Encounter,
    "Condition": Condition,
    "AllergyIntolerance": AllergyIntolerance,
    "MedicationStatement": MedicationStatement,
    "MedicationRequest": MedicationRequest,
    "Observation": Observation,
    "DiagnosticReport": DiagnosticReport,
    "DocumentReference": (DocumentReference, ClinicalNote),
}


def _models_of(resource_type: str) -> tuple[type[models.Model], ...]:
    found = RESOURCE_MODELS[resource_type]
    return found if isinstance(found, tuple) else (found,)


def _parse_reference(reference: Any, expected_types: tuple[str, ...]) -> tuple[str, uuid.UUID]:
    """("Type", fhir_id) of a literal reference "Type/<uuid>" (relative or absolute URL)."""
    if not isinstance(reference, str) or not reference.strip():
        raise FhirError(f"Malformed reference {reference!r}: expected Type/id")
    parts = reference.strip().rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":  # a versioned reference: Type/id/_history/n
        parts = parts[:-2]
    if len(parts) < 2:
        raise FhirError(f"Malformed reference {reference!r}: expected Type/id")
    resource_type, raw_id = parts[-2], parts[-1]
    if resource_type not in expected_types:
        wanted = " or ".join(expected_types)
        raise FhirError(f"Reference {reference!r} should point to a {wanted}")
    try:
        return resource_type, uuid.UUID(raw_id)
    except ValueError:
        raise FhirError(f"Malformed reference {reference!r}: the id is not one of ours") from None


def resolve_reference(reference: str, expected_types: tuple[str, ...]) -> models.Model:
    """The row behind a reference "Type/<fhir_id>" to one of `expected_types`.

    No permission check: callers check that the row is theirs to see. Raises FhirError when the
    reference is malformed, names another type, or points to nothing.
    """
    unknown = [t for t in expected_types if t not in RESOURCE_MODELS]
    if unknown:
        raise FhirError(f"Unsupported resource type {unknown[0]!r}")
    resource_type, fhir_id = _parse_reference(reference, expected_types)
    for model in _models_of(resource_type):
        found = model._default_manager.filter(fhir_id=fhir_id).first()
        if found is not None:
            return found
    raise FhirError(f"Unknown reference {reference!r}: no such {resource_type}")


def _ref(resource_type: str, obj: Any) -> dict[str, str] | None:
    """A reference to a row (a related object, loaded: select_related it in lists)."""
    return {"reference": f"{resource_type}/{obj.fhir_id}"} if obj is not None else None


def _ref_id(
    ref: dict[str, Any] | None,
    resource_type: str,
    *,
    model: type[models.Model] | None = None,
    patient_id: int | None = None,
) -> int | None:
    """The pk behind `ref` ("Type/<fhir_id>"), None when it has no literal reference.

    `patient_id` limits the search to that patient's rows, so a resource cannot point into
    another record (which answers "unknown", as if the row did not exist).
    """
    reference = (ref or {}).get("reference")
    if reference is None:
        return None
    _type, fhir_id = _parse_reference(reference, (resource_type,))
    for candidate in (model,) if model is not None else _models_of(resource_type):
        rows = candidate._default_manager.filter(fhir_id=fhir_id)
        if patient_id is not None:
            rows = rows.filter(patient_id=patient_id)
        pk = rows.values_list("pk", flat=True).first()
        if pk is not None:
            return int(pk)
    raise FhirError(f"Unknown reference {reference!r}: no such {resource_type}")


def _reference_id(reference: str, resource_type: str) -> str | None:
    """The id in "Type/<id>" when it names `resource_type` (no database lookup), else None."""
    parts = reference.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == resource_type else None


def _ext(name: str, kind: str, value: Any) -> dict[str, Any] | None:
    return None if _empty(value) or value is False else {"url": EXT + name, kind: value}


def _ext_value(data: dict[str, Any], name: str) -> Any:
    for extension in data.get("extension", []):
        if extension.get("url") == EXT + name:
            return next((v for k, v in extension.items() if k.startswith("value")), None)
    return None


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any] | None:
    return {"system": system, "code": code, "display": display} if code else None


def _cc(system: str, code: str, display: str | None = None) -> dict[str, Any] | None:
    coding = _coding(system, code, display)
    return {"coding": [coding]} if coding else None


def _code(concept: dict[str, Any] | None, system: str) -> str:
    for coding in (concept or {}).get("coding", []):
        if coding.get("system") == system:
            return str(coding.get("code", ""))
    return ""


def _identifier(data: dict[str, Any], system: str) -> dict[str, Any]:
    return next((i for i in data.get("identifier", []) if i.get("system") == system), {})


def _telecom(data: dict[str, Any], system: str) -> str:
    telecom = data.get("telecom", [])
    return next((t.get("value", "") for t in telecom if t.get("system") == system), "")


def _concept(concept: Concept) -> dict[str, Any]:
    return {
        "coding": [_coding(concept.system, concept.code, concept.display)],
        "text": concept.label,
    }


def _concept_id(data: dict[str, Any] | None) -> int:
    for coding in (data or {}).get("coding", []):
        if coding.get("system") in CodeSystem.values:
            pk = (
                Concept.objects.filter(system=coding["system"], code=coding.get("code"))
                .values_list("pk", flat=True)
                .first()
            )
            if pk is not None:
                return pk
    raise FhirError(f"Unknown code: {data!r}")


def _medication(medication: Medication) -> dict[str, Any]:
    return {
        "coding": [_coding(CodeSystem.ATC, medication.atc_code, medication.name)],
        "text": medication.name,
    }


def _medication_id(data: dict[str, Any] | None) -> int:
    data = data or {}
    found = Medication.objects.filter(name=data.get("text", "")).values_list("pk", flat=True)
    pk = found.first()
    if pk is None and (atc := _code(data, CodeSystem.ATC)):
        pk = Medication.objects.filter(atc_code=atc).values_list("pk", flat=True).first()
    if pk is None:
        raise FhirError(f"Unknown medication: {data!r}")
    return pk


def _prescription_identifier(prescription: Prescription | None) -> dict[str, Any] | None:
    return {"system": SYS_PRESCRIPTION, "value": prescription.number} if prescription else None


def _prescription_id(identifier: dict[str, Any] | None) -> int | None:
    if not identifier or identifier.get("system") != SYS_PRESCRIPTION:
        return None
    pk = Prescription.objects.filter(number=identifier.get("value")).values_list("pk", flat=True)
    found = pk.first()
    if found is None:
        raise FhirError(f"Unknown prescription: {identifier.get('value')!r}")
    return found


def _user_ref(user: Any) -> dict[str, Any] | None:
    """A person of our own: their Practitioner when they have one, always their account id."""
    if user is None:
        return None
    try:
        practitioner = user.practitioner
    except ObjectDoesNotExist:
        practitioner = None
    return {
        "reference": f"Practitioner/{practitioner.fhir_id}" if practitioner else None,
        "identifier": {"system": SYS_USER, "value": str(user.pk)},
        "display": user.get_full_name(),
    }


def _user_id(ref: dict[str, Any] | None) -> int | None:
    if not ref:
        return None
    identifier = ref.get("identifier") or {}
    if identifier.get("system") == SYS_USER and str(identifier.get("value")).isdigit():
        return int(identifier["value"])
    practitioner = _ref_id(ref, "Practitioner")
    if practitioner is not None:
        found = Practitioner.objects.filter(pk=practitioner).values_list("user_id", flat=True)
        return found.first()
    return None


def _instant(value: dt.datetime | None) -> str | None:
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value)
    return _iso(value)


def _meta(obj: Any, sensitivity: str | None = None) -> dict[str, Any]:
    """Version and last update of the row; security labels for clinical items."""
    meta: dict[str, Any] = {"versionId": str(obj.version), "lastUpdated": _instant(obj.updated_at)}
    if sensitivity is not None:
        meta["security"] = _security(sensitivity)
    return meta


def _security(sensitivity: str) -> list[dict[str, Any] | None]:
    """`meta.security` of a clinical item: v3 Confidentiality, plus the ActCode of its category."""
    confidentiality = "N" if sensitivity == Sensitivity.NORMAL else "R"
    security = [_coding(V3_CONFIDENTIALITY, confidentiality)]
    if sensitivity in SENSITIVITY_ACT:
        security.append(_coding(V3_ACT, SENSITIVITY_ACT[Sensitivity(sensitivity)]))
    return security


def _sensitivity(data: dict[str, Any]) -> str:
    codes = {c.get("code") for c in data.get("meta", {}).get("security", [])}
    for sensitivity, code in SENSITIVITY_ACT.items():
        if code in codes:
            return sensitivity.value
    return Sensitivity.NORMAL.value


# Columns FHIR does not carry: an update keeps the stored values, so saving it loses nothing.
_UNMAPPED: dict[type[models.Model], tuple[str, ...]] = {
    Patient: ("user_id", "created_at"),
    DocumentReference: ("storage_name", "thumbnail_name", "key_id"),
}


def _fhir_id(data: dict[str, Any]) -> uuid.UUID | None:
    raw = data.get("id")
    if raw is None:
        return None
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        label = data.get("resourceType", "resource")
        raise FhirError(f"{label}.id {raw!r} is not one of our ids (a UUID)") from None


def _identity(data: dict[str, Any], model: type[models.Model]) -> dict[str, Any]:
    """The row a resource stands for: new without an id; else the stored row's pk and version.

    An id we do not hold gives a new row with that id (update as create: the API decides).
    Version and last update always come from the database, never from the client's meta.
    """
    fhir_id = _fhir_id(data)
    if fhir_id is None:
        return {"id": None}
    keep = _UNMAPPED.get(model, ())
    rows = model._default_manager.filter(fhir_id=fhir_id)
    row = rows.values("pk", "version", "updated_at", *keep).first()
    if row is None:
        return {"id": None, "fhir_id": fhir_id}
    return {"id": row.pop("pk"), "fhir_id": fhir_id, **row}


def _resource(obj: Any, resource_type: str, sensitivity: str | None = None) -> dict[str, Any]:
    """The start of every resource: type, id (the row's opaque UUID) and meta."""
    return {
        "resourceType": resource_type,
        "id": str(obj.fhir_id),
        "meta": _meta(obj, sensitivity),
    }


def _item(obj: Any, resource_type: str, **elements: Any) -> dict[str, Any]:
    """A clinical resource: id, meta with security labels, the subject, then its own elements."""
    subject = "patient" if resource_type == "AllergyIntolerance" else "subject"
    resource = {
        **_resource(obj, resource_type, obj.sensitivity),
        "extension": elements.pop("extension", None),
        subject: _ref("Patient", obj.patient),
        **elements,
    }
    return _clean(resource)


def _item_fields(data: dict[str, Any], model: type[models.Model]) -> dict[str, Any]:
    resource_type = data["resourceType"]
    subject = data.get("patient") if resource_type == "AllergyIntolerance" else data.get("subject")
    patient_id = _ref_id(subject, "Patient")
    if patient_id is None:
        raise FhirError(f"{resource_type} without a patient")
    return {**_identity(data, model), "patient_id": patient_id, "sensitivity": _sensitivity(data)}


def _element_pk(element: dict[str, Any]) -> int | None:
    """The pk in a child element's id (care-team participants, observation notes)."""
    raw = str(element.get("id", ""))
    return int(raw) if raw.isdigit() else None


def _recorded_ext(obj: Any) -> list[Any]:
    return [
        _ext("recorded", "valueDateTime", _iso(obj.recorded_at)),
        _ext("recorder", "valueReference", _user_ref(obj.recorded_by)),
    ]


def _recorded_from_ext(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "recorded_at": _datetime(_ext_value(data, "recorded")) or timezone.now(),
        "recorded_by_id": _user_id(_ext_value(data, "recorder")),
    }


def _period(start: Any, end: Any) -> dict[str, Any]:
    return {"start": _iso(start), "end": _iso(end)}
