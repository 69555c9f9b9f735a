"""The patient's invoices in the portal: the list with amount due and status (open, overdue,
paid), one invoice, its PDF and its credit notes' PDFs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import CreditNote, Invoice, Payment
from apps.billing.services.references import format_reference
from apps.records.models import Patient

from .pages_support import client_for, make_invoice, pdf_with_text, store_pdf


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def test_the_patient_sees_their_invoices_with_amount_due_and_status(
    patient: User, record: Patient, record2: Patient
) -> None:
    # given an open, an overdue and a paid invoice, and another patient's
    day = timezone.localdate()
    open_one = make_invoice(record, amount_due=Decimal("12.35"))
    overdue = make_invoice(record, due_date=day - dt.timedelta(days=5))
    paid = make_invoice(record, status=Invoice.Status.PAID)
    theirs = make_invoice(record2, coverage=None)
    # when
    response = client_for(patient).get("/invoices/")
    # then
    assert response.status_code == 200
    assert {i.pk for i in response.context["invoices"]} == {open_one.pk, overdue.pk, paid.pk}
    page = response.content.decode()
    assert theirs.number not in page
    assert "12.35" in page
    assert f"/invoices/{open_one.pk}/pdf/" in page
    for status in ("open", "overdue", "paid"):
        assert f'class="invoice-status status-{status}"' in page
    reads = AuditEvent.objects.filter(actor_id=patient.pk, action=Action.READ)
    assert [event.detail["what"] for event in reads] == ["my-invoices"]


def test_the_invoice_page_explains_what_to_pay_and_lists_payments_and_credits(
    patient: User, record: Patient, billing_user: User
) -> None:
    invoice = make_invoice(record, amount_due=Decimal("20.00"), recipient=Invoice.Recipient.INSURER)
    Payment.objects.create(
        invoice=invoice,
        amount=Decimal("5.00"),
        received_on=timezone.localdate(),
        method=Payment.Method.MANUAL,
        recorded_by=billing_user,
    )
    name, _digest = store_pdf(pdf_with_text("Credit note"))
    note = CreditNote.objects.create(
        number="CN-2099-000007",
        invoice=invoice,
        amount=Decimal("2.00"),
        reason="Geste commercial",
        issued_by=billing_user,
        pdf_name=name,
    )
    client = client_for(patient)
    page = client.get(f"/invoices/{invoice.pk}/").content.decode()
    assert "Your insurer pays its share directly" in page
    assert "20.00" in page
    assert "5.00" in page
    assert "Geste commercial" in page
    assert format_reference(invoice.reference) in page
    response = client.get(f"/invoices/credit-notes/{note.pk}/pdf/")
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_the_patient_downloads_their_pdf(patient: User, record: Patient) -> None:
    import io

    from pypdf import PdfReader

    invoice = make_invoice(record)
    response = client_for(patient).get(f"/invoices/{invoice.pk}/pdf/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert record.family_name in text


def test_a_patient_without_invoices_is_told_so(patient: User, record: Patient) -> None:
    assert "You have no invoice." in client_for(patient).get("/invoices/").content.decode()
