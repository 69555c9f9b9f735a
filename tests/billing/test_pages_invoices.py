"""The billing staff's invoices: the filtered list, one invoice with everything about it, its
PDF, and the actions (send to the patient, claim, payment, credit note) with their errors shown
on the page and what was typed kept."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import ChargeItem, Claim, CreditNote, Insurer, Invoice, Payment
from apps.billing.services.invoices import do_generate_invoice
from apps.billing.services.references import format_reference
from apps.notifications.models import Notification
from apps.records.models import Patient

from .pages_support import client_for, make_invoice


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def staff(billing_user: User, billing_profile: Any) -> Client:
    return client_for(billing_user)


@pytest.fixture
def issued(
    billing_user: User,
    billing_profile: Any,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
) -> Invoice:
    """A real invoice (rendered PDF) of two charges of the patient insured by Assura."""
    make_charge(record, unit_price="17.20")
    make_charge(record, code="video_more", quantity=3, unit_price="16.05")
    return do_generate_invoice(billing_user, record.pk)


def test_the_list_filters_by_status_insurer_and_number(
    staff: Client,
    billing_user: User,
    record: Patient,
    record2: Patient,
    insurer_garant: Insurer,
) -> None:
    # given an open, an overdue, a paid and a cancelled invoice
    today = timezone.localdate()
    open_one = make_invoice(record)
    overdue = make_invoice(record, due_date=today - dt.timedelta(days=3))
    paid = make_invoice(record2, status=Invoice.Status.PAID, coverage=None)
    cancelled = make_invoice(record2, status=Invoice.Status.CANCELLED, coverage=None)

    def numbers(query: str) -> set[str]:
        response = staff.get(f"/billing/invoices/?{query}")
        assert response.status_code == 200
        return {invoice.number for invoice in response.context["invoices"]}

    # then
    assert numbers("") == {i.number for i in (open_one, overdue, paid, cancelled)}
    assert numbers("status=open") == {open_one.number, overdue.number}
    assert numbers("status=overdue") == {overdue.number}
    assert numbers("status=paid") == {paid.number}
    assert numbers("status=cancelled") == {cancelled.number}
    assert numbers(f"insurer={open_one.insurer_id}") == {open_one.number, overdue.number}
    assert numbers(f"insurer={insurer_garant.pk}") == set()
    assert numbers(f"q={paid.number[-3:]}") == {paid.number}
    page = staff.get("/billing/invoices/").content.decode()
    assert "overdue" in page and "paid" in page and "cancelled" in page
    reads = AuditEvent.objects.filter(actor_id=billing_user.pk, action=Action.READ)
    assert all(event.detail["what"] == "billing-invoices" for event in reads)


def test_the_list_is_paginated_and_keeps_the_filters_in_the_pager(
    staff: Client, record: Patient
) -> None:
    for _n in range(27):
        make_invoice(record, pdf=False)
    first = staff.get("/billing/invoices/?status=open")
    assert len(first.context["invoices"]) == 25
    assert "?status=open&amp;page=2" in first.content.decode()
    second = staff.get("/billing/invoices/?status=open&page=2")
    assert len(second.context["invoices"]) == 2


def test_the_invoice_page_shows_lines_totals_reference_payments_credits_and_claims(
    staff: Client, issued: Invoice, billing_user: User, insurer: Insurer
) -> None:
    # given a partial payment, a credit note and a failing claim
    Payment.objects.create(
        invoice=issued,
        amount=Decimal("1.00"),
        received_on=timezone.localdate(),
        method=Payment.Method.MANUAL,
        recorded_by=billing_user,
    )
    CreditNote.objects.create(
        number="CN-2099-000001",
        invoice=issued,
        amount=Decimal("0.50"),
        reason="Erreur de saisie",
        issued_by=billing_user,
    )
    Claim.objects.create(
        invoice=issued,
        insurer=insurer,
        status=Claim.Status.FAILED,
        attempts=3,
        last_error="HTTP 503 from the insurer",
    )
    # when
    response = staff.get(f"/billing/invoices/{issued.pk}/")
    # then
    page = response.content.decode()
    assert response.status_code == 200
    for text in (
        issued.number,
        format_reference(issued.reference),
        "AA.00.0010",
        "AA.00.0020",
        "Assura Test",
        "80756000012345",
        "Erreur de saisie",
        "CN-2099-000001",
        "HTTP 503 from the insurer",
        "failed",
        f"{issued.total:.2f}",
        f"{issued.patient_share:.2f}",
        "Crediting the full CHF",
    ):
        assert text in page, text


def test_the_pdf_downloads_as_a_private_attachment_with_the_patients_name(
    staff: Client, issued: Invoice, record: Patient
) -> None:
    from pypdf import PdfReader

    response = staff.get(f"/billing/invoices/{issued.pk}/pdf/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{issued.number}.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert record.family_name in text


def test_a_missing_pdf_file_is_a_404(staff: Client, record: Patient) -> None:
    invoice = make_invoice(record, pdf=False)
    assert staff.get(f"/billing/invoices/{invoice.pk}/pdf/").status_code == 404


def test_sending_to_the_patient_notifies_them(
    staff: Client, issued: Invoice, patient: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/billing/invoices/{issued.pk}/send/", follow=True)
    assert "told" in response.content.decode()
    issued.refresh_from_db()
    assert issued.sent_to_patient_at is not None
    assert Notification.objects.filter(user=patient, kind="billing").exists()


def test_sending_to_a_patient_without_portal_account_explains_why(
    staff: Client, billing_user: User, make_patient: Callable[..., Patient]
) -> None:
    offline = make_patient()
    invoice = make_invoice(offline, coverage=None)
    response = staff.post(f"/billing/invoices/{invoice.pk}/send/")
    assert response.status_code == 400
    assert "no portal account" in response.content.decode()


def test_sending_the_claim_queues_it(staff: Client, issued: Invoice) -> None:
    response = staff.post(f"/billing/invoices/{issued.pk}/claim/", follow=True)
    assert "on its way to the insurer" in response.content.decode()
    claim = Claim.objects.get(invoice=issued)
    assert claim.insurer_id == issued.insurer_id


def test_a_claim_sent_twice_is_refused_with_the_reason(staff: Client, issued: Invoice) -> None:
    staff.post(f"/billing/invoices/{issued.pk}/claim/")
    response = staff.post(f"/billing/invoices/{issued.pk}/claim/")
    assert response.status_code == 400
    assert "already on its way" in response.content.decode()
    assert Claim.objects.filter(invoice=issued).count() == 1


def test_recording_the_full_payment_marks_the_invoice_paid(staff: Client, issued: Invoice) -> None:
    response = staff.post(
        f"/billing/invoices/{issued.pk}/payment/",
        {"amount": str(issued.amount_due), "received_on": timezone.localdate().isoformat()},
        follow=True,
    )
    assert "Payment recorded." in response.content.decode()
    issued.refresh_from_db()
    assert issued.status == Invoice.Status.PAID
    assert issued.paid == issued.amount_due


def test_a_payment_in_the_future_is_refused_and_the_amount_kept(
    staff: Client, issued: Invoice
) -> None:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    response = staff.post(
        f"/billing/invoices/{issued.pk}/payment/",
        {"amount": "12.35", "received_on": tomorrow.isoformat()},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "cannot be received in the future" in page
    assert 'value="12.35"' in page
    assert not Payment.objects.exists()


def test_a_partial_credit_note_leaves_the_invoice_open(staff: Client, issued: Invoice) -> None:
    response = staff.post(
        f"/billing/invoices/{issued.pk}/credit/",
        {"amount": "1.00", "reason": "Geste commercial"},
        follow=True,
    )
    note = CreditNote.objects.get(invoice=issued)
    assert f"Credit note {note.number} issued." in response.content.decode()
    issued.refresh_from_db()
    assert issued.status == Invoice.Status.ISSUED
    assert issued.credited == Decimal("1.00")


def test_a_full_credit_note_cancels_the_invoice_and_frees_its_charges(
    staff: Client, issued: Invoice, record: Patient
) -> None:
    staff.post(
        f"/billing/invoices/{issued.pk}/credit/",
        {"amount": str(issued.amount_due), "reason": "Facturé au mauvais assureur"},
    )
    issued.refresh_from_db()
    assert issued.status == Invoice.Status.CANCELLED
    charges = ChargeItem.objects.filter(patient=record)
    assert {charge.status for charge in charges} == {ChargeItem.Status.CONFIRMED}
    # The charges are back among the unbilled ones of the workspace.
    rows = staff.get("/billing/").context["rows"]
    assert [row["patient"].pk for row in rows] == [record.pk]


def test_crediting_more_than_is_due_is_refused_and_the_input_kept(
    staff: Client, issued: Invoice
) -> None:
    response = staff.post(
        f"/billing/invoices/{issued.pk}/credit/",
        {"amount": "9999.00", "reason": "Trop"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "can be credited on this invoice" in page
    assert 'value="9999.00"' in page
    assert ">\nTrop</textarea>" in page
    assert not CreditNote.objects.exists()
