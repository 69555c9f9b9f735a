"""Helpers of the billing page tests (test_pages_*.py, test_timeline.py): signed-in clients,
the audited refusals, and invoices made directly in the database (the page tests check what
the pages show and who may see them; the invoice services have their own tests)."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent, Outcome
from apps.billing.models import ChargeItem, Coverage, Invoice, InvoiceLine
from apps.core import crypto
from apps.records.models import Patient
from apps.records.services.documents import new_storage_name, storage_path, write_atomically
from tests.conftest import verified_client


def client_for(user: User) -> Client:
    """A signed-in client (second factor passed) reading the pages in English."""
    client = verified_client(user)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def denials(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED))


def pdf_with_text(text: str) -> bytes:
    """A one-page PDF that says `text` (a stand-in for a rendered invoice)."""
    safe = (
        text.encode("latin-1", "replace").replace(b"\\", b"").replace(b"(", b"").replace(b")", b"")
    )
    stream = b"BT /F1 12 Tf 72 720 Td (" + safe + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def store_pdf(content: bytes) -> tuple[str, str]:
    """Seal a PDF the way invoices are stored; returns its storage name and digest."""
    name = new_storage_name()
    write_atomically(storage_path(name), crypto.seal(content, context=name.encode()))
    return name, hashlib.sha256(content).hexdigest()


_numbers = {"n": 0}


def make_invoice(
    record: Patient,
    charges: list[ChargeItem] | None = None,
    *,
    issued_by: User | None = None,
    pdf: bool = True,
    **fields: Any,
) -> Invoice:
    """An issued invoice of `record` (its lines snapshot `charges`), with a sealed PDF."""
    _numbers["n"] += 1
    n = _numbers["n"]
    today = timezone.localdate()
    coverage = (
        Coverage.objects.filter(patient=record).select_related("insurer").first()
        if "coverage" not in fields
        else fields.pop("coverage")
    )
    charges = charges or []
    net = sum((charge.amount for charge in charges), Decimal("0.00")) or Decimal("50.00")
    fields.setdefault("total", net)
    fields.setdefault("amount_due", net)
    fields.setdefault("patient_share", net)
    fields.setdefault("insurer_share", Decimal("0.00"))
    fields.setdefault("recipient", Invoice.Recipient.PATIENT)
    fields.setdefault("due_date", today + dt.timedelta(days=30))
    name, digest = store_pdf(pdf_with_text(f"Invoice {record.full_name}")) if pdf else ("", "")
    invoice = Invoice.objects.create(
        number=f"{today.year}-{n:06d}",
        year=today.year,
        sequence=n,
        patient=record,
        organization_id=record.organization_id,
        coverage=coverage,
        insurer=coverage.insurer if coverage else None,
        net=net,
        vat=Decimal("0.00"),
        reference=f"{n:027d}",
        issued_by=issued_by,
        pdf_name=name,
        pdf_sha256=digest,
        **fields,
    )
    for charge in charges:
        InvoiceLine.objects.create(
            invoice=invoice,
            charge=charge,
            performed_at=charge.performed_at,
            tariff=charge.code.tariff.code,
            code=charge.code.code,
            label=charge.code.label,
            quantity=charge.quantity,
            unit_points=charge.unit_points,
            point_value=charge.point_value,
            unit_price=charge.unit_price,
            amount=charge.amount,
            vat_rate=charge.vat_rate,
        )
        charge.status = ChargeItem.Status.INVOICED
        charge.invoice = invoice
        charge.save(update_fields=["status", "invoice"])
    return invoice
