"""Small helpers shared by the FHIR mappers: elements, references, codes, people, security."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..models import CodeSystem, Concept, Medication, Practitioner, Prescription, Sensitivity
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
        value = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in value.items() if not _empty(v)}
    if isinstance(value, list):
        return [item for item in (_clean(v) for v in value) if not _empty(item)]
    return value


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


def _ref(resource_type: str, pk: Any) -> dict[str, str] | None:
    return {"reference": f"{resource_type}/{pk}"} if pk is not None else None


def _ref_id(ref: dict[str, Any] | None, resource_type: str) -> int | None:
    """The pk in "Type/123" (relative or absolute), or None."""
    parts = (ref or {}).get("reference", "").rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type and parts[-1].isdigit():
        return int(parts[-1])
    return None


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
        "reference": f"Practitioner/{practitioner.pk}" if practitioner else None,
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


def _meta(sensitivity: str) -> dict[str, Any]:
    security = [_coding(V3_CONFIDENTIALITY, "N" if sensitivity == Sensitivity.NORMAL else "R")]
    if sensitivity in SENSITIVITY_ACT:
        security.append(_coding(V3_ACT, SENSITIVITY_ACT[Sensitivity(sensitivity)]))
    return {"security": security}


def _sensitivity(data: dict[str, Any]) -> str:
    codes = {c.get("code") for c in data.get("meta", {}).get("security", [])}
    for sensitivity, code in SENSITIVITY_ACT.items():
        if code in codes:
            return sensitivity.value
    return Sensitivity.NORMAL.value


def _item(obj: Any, resource_type: str, **elements: Any) -> dict[str, Any]:
    """A clinical resource: id, security labels, the subject, then its own elements."""
    subject = "patient" if resource_type == "AllergyIntolerance" else "subject"
    resource = {
        "resourceType": resource_type,
        "id": str(obj.pk),
        "meta": _meta(obj.sensitivity),
        "extension": elements.pop("extension", None),
        subject: _ref("Patient", obj.patient_id),
        **elements,
    }
    return _clean(resource)


def _item_fields(data: dict[str, Any]) -> dict[str, Any]:
    subject = data.get("patient") if data["resourceType"] == "AllergyIntolerance" else None
    patient_id = _ref_id(subject or data.get("subject"), "Patient")
    if patient_id is None:
        raise FhirError(f"{data['resourceType']} without a patient")
    return {"id": _pk(data), "patient_id": patient_id, "sensitivity": _sensitivity(data)}


def _pk(data: dict[str, Any]) -> int | None:
    raw = str(data.get("id", "")).removeprefix("note-")
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
