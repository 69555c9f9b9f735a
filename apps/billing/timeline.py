"""Invoices, credit notes and payments in the patient timeline — the patient's own only.

Billing data is not clinical: the care team does not see it in the chart (the billing rule of
`apps.billing.access` gives clinicians charges to review, never invoices), and billing staff
work from the billing workspace, not the timeline. So every other access sees none.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.records.access import PatientAccess
from apps.records.timeline import Source, register

from .models import CreditNote, Invoice, Payment


def _chf(amount: Decimal) -> str:
    return "CHF " + formats.number_format(amount, decimal_pos=2)


def _invoices(access: PatientAccess) -> QuerySet[Invoice]:
    if not access.is_patient_self:
        return Invoice.objects.none()
    return Invoice.objects.filter(patient=access.patient)


def _status(invoice: Invoice) -> str:
    if invoice.status == Invoice.Status.PAID:
        return _("paid")
    if invoice.status == Invoice.Status.CANCELLED:
        return _("cancelled")
    if invoice.due_date < timezone.localdate():
        return _("overdue")
    return _("open")


def _describe_invoice(invoice: Invoice, access: PatientAccess) -> tuple[str, str, str, str]:
    detail = _("%(amount)s to pay by %(due)s · %(status)s") % {
        "amount": _chf(invoice.amount_due),
        "due": formats.date_format(invoice.due_date, "SHORT_DATE_FORMAT"),
        "status": _status(invoice),
    }
    title = _("Invoice %(number)s") % {"number": invoice.number}
    return title, detail, reverse("billing:my_invoice", args=[invoice.pk]), ""


def _payments(access: PatientAccess) -> QuerySet[Payment]:
    if not access.is_patient_self:
        return Payment.objects.none()
    return Payment.objects.filter(invoice__patient=access.patient)


def _describe_payment(payment: Payment, access: PatientAccess) -> tuple[str, str, str, str]:
    invoice = payment.invoice
    detail = _("%(amount)s for invoice %(number)s, received on %(day)s") % {
        "amount": _chf(payment.amount),
        "number": invoice.number if invoice else "",
        "day": formats.date_format(payment.received_on, "SHORT_DATE_FORMAT"),
    }
    url = reverse("billing:my_invoice", args=[payment.invoice_id]) if invoice else ""
    return _("Payment received"), detail, url, ""


def _credit_notes(access: PatientAccess) -> QuerySet[CreditNote]:
    if not access.is_patient_self:
        return CreditNote.objects.none()
    return CreditNote.objects.filter(invoice__patient=access.patient)


def _describe_credit_note(note: CreditNote, access: PatientAccess) -> tuple[str, str, str, str]:
    detail = _("%(amount)s credited on invoice %(number)s: %(reason)s") % {
        "amount": _chf(note.amount),
        "number": note.invoice.number,
        "reason": note.reason,
    }
    title = _("Credit note %(number)s") % {"number": note.number}
    return title, detail, reverse("billing:my_invoice", args=[note.invoice_id]), ""


register(Source("invoice", gettext_lazy("Invoice"), _invoices, "issued_at", _describe_invoice))
# Dated when it was recorded (a date-time, like every timeline entry); the day the money
# arrived is in the text.
register(
    Source(
        "payment",
        gettext_lazy("Payment"),
        _payments,
        "recorded_at",
        _describe_payment,
        related=("invoice",),
    )
)
register(
    Source(
        "credit_note",
        gettext_lazy("Credit note"),
        _credit_notes,
        "issued_at",
        _describe_credit_note,
        related=("invoice",),
    )
)
