"""Validation against R4 (fhir.resources' R4B models) and Bundles, a patient's whole record."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Prefetch
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from apps.accounts.models import Organization

from ..access import PatientAccess
from ..models import (
    AllergyIntolerance,
    CareTeam,
    CareTeamMember,
    ClinicalNote,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    MedicationRequest,
    MedicationStatement,
    Observation,
    ObservationNote,
    Patient,
    Practitioner,
    PractitionerRole,
    Prescription,
)
from .clinical import load_encounter_extras
from .convert import to_fhir
from .helpers import FhirError, _reference_id


def validate(resource: dict[str, Any]) -> None:
    """Raise FhirError naming the resource and the faulty elements unless it is valid R4."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str) or not resource_type:
        raise FhirError("Not a FHIR resource: no resourceType")
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        raise FhirError(f"Unknown resourceType {resource_type!r}") from None
    try:
        model.model_validate(resource)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        label = f"{resource_type}/{resource.get('id', '?')}"
        raise FhirError(f"{label} is not valid FHIR R4: {problems}") from error


def bundle(
    resources: list[dict[str, Any]], type: str = "collection", *, base: str | None = None
) -> dict[str, Any]:
    """A Bundle of `resources`; fullUrls are absolute under the FHIR base so references resolve."""
    base = (base or settings.SITE_URL + "/fhir").rstrip("/")
    now = timezone.now().isoformat()
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now},
        "type": type,
        "timestamp": now,
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }


_BY = "recorded_by__practitioner"


def _referenced(value: Any, resource_type: str, found: set[str]) -> set[str]:
    """The ids of every `resource_type` referenced anywhere inside `value`."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                if (fhir_id := _reference_id(item, resource_type)) is not None:
                    found.add(fhir_id)
            else:
                _referenced(item, resource_type, found)
    elif isinstance(value, list):
        for item in value:
            _referenced(item, resource_type, found)
    return found


def _of(patient: Patient, rows: Iterable[Any]) -> Iterator[Any]:
    """The rows with their patient set to the one already loaded (each resource names it)."""
    for row in rows:
        row.patient = patient
        yield row


def patient_bundle(access: PatientAccess, *, base: str | None = None) -> dict[str, Any]:
    """Everything of one patient that `access` may see, as a collection Bundle.

    Clinical items go through `access.visible` (sensitive categories stay hidden from roles
    without them; administrative access gets the identity only). The practitioners they name
    come along with their roles and organisations. A fixed number of queries.
    """
    patient = Patient.objects.select_related("organization").get(pk=access.patient.pk)
    organizations = {patient.organization_id: patient.organization} if patient.organization else {}
    clinical: list[dict[str, Any]] = []
    practitioners: list[Practitioner] = []
    if access.clinical:
        members = CareTeamMember.objects.select_related("user__practitioner").order_by("pk")
        teams = (
            CareTeam.objects.filter(patient=patient)
            .select_related("organization")
            .prefetch_related(Prefetch("members", queryset=members))
        )
        clinical.extend(to_fhir(team) for team in _of(patient, teams.order_by("pk")))
        for queryset in _clinical_querysets(access):
            items = list(_of(patient, access.visible(queryset).order_by("pk")))
            if queryset.model is Encounter:
                load_encounter_extras(items)  # what other apps add (a video call's people)
            clinical.extend(to_fhir(item) for item in items)
        role_rows = PractitionerRole.objects.select_related("organization").order_by("pk")
        practitioners = list(
            Practitioner.objects.filter(fhir_id__in=_referenced(clinical, "Practitioner", set()))
            .select_related("user")
            .prefetch_related(Prefetch("roles", queryset=role_rows))
            .order_by("pk")
        )
    roles = [role for p in practitioners for role in p.roles.all()]
    organizations.update((role.organization_id, role.organization) for role in roles)
    known = {str(org.fhir_id) for org in organizations.values()}
    wanted = _referenced(clinical, "Organization", set()) - known
    organizations.update((o.pk, o) for o in Organization.objects.filter(fhir_id__in=wanted))
    resources = [
        to_fhir(patient),
        *(to_fhir(org) for _pk, org in sorted(organizations.items())),
        *(to_fhir(practitioner) for practitioner in practitioners),
        *(to_fhir(role) for role in roles),
        *clinical,
    ]
    return bundle(resources, base=base)


def _clinical_querysets(access: PatientAccess) -> list[models.QuerySet[Any]]:
    requests = MedicationRequest.objects.select_related(
        "medication", "prescription__prescriber__practitioner", "prescription__encounter", _BY
    )
    if access.is_patient_self:  # drafts are not part of the record until signed
        requests = requests.exclude(prescription__status=Prescription.Status.DRAFT)
    notes = ObservationNote.objects.select_related("author__practitioner")
    results = access.visible(Observation.objects.only("pk", "fhir_id", "report_id"))
    return [
        Encounter.objects.select_related(_BY, "practitioner__practitioner"),
        Condition.objects.select_related("code", "encounter", _BY),
        AllergyIntolerance.objects.select_related("substance", _BY),
        MedicationStatement.objects.select_related("medication", "prescription", _BY),
        requests,
        Observation.objects.select_related("code", "encounter", "report", _BY).prefetch_related(
            Prefetch("notes", queryset=notes)
        ),
        DiagnosticReport.objects.select_related(
            "code", "encounter", "document", _BY
        ).prefetch_related(Prefetch("results", queryset=results)),
        DocumentReference.objects.select_related("encounter", _BY),
        # Only the amended note's id is named: its text is not read (nor decrypted).
        ClinicalNote.objects.select_related("encounter", "amends", _BY).defer("amends__text"),
    ]
