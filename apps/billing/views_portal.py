"""The patient's invoices in the portal: the list with what is still due, one invoice, its PDF."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.accounts.models import User
from apps.records.access import deny

from .access import get_invoice_for_user, invoices_for_user
from .models import CreditNote, Invoice, Payment
from .services.references import format_reference
from .views import PAGE_SIZE, audit_listing, pdf_response
from .views_invoices import credit_note_pdf_response, open_pdf


def _patient(request: HttpRequest, what: str) -> User:
    user: User = request.user  # type: ignore[assignment]
    if not user.is_patient:
        raise deny(user, request=request, what=what)
    return user


@require_GET
@login_required
def my_invoices(request: HttpRequest) -> HttpResponse:
    user = _patient(request, "my-invoices")
    invoices = invoices_for_user(user).select_related("insurer").order_by("-issued_at", "-pk")
    page = Paginator(invoices, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    audit_listing(
        user,
        {invoice.patient_id for invoice in rows},
        request=request,
        what="my-invoices",
        object_type="billing.invoice",
        count=len(rows),
    )
    context = {"page": page, "invoices": rows, "today": timezone.localdate()}
    return render(request, "billing/my_invoices.html", context)


@require_GET
@login_required
def my_invoice(request: HttpRequest, pk: int) -> HttpResponse:
    user = _patient(request, "my-invoice")
    found, _access = get_invoice_for_user(user, pk, request=request, what="my-invoice")
    invoice = (
        Invoice.objects.select_related("insurer", "coverage")
        .prefetch_related(
            "lines",
            Prefetch("payments", queryset=Payment.objects.order_by("received_on", "pk")),
            Prefetch("credit_notes", queryset=CreditNote.objects.order_by("issued_at")),
        )
        .get(pk=found.pk)
    )
    context = {
        "invoice": invoice,
        "reference": format_reference(invoice.reference),
        "today": timezone.localdate(),
    }
    return render(request, "billing/my_invoice.html", context)


@require_GET
@login_required
def my_invoice_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    user = _patient(request, "my-invoice-pdf")
    invoice, _access = get_invoice_for_user(user, pk, request=request, what="my-invoice-pdf")
    return pdf_response(open_pdf(invoice), f"{invoice.number}.pdf")


@require_GET
@login_required
def my_credit_note_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    _patient(request, "my-credit-note-pdf")
    return credit_note_pdf_response(request, pk, "my-credit-note-pdf")
