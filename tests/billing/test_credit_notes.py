"""Credit notes: partial or full, numbered in their own series, never editing the invoice; a
full credit cancels the invoice and frees its charges to be invoiced again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.http import Http404
from django.utils import timezone, translation

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import ChargeItem, CreditNote, Invoice
from apps.billing.services import BillingError
from apps.billing.services.invoices import (
    do_credit_note,
    do_generate_invoice,
    open_credit_note_pdf,
    open_invoice_pdf,
)
from apps.billing.services.payments import do_record_payment
from apps.records.models import Patient
from tests.billing.invoices_support import denials, pdf_text

pytestmark = pytest.mark.usefixtures("billing_profile")

FROZEN_FIELDS = (
    "number",
    "net",
    "vat",
    "total",
    "patient_share",
    "insurer_share",
    "amount_due",
    "reference",
    "due_date",
    "pdf_sha256",
)


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    with translation.override("en"):
        yield


@pytest.fixture
def charges(record2: Patient, make_charge: Callable[..., ChargeItem]) -> list[ChargeItem]:
    return [
        make_charge(record2, "video_base", 1, "30.00"),
        make_charge(record2, "office", 1, "20.00"),
    ]


@pytest.fixture
def invoice(billing_user: User, record2: Patient, charges: list[ChargeItem]) -> Invoice:
    """CHF 50.00 due by the patient (no insurance)."""
    return do_generate_invoice(billing_user, record2.pk)


def frozen(invoice: Invoice) -> dict[str, Any]:
    invoice.refresh_from_db()
    return {
        **{name: getattr(invoice, name) for name in FROZEN_FIELDS},
        "lines": list(invoice.lines.values_list("code", "quantity", "amount", "label")),
    }


def test_a_partial_credit_note_reduces_what_is_due(billing_user: User, invoice: Invoice) -> None:
    before = frozen(invoice)

    note = do_credit_note(billing_user, invoice, amount="10.00", reason="Goodwill")

    assert note.number == f"CN-{timezone.localdate().year}-000001"
    assert note.amount == Decimal("10.00")
    assert note.issued_by == billing_user
    invoice.refresh_from_db()
    assert invoice.credited == Decimal("10.00")
    assert invoice.balance == Decimal("40.00")
    assert invoice.status == Invoice.Status.ISSUED
    assert frozen(invoice) == before
    event = AuditEvent.objects.get(object_type="billing.creditnote", action=Action.CREATE)
    assert event.detail["invoice"] == invoice.number
    assert event.detail["cancels_invoice"] is False


def test_the_credit_note_pdf(billing_user: User, invoice: Invoice, record2: Patient) -> None:
    note = do_credit_note(billing_user, invoice, amount="10", reason="Duplicate code")

    text = pdf_text(open_credit_note_pdf(note))

    for expected in (note.number, invoice.number, "Duplicate code", "10.00", "40.00"):
        assert expected in text
    assert record2.full_name in text


def test_credit_notes_are_numbered_without_gaps(billing_user: User, invoice: Invoice) -> None:
    numbers = [
        do_credit_note(billing_user, invoice, amount="5", reason=f"#{n}").number for n in range(3)
    ]

    year = timezone.localdate().year
    assert numbers == [f"CN-{year}-00000{n}" for n in (1, 2, 3)]


def test_more_than_what_is_left_cannot_be_credited(billing_user: User, invoice: Invoice) -> None:
    do_credit_note(billing_user, invoice, amount="45", reason="First")

    with pytest.raises(BillingError, match="5.00"):
        do_credit_note(billing_user, invoice, amount="5.05", reason="Too much")

    assert CreditNote.objects.count() == 1


@pytest.mark.parametrize(("amount", "reason"), [("0", "x"), ("-1", "x"), ("ten", "x"), ("5", " ")])
def test_impossible_credit_notes_are_refused(
    billing_user: User, invoice: Invoice, amount: str, reason: str
) -> None:
    with pytest.raises(BillingError):
        do_credit_note(billing_user, invoice, amount=amount, reason=reason)

    assert not CreditNote.objects.exists()


def test_a_full_credit_cancels_the_invoice_and_frees_its_charges(
    billing_user: User, invoice: Invoice, record2: Patient, charges: list[ChargeItem]
) -> None:
    before = frozen(invoice)
    pdf_before = open_invoice_pdf(invoice)

    do_credit_note(billing_user, invoice, amount="50.00", reason="Wrong patient data")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.CANCELLED
    assert invoice.credited == invoice.amount_due
    assert frozen(invoice) == before
    assert open_invoice_pdf(invoice) == pdf_before
    for charge in charges:
        charge.refresh_from_db()
        assert charge.status == ChargeItem.Status.CONFIRMED
        assert charge.invoice_id is None
    assert AuditEvent.objects.get(object_type="billing.creditnote").detail["cancels_invoice"]

    # The charges are invoiced again, correctly, on a new invoice with a new number.
    again = do_generate_invoice(billing_user, record2.pk)

    assert again.pk != invoice.pk
    assert again.sequence == invoice.sequence + 1
    assert again.total == Decimal("50.00")
    assert set(again.charges.all()) == set(charges)
    assert invoice.lines.count() == 2


def test_a_cancelled_invoice_cannot_be_credited_again(billing_user: User, invoice: Invoice) -> None:
    do_credit_note(billing_user, invoice, amount="50", reason="Cancel")

    with pytest.raises(BillingError, match="cancelled"):
        do_credit_note(billing_user, invoice, amount="1", reason="Again")


def test_a_credit_after_a_partial_payment_settles_the_invoice(
    billing_user: User, invoice: Invoice
) -> None:
    do_record_payment(billing_user, amount="40", received_on=dt.date(2026, 3, 1), invoice=invoice)

    do_credit_note(billing_user, invoice, amount="10", reason="Discount agreed")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert invoice.balance == Decimal("0.00")


def test_a_failing_credit_note_pdf_leaves_nothing(
    billing_user: User, invoice: Invoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> bytes:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr("apps.billing.services.pdf.render_credit_note_pdf", broken)

    with pytest.raises(RuntimeError):
        do_credit_note(billing_user, invoice, amount="50", reason="Cancel")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.ISSUED
    assert invoice.credited == Decimal("0.00")
    assert not CreditNote.objects.exists()
    assert ChargeItem.objects.filter(invoice=invoice).count() == 2


@pytest.mark.parametrize("who", ["clinician", "patient2", "outsider"])
def test_only_billing_staff_issue_credit_notes(
    who: str, invoice: Invoice, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(who)

    with pytest.raises(Http404):
        do_credit_note(user, invoice, amount="10", reason="Nope")

    assert len(denials(user)) == 1
    assert not CreditNote.objects.exists()
