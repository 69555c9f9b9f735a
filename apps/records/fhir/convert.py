"""`to_fhir` and `from_fhir`: dispatch a model instance or a resource to its mapper."""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.accounts.models import Organization

from ..models import (
    AllergyIntolerance,
    CareTeam,
    ClinicalNote,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
    Practitioner,
    PractitionerRole,
)
from .clinical import (
    _allergy_from,
    _allergy_to,
    _condition_from,
    _condition_to,
    _encounter_from,
    _encounter_to,
    _observation_from,
    _observation_to,
    _report_from,
    _report_to,
    _request_from,
    _request_to,
    _statement_from,
    _statement_to,
)
from .codes import NOTE_CATEGORY, SYS_DOCUMENT_CATEGORY
from .documents import _document_from, _document_to, _note_from, _note_to
from .helpers import FhirError, _code, _fhir_id
from .people import (
    _care_team_from,
    _care_team_to,
    _organization_from,
    _organization_to,
    _patient_from,
    _patient_to,
    _practitioner_from,
    _practitioner_to,
    _role_from,
    _role_to,
)

_TO_FHIR: dict[type[models.Model], Any] = {
    Organization: _organization_to,
    Patient: _patient_to,
    Practitioner: _practitioner_to,
    PractitionerRole: _role_to,
    CareTeam: _care_team_to,
    Encounter: _encounter_to,
    Condition: _condition_to,
    AllergyIntolerance: _allergy_to,
    MedicationStatement: _statement_to,
    MedicationRequest: _request_to,
    Observation: _observation_to,
    DiagnosticReport: _report_to,
    DocumentReference: _document_to,
    ClinicalNote: _note_to,
}
_FROM_FHIR: dict[str, Any] = {
    "Organization": _organization_from,
    "Patient": _patient_from,
    "Practitioner": _practitioner_from,
    "PractitionerRole": _role_from,
    "CareTeam": _care_team_from,
    "Encounter": _encounter_from,
    "Condition": _condition_from,
    "AllergyIntolerance": _allergy_from,
    "MedicationStatement": _statement_from,
    "MedicationRequest": _request_from,
    "Observation": _observation_from,
    "DiagnosticReport": _report_from,
    "DocumentReference": _document_from,
}


def to_fhir(obj: models.Model) -> dict[str, Any]:
    """One FHIR R4 resource (a JSON-ready dict) for a model instance of the record."""
    try:
        mapper = _TO_FHIR[type(obj)]
    except KeyError:
        raise FhirError(f"No FHIR mapping for {type(obj).__name__}") from None
    resource: dict[str, Any] = mapper(obj)
    return resource


def from_fhir(data: dict[str, Any]) -> models.Model | dict[str, Any]:
    """The unsaved instance for a resource; a dict of field values for CareTeam/Observation.

    Without `id` it is a new row. With the id of a stored row it carries that row's pk,
    version, last update and the columns FHIR does not carry, and an instance is marked as
    stored, so `save()` updates it and bumps its version. An id we do not hold gives a new row
    with that id. References ("Type/<fhir_id>"), codes, medications and prescriptions are
    looked up (one query each); malformed or unknown ones raise FhirError.
    """
    resource_type = data.get("resourceType", "")
    if resource_type == "DocumentReference":
        mapper = _note_from if _is_note(data) else _document_from
    else:
        try:
            mapper = _FROM_FHIR[resource_type]
        except KeyError:
            raise FhirError(f"Unsupported resourceType {resource_type!r}") from None
    result: models.Model | dict[str, Any] = mapper(data)
    if isinstance(result, models.Model) and result.pk is not None:
        result._state.adding = False
    return result


def _is_note(data: dict[str, Any]) -> bool:
    """A stored row's kind wins; a new DocumentReference is a note by its category."""
    by_category = _code((data.get("category") or [{}])[0], SYS_DOCUMENT_CATEGORY) == NOTE_CATEGORY
    fhir_id = _fhir_id(data)
    if fhir_id is None:
        return by_category
    if ClinicalNote.objects.filter(fhir_id=fhir_id).exists():
        stored_note = True
    elif DocumentReference.objects.filter(fhir_id=fhir_id).exists():
        stored_note = False
    else:
        return by_category
    if stored_note != by_category:
        kind = "a clinical note" if stored_note else "a document"
        raise FhirError(f"DocumentReference/{fhir_id} is {kind}: its category cannot change")
    return stored_note
