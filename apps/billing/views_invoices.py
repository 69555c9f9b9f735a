"""The billing staff's invoices: the filtered list, one invoice with its payments, credit notes
and claims, its PDF, and the actions on it (send to the patient, claim to the insurer, record a
payment, issue a credit note)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.audit.models import Action
from apps.core.crypto import DecryptionError
from apps.records.access import deny

from .access import get_invoice_for_user, invoices_for_user
from .forms import CreditNoteForm, InvoiceFilterForm, InvoicePaymentForm
from .models import Claim, CreditNote, Invoice, Payment
from .services import BillingError
from .services.claims import do_send_claim
from .services.invoices import (
    do_credit_note,
    do_send_to_patient,
    open_credit_note_pdf,
    open_invoice_pdf,
)
from .services.payments import do_record_payment
from .services.references import format_reference
from .views import PAGE_SIZE, audit_listing, billing_staff, pdf_response

logger = logging.getLogger(__name__)


@require_GET
@login_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    user = billing_staff(request, "billing-invoices")
    form = InvoiceFilterForm(request.GET or None)
    invoices = form.filter(
        invoices_for_user(user).select_related("patient", "insurer").order_by("-issued_at", "-pk")
    )
    page = Paginator(invoices, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    audit_listing(
        user,
        {invoice.patient_id for invoice in rows},
        request=request,
        what="billing-invoices",
        object_type="billing.invoice",
        count=len(rows),
    )
    return render(
        request,
        "billing/invoices.html",
        {
            "form": form,
            "page": page,
            "invoices": rows,
            "today": timezone.localdate(),
            "query": form.query_string(),
        },
    )


def _staff_invoice(
    request: HttpRequest, pk: int, what: str, *, action: str | None = Action.READ
) -> Invoice:
    """The invoice for billing staff of its organisation; its patient uses the portal.

    `action=None` skips the "read" row: the service that changes the invoice audits it.
    """
    user = billing_staff(request, what)
    invoice, _access = get_invoice_for_user(user, pk, request=request, what=what, action=action)
    return invoice


def invoice_context(
    invoice: Invoice,
    *,
    payment_form: InvoicePaymentForm | None = None,
    credit_form: CreditNoteForm | None = None,
) -> dict[str, Any]:
    """What the billing staff's invoice page shows, with its action forms."""
    invoice = (
        Invoice.objects.select_related("patient", "insurer", "coverage", "issued_by")
        .prefetch_related(
            "lines",
            Prefetch("payments", queryset=Payment.objects.order_by("received_on", "pk")),
            Prefetch(
                "credit_notes",
                queryset=CreditNote.objects.select_related("issued_by").order_by("issued_at"),
            ),
            Prefetch("claims", queryset=Claim.objects.select_related("insurer")),
        )
        .get(pk=invoice.pk)
    )
    today = timezone.localdate()
    return {
        "invoice": invoice,
        "reference": format_reference(invoice.reference),
        "today": today,
        "overdue": invoice.status == Invoice.Status.ISSUED and invoice.due_date < today,
        "can_credit": invoice.status != Invoice.Status.CANCELLED
        and invoice.amount_due - invoice.credited > 0,
        "creditable": invoice.amount_due - invoice.credited,
        "can_claim": invoice.insurer is not None
        and invoice.insurer.connector != invoice.insurer.Connector.NONE
        and invoice.status != Invoice.Status.CANCELLED,
        "payment_form": payment_form or InvoicePaymentForm(initial={"received_on": today}),
        "credit_form": credit_form
        or CreditNoteForm(initial={"amount": invoice.amount_due - invoice.credited}),
    }


@require_GET
@login_required
def invoice_page(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _staff_invoice(request, pk, "invoice")
    return render(request, "billing/invoice.html", invoice_context(invoice))


def open_pdf(invoice: Invoice) -> bytes:
    """The invoice's sealed PDF, or a 404 when its file is gone (logged for the operators)."""
    try:
        return open_invoice_pdf(invoice)
    except (FileNotFoundError, DecryptionError):
        logger.exception("invoice %s: stored PDF missing or unreadable", invoice.pk)
        raise Http404 from None


def credit_note_pdf_response(request: HttpRequest, pk: int, what: str) -> HttpResponse:
    """A credit note's PDF for whoever may see its invoice (the caller checked the role)."""
    user = request.user
    note = CreditNote.objects.filter(pk=pk).first()
    if note is None:
        raise deny(
            user,  # type: ignore[arg-type]
            request=request,
            what=what,
            object_type="billing.creditnote",
            object_id=pk,
        )
    get_invoice_for_user(user, note.invoice_id, request=request, what=what)  # type: ignore[arg-type]
    try:
        content = open_credit_note_pdf(note)
    except (FileNotFoundError, DecryptionError):
        logger.exception("credit note %s: stored PDF missing or unreadable", note.pk)
        raise Http404 from None
    return pdf_response(content, f"{note.number}.pdf")


@require_GET
@login_required
def invoice_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _staff_invoice(request, pk, "invoice-pdf")
    return pdf_response(open_pdf(invoice), f"{invoice.number}.pdf")


@require_GET
@login_required
def credit_note_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    billing_staff(request, "credit-note-pdf")
    return credit_note_pdf_response(request, pk, "credit-note-pdf")


def _done(request: HttpRequest, invoice: Invoice, text: str) -> HttpResponse:
    messages.success(request, text)
    return redirect("billing:invoice", pk=invoice.pk)


def _refused(request: HttpRequest, invoice: Invoice, error: BillingError) -> HttpResponse:
    context = invoice_context(invoice)
    context["action_error"] = str(error)
    return render(request, "billing/invoice.html", context, status=400)


@require_POST
@login_required
def send_to_patient(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _staff_invoice(request, pk, "invoice-send", action=None)
    try:
        do_send_to_patient(billing_staff(request, "invoice-send"), invoice, request=request)
    except BillingError as error:
        return _refused(request, invoice, error)
    return _done(request, invoice, _("The invoice is in the patient's portal; they were told."))


@require_POST
@login_required
def send_claim(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _staff_invoice(request, pk, "invoice-claim", action=None)
    try:
        do_send_claim(billing_staff(request, "invoice-claim"), invoice, request=request)
    except BillingError as error:
        return _refused(request, invoice, error)
    return _done(request, invoice, _("The claim is on its way to the insurer."))


@require_POST
@login_required
def record_payment(request: HttpRequest, pk: int) -> HttpResponse:
    user = billing_staff(request, "invoice-payment")
    invoice = _staff_invoice(request, pk, "invoice-payment", action=None)
    form = InvoicePaymentForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            do_record_payment(
                user,
                amount=data["amount"],
                received_on=data["received_on"],
                reference=data["reference"],
                invoice_id=invoice.pk,
                request=request,
            )
        except BillingError as error:
            form.add_error(None, str(error))
        else:
            return _done(request, invoice, _("Payment recorded."))
    context = invoice_context(invoice, payment_form=form)
    return render(request, "billing/invoice.html", context, status=400)


@require_POST
@login_required
def credit_note(request: HttpRequest, pk: int) -> HttpResponse:
    user = billing_staff(request, "invoice-credit")
    invoice = _staff_invoice(request, pk, "invoice-credit", action=None)
    form = CreditNoteForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            note = do_credit_note(
                user, invoice, amount=data["amount"], reason=data["reason"], request=request
            )
        except BillingError as error:
            form.add_error(None, str(error))
        else:
            return _done(
                request, invoice, _("Credit note %(number)s issued.") % {"number": note.number}
            )
    context = invoice_context(invoice, credit_form=form)
    return render(request, "billing/invoice.html", context, status=400)
