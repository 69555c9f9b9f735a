"""Follow-up and accounting: overdue invoices, the aging report and the bookings export.

The callers (billing pages) check that the user is billing staff of `organization`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Organization

from ..models import ZERO, CreditNote, Invoice, Payment
from ..money import to_cents

# (key, label, first day overdue, last day overdue or None)
BUCKETS = (
    ("current", _("not due yet"), None, 0),
    ("1-30", _("1–30 days overdue"), 1, 30),
    ("31-60", _("31–60 days overdue"), 31, 60),
    ("61-90", _("61–90 days overdue"), 61, 90),
    ("90+", _("more than 90 days overdue"), 91, None),
)

# The Swiss SME chart of accounts (Käfer / PME), the accounts a small practice books to.
ACCOUNTS = {
    "bank": ("1020", _("bank")),
    "receivable": ("1100", _("receivables from services")),
    "unassigned": ("2030", _("payments received, not yet assigned")),
    "vat": ("2200", _("VAT due")),
    "revenue": ("3400", _("revenue from services")),
}
CSV_HEADER = (
    "date",
    "type",
    "number",
    "invoice",
    "patient",
    "account",
    "account_name",
    "debit",
    "credit",
)


def open_invoices(organization: Organization) -> QuerySet[Invoice]:
    """Issued invoices with something still to pay (paid and cancelled ones are closed)."""
    return (
        Invoice.objects.filter(organization=organization, status=Invoice.Status.ISSUED)
        .annotate(open_balance=F("amount_due") - F("paid") - F("credited"))
        .filter(open_balance__gt=0)
    )


def overdue_invoices(organization: Organization, on: dt.date) -> QuerySet[Invoice]:
    """Open invoices whose due date is before `on`, the most overdue first."""
    return (
        open_invoices(organization)
        .filter(due_date__lt=on)
        .select_related("patient", "insurer")
        .order_by("due_date", "pk")
    )


@dataclass(frozen=True)
class AgingRow:
    invoice: Invoice
    balance: Decimal
    days_overdue: int
    bucket: str


@dataclass
class AgingBucket:
    key: str
    label: str
    count: int = 0
    total: Decimal = ZERO


@dataclass
class AgingReport:
    """Open balances on a date, by how long they are overdue."""

    on: dt.date
    rows: list[AgingRow] = field(default_factory=list)
    buckets: list[AgingBucket] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((bucket.total for bucket in self.buckets), ZERO)

    @property
    def count(self) -> int:
        return len(self.rows)

    def bucket(self, key: str) -> AgingBucket:
        return next(bucket for bucket in self.buckets if bucket.key == key)


def bucket_for(days_overdue: int) -> str:
    for key, _label, first, last in BUCKETS:
        if (first is None or days_overdue >= first) and (last is None or days_overdue <= last):
            return key
    return BUCKETS[-1][0]


def aging(organization: Organization, on: dt.date) -> AgingReport:
    """Every open invoice on `on` with its balance and bucket, and the totals per bucket."""
    report = AgingReport(
        on=on, buckets=[AgingBucket(key=key, label=str(label)) for key, label, *_ in BUCKETS]
    )
    by_key = {bucket.key: bucket for bucket in report.buckets}
    invoices = open_invoices(organization).select_related("patient").order_by("due_date", "pk")
    for invoice in invoices:
        days = max((on - invoice.due_date).days, 0)
        key = bucket_for(days)
        balance = invoice.balance
        report.rows.append(AgingRow(invoice, balance, days, key))
        by_key[key].count += 1
        by_key[key].total += balance
    return report


# ---------------------------------------------------------------------------------------------
# Bookings


def _amount(value: Decimal) -> str:
    return f"{value:.2f}" if value else ""


def _vat_part(amount: Decimal, invoice: Invoice) -> Decimal:
    """The VAT inside a credited amount, in the invoice's own VAT proportion."""
    if not invoice.vat or not invoice.total:
        return ZERO
    return to_cents(amount * invoice.vat / invoice.total)


Booking = tuple[str, str, str, object, str, Decimal, Decimal]


def _invoice_bookings(invoice: Invoice) -> list[Booking]:
    number, patient = invoice.number, invoice.patient_id
    rows: list[Booking] = [
        ("invoice", number, number, patient, "receivable", invoice.total, ZERO),
        ("invoice", number, number, patient, "revenue", ZERO, invoice.total - invoice.vat),
    ]
    if invoice.vat:
        rows.append(("invoice", number, number, patient, "vat", ZERO, invoice.vat))
    return rows


def _credit_note_bookings(credit_note: CreditNote) -> list[Booking]:
    invoice = credit_note.invoice
    number, patient = credit_note.number, invoice.patient_id
    vat = _vat_part(credit_note.amount, invoice)
    rows: list[Booking] = [
        ("credit_note", number, invoice.number, patient, "revenue", credit_note.amount - vat, ZERO)
    ]
    if vat:
        rows.append(("credit_note", number, invoice.number, patient, "vat", vat, ZERO))
    rows.append(
        ("credit_note", number, invoice.number, patient, "receivable", ZERO, credit_note.amount)
    )
    return rows


def payment_number(payment: Payment) -> str:
    """Payments have no number of their own: "P-" and the row id, fixed width to sort."""
    return f"P-{payment.pk:08d}"


def _payment_bookings(payment: Payment) -> list[Booking]:
    number = payment_number(payment)
    invoice = payment.invoice
    invoice_number = invoice.number if invoice is not None else ""
    patient = invoice.patient_id if invoice is not None else ""
    # A payment not assigned yet waits on a liability account until it is.
    other = "receivable" if invoice is not None else "unassigned"
    return [
        ("payment", number, invoice_number, patient, "bank", payment.amount, ZERO),
        ("payment", number, invoice_number, patient, other, ZERO, payment.amount),
    ]


def bookings_csv(organization: Organization, start: dt.date, end: dt.date) -> str:
    """The double-entry bookings of invoices, credit notes and payments from `start` to `end`.

    One row per account movement, `;`-separated, decimal point, amounts with two decimals; each
    document's debits equal its credits. Revenue is booked at total − VAT, so the 5-centime
    rounding of the total goes to revenue. Patients appear by record number only.
    """
    documents: list[tuple[dt.date, int, str, list[Booking]]] = []
    for invoice in Invoice.objects.filter(
        organization=organization, issued_at__date__gte=start, issued_at__date__lte=end
    ):
        day = timezone.localdate(invoice.issued_at)
        documents.append((day, 0, invoice.number, _invoice_bookings(invoice)))
    for credit_note in CreditNote.objects.filter(
        invoice__organization=organization, issued_at__date__gte=start, issued_at__date__lte=end
    ).select_related("invoice"):
        day = timezone.localdate(credit_note.issued_at)
        documents.append((day, 1, credit_note.number, _credit_note_bookings(credit_note)))
    for payment in Payment.objects.filter(
        # An unassigned payment belongs to the organisation of the staff who recorded it.
        Q(invoice__organization=organization)
        | Q(invoice__isnull=True, recorded_by__organization=organization),
        received_on__gte=start,
        received_on__lte=end,
    ).select_related("invoice"):
        documents.append(
            (payment.received_on, 2, payment_number(payment), _payment_bookings(payment))
        )
    documents.sort(key=lambda document: document[:3])

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for day, _order, _number, bookings in documents:
        for kind, number, invoice_number, patient, account, debit, credit in bookings:
            code, name = ACCOUNTS[account]
            writer.writerow(
                [
                    day.isoformat(),
                    kind,
                    number,
                    invoice_number,
                    patient,
                    code,
                    str(name),
                    _amount(debit),
                    _amount(credit),
                ]
            )
    return buffer.getvalue()
