"""Helpers of the invoice service tests (numbering, invoices, PDF, payments, credit notes,
reports): reading a rendered PDF back (its text and its QR code), and the audited refusals."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from apps.accounts.models import User
from apps.audit.models import AuditEvent, Outcome


def denials(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED))


def pdf_text(content: bytes) -> str:
    """The text of every page, whitespace collapsed (lines wrap where the layout says)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(content))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def pdf_pages(content: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(content)).pages)


def qr_payloads(content: bytes) -> list[str]:
    """The text of every QR code found in the PDF's images (decoded with zxing-cpp)."""
    import zxingcpp
    from PIL import ImageOps
    from pypdf import PdfReader

    found = []
    seen = set()
    for page in PdfReader(io.BytesIO(content)).pages:
        for image in page.images:
            # Pages may share one resource dictionary: each image object once.
            key = repr(image.indirect_reference) if image.indirect_reference else image.name
            if key in seen:
                continue
            seen.add(key)
            picture = image.image.convert("L")
            for result in zxingcpp.read_barcodes(ImageOps.expand(picture, border=16, fill=255)):
                if result.format == zxingcpp.BarcodeFormat.QRCode:
                    found.append(result.text)
    return found


def spc_fields(payload: str) -> dict[str, Any]:
    """The fields of a Swiss Payments Code payload (implementation guidelines § 4.3)."""
    lines = payload.split("\r\n") if "\r\n" in payload else payload.split("\n")
    return {
        "qr_type": lines[0],
        "version": lines[1],
        "coding": lines[2],
        "iban": lines[3],
        "creditor_name": lines[5],
        "amount": Decimal(lines[18]) if lines[18] else None,
        "currency": lines[19],
        "debtor_name": lines[21],
        "reference_type": lines[27],
        "reference": lines[28],
        "message": lines[29],
        "trailer": lines[30],
    }
