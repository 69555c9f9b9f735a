"""The patient's "download my data" (GDPR/nLPD right of access): a FHIR Bundle and a PDF summary.

Both take an access already granted by `get_patient_for_user(..., action=None)` and write the
one audit row (`export`) themselves.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import F, Prefetch, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone, translation
from weasyprint import HTML

from apps.audit.models import Action
from apps.audit.services import record as audit

from ..access import PatientAccess
from ..fhir import patient_bundle
from ..models import (
    AllergyIntolerance,
    ClinicalNote,
    Condition,
    DocumentReference,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
    Prescription,
)


def _audit_export(
    access: PatientAccess, request: HttpRequest | None, what: str, **detail: Any
) -> None:
    audit(
        Action.EXPORT,
        request=request,
        actor=access.user,
        obj=access.patient,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(what=what, **detail),
    )


def export_bundle(access: PatientAccess, *, request: HttpRequest | None = None) -> bytes:
    """Every resource of the record that `access` may see, as FHIR R4 JSON (a Bundle)."""
    data = patient_bundle(access)
    _audit_export(access, request, "fhir-bundle", resources=len(data["entry"]))
    return json.dumps(data, ensure_ascii=False, indent=1).encode()


def _plain(value: Decimal | None) -> str:
    return f"{value.normalize():f}" if value is not None else "…"


def _with_range(observations: list[Observation]) -> list[Observation]:
    for obs in observations:
        has_range = obs.ref_low is not None or obs.ref_high is not None
        obs.range_text = (  # type: ignore[attr-defined]
            f"{_plain(obs.ref_low)} – {_plain(obs.ref_high)} {obs.unit}".strip()
            if has_range
            else ""
        )
    return observations


def summary_context(access: PatientAccess) -> dict[str, Any]:
    """What the PDF summary shows, restricted to what `access` may see."""
    patient = Patient.objects.select_related("organization").get(pk=access.patient.pk)
    latest = (
        access.visible(Observation.objects.all())
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("code_id")], order_by=F("effective_at").desc())
        )
        .filter(rank=1)
        .select_related("code")
        .order_by("category", "code__display")
    )
    prescriptions = access.visible(Prescription.objects.all())
    if access.is_patient_self:
        prescriptions = prescriptions.exclude(status=Prescription.Status.DRAFT)
    items = MedicationRequest.objects.select_related("medication").order_by("pk")
    return {
        "patient": patient,
        "organization": patient.organization,
        "generated_at": timezone.now(),
        "conditions": access.visible(Condition.objects.select_related("code")).order_by(
            "clinical_status", "-recorded_at"
        ),
        "allergies": access.visible(AllergyIntolerance.objects.select_related("substance")),
        "medications": access.visible(
            MedicationStatement.objects.filter(status="active").select_related("medication")
        ),
        "latest": _with_range(list(latest)),
        "prescriptions": prescriptions.select_related("prescriber")
        .prefetch_related(Prefetch("items", queryset=items))
        .order_by("-recorded_at"),
        "documents": access.visible(DocumentReference.objects.all()).order_by("-recorded_at"),
        "notes": access.visible(ClinicalNote.objects.all()).defer("text").order_by("-signed_at"),
    }


def export_summary_pdf(
    access: PatientAccess, *, request: HttpRequest | None = None, language: str | None = None
) -> bytes:
    """A readable PDF summary of the record, in `language` (default: the active one)."""
    with translation.override(language or translation.get_language()):
        html = render_to_string("records/export_summary.html", summary_context(access))
    pdf: bytes = HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
    _audit_export(access, request, "summary-pdf")
    return pdf
