"""Prescription status, the signed PDF with its QR code, and the public verification."""

from __future__ import annotations

import datetime as dt
import hmac
import re
from typing import Any

import segno
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import (
    Patient,
    Practitioner,
    Prescription,
)

# secrets.token_urlsafe(24) gives 32 characters; anything else cannot be one of ours.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,40}$")


def status_of(prescription: Prescription, today: dt.date | None = None) -> str:
    """What a pharmacist needs to know: valid, expired, cancelled, completed (or draft)."""
    if prescription.status == Prescription.Status.ACTIVE:
        today = today or timezone.localdate()
        if prescription.valid_until is not None and prescription.valid_until < today:
            return "expired"
        return "valid"
    return str(prescription.status)


def status_label(status: str) -> str:
    labels = {
        "valid": _("valid"),
        "expired": _("expired"),
        "cancelled": _("cancelled"),
        "completed": _("completed (renewed or dispensed)"),
        "draft": _("draft"),
    }
    return str(labels.get(status, status))


def verification_url(prescription: Prescription) -> str:
    path = reverse("records:prescription_verify", args=[prescription.verification_token])
    return f"{settings.SITE_URL}{path}"


def qr_data_uri(url: str) -> str:
    return str(segno.make(url, error="m").svg_data_uri(scale=4, dark="#000"))


def pdf_context(prescription: Prescription) -> dict[str, Any]:
    patient = prescription.patient
    practitioner = Practitioner.objects.filter(user_id=prescription.prescriber_id).first()
    url = verification_url(prescription)
    status = status_of(prescription)
    return {
        "rx": prescription,
        "patient": patient,
        "organization": patient.organization,
        "prescriber": prescription.prescriber,
        "practitioner": practitioner,
        "items": list(prescription.items.select_related("medication").order_by("pk")),
        "verify_url": url,
        "qr": qr_data_uri(url),
        "status": status,
        "status_label": status_label(status),
    }


def prescription_pdf(prescription: Prescription) -> bytes:
    """The printable prescription, with a QR code to the public verification page."""
    from weasyprint import HTML, URLFetcher

    html = render_to_string("records/prescription_pdf.html", pdf_context(prescription))
    # Only the inline QR code is ever needed: never fetch files or URLs while rendering.
    fetcher = URLFetcher(allowed_protocols={"data"})
    return bytes(HTML(string=html, url_fetcher=fetcher).write_pdf())


def verify_prescription(token: str) -> Prescription | None:
    """The signed prescription with this verification token, or None."""
    if not TOKEN_RE.match(token or ""):
        return None
    prescription = (
        Prescription.objects.select_related("patient", "prescriber")
        .filter(verification_token=token)
        .exclude(status=Prescription.Status.DRAFT)
        .first()
    )
    # The unique index finds the row; the comparison of the secret itself is constant-time.
    if prescription is None or not hmac.compare_digest(
        prescription.verification_token.encode(), token.encode()
    ):
        return None
    return prescription


def initials(patient: Patient) -> str:
    words = f"{patient.given_names} {patient.family_name}".replace("-", " ").split()
    return " ".join(f"{word[0].upper()}." for word in words if word)


def public_view(prescription: Prescription) -> dict[str, Any]:
    """What the public verification page shows, and nothing more.

    A pharmacist holding the paper needs to know that it is genuine and still valid, who signed
    it (name and registration) and to match it to the person and the packs dispensed: so the
    patient's initials and birth year, and each medication with its quantity. Full name, dose,
    instructions, warnings and reasons stay out: they are on the paper or none of their business.
    """
    practitioner = Practitioner.objects.filter(user_id=prescription.prescriber_id).first()
    status = status_of(prescription)
    return {
        "number": prescription.number,
        "status": status,
        "status_label": status_label(status),
        "signed_at": prescription.signed_at,
        "valid_until": prescription.valid_until,
        "cancelled_at": prescription.cancelled_at,
        "prescriber_name": prescription.prescriber.get_full_name(),
        "registration_system": practitioner.get_registration_system_display()
        if practitioner
        else "",
        "registration_number": practitioner.registration_number if practitioner else "",
        "patient_initials": initials(prescription.patient),
        "birth_year": prescription.patient.birth_date.year,
        "items": [
            {"name": item.medication.name, "quantity": item.quantity}
            for item in prescription.items.select_related("medication").order_by("pk")
        ],
    }
