"""Money in: payments recorded by hand or imported from a bank file, the unmatched ones to
assign; and the follow-up: the aging report with the overdue invoices, the bookings export."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.records.access import deny

from .access import invoices_for_user
from .forms import AssignForm, ExportForm, ImportForm, PaymentForm
from .models import Invoice, Payment
from .services import BillingError
from .services.payments import (
    do_assign_payment,
    do_record_payment,
    import_payments,
    unmatched_payments,
)
from .services.reports import aging, bookings_csv, overdue_invoices
from .views import PAGE_SIZE, audit_listing, billing_staff, organization_of


def unmatched_for(user: User) -> QuerySet[Payment]:
    """Payments of the user's organisation that no reference matched yet, newest first."""
    return unmatched_payments(user).order_by("-received_on", "-pk")


def _invoice_by_number(user: User, number: str) -> Invoice | None:
    return invoices_for_user(user).filter(number=number.strip()).first()


def payments_context(
    request: HttpRequest,
    user: User,
    *,
    form: PaymentForm | None = None,
    import_form: ImportForm | None = None,
    result: Any = None,
    assign_errors: dict[int, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    page = Paginator(unmatched_for(user), PAGE_SIZE).get_page(request.GET.get("page"))
    unmatched = list(page.object_list)
    for payment in unmatched:
        # What was typed in the payment's "assign" field, and why it was refused.
        value, error = (assign_errors or {}).get(payment.pk, ("", ""))
        payment.assign_value, payment.assign_error = value, error  # type: ignore[attr-defined]
    recent = list(
        Payment.objects.filter(invoice__in=invoices_for_user(user))
        .select_related("invoice__patient")
        .order_by("-recorded_at", "-pk")[:10]
    )
    audit_listing(
        user,
        {payment.invoice.patient_id for payment in recent if payment.invoice is not None},
        request=request,
        what="billing-payments",
        object_type="billing.payment",
        count=len(unmatched) + len(recent),
    )
    return {
        "form": form or PaymentForm(initial={"received_on": timezone.localdate()}),
        "import_form": import_form or ImportForm(),
        "result": result,
        "page": page,
        "unmatched": unmatched,
        "recent": recent,
    }


@require_http_methods(["GET", "POST"])
@login_required
def payments(request: HttpRequest) -> HttpResponse:
    """The payments page; posting it records a payment by hand."""
    user = billing_staff(request, "billing-payments")
    if request.method != "POST":
        return render(request, "billing/payments.html", payments_context(request, user))
    form = PaymentForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        invoice = None
        if data["invoice_number"].strip():
            invoice = _invoice_by_number(user, data["invoice_number"])
            if invoice is None:
                form.add_error("invoice_number", _("No invoice of yours has this number."))
        if not form.errors:
            try:
                payment = do_record_payment(
                    user,
                    amount=data["amount"],
                    received_on=data["received_on"],
                    reference=data["reference"].strip(),
                    invoice_id=invoice.pk if invoice is not None else None,
                    request=request,
                )
            except BillingError as error:
                form.add_error(None, str(error))
            else:
                if payment.invoice_id is None:
                    messages.warning(
                        request,
                        _("Payment recorded, but no invoice has this reference: assign it below."),
                    )
                else:
                    messages.success(
                        request,
                        _("Payment recorded on invoice %(number)s.")
                        % {"number": payment.invoice.number},  # type: ignore[union-attr]
                    )
                return redirect("billing:payments")
    context = payments_context(request, user, form=form)
    return render(request, "billing/payments.html", context, status=400)


@require_POST
@login_required
def import_file(request: HttpRequest) -> HttpResponse:
    """A bank file (camt.054 or CSV): matched by reference, unknown lines left to assign."""
    user = billing_staff(request, "billing-import")
    form = ImportForm(request.POST, request.FILES)
    result = None
    if form.is_valid():
        try:
            upload = form.cleaned_data["file"]
            result = import_payments(user, upload.read(), upload.name, request=request)
        except BillingError as error:
            form.add_error("file", str(error))
    status = 400 if form.errors else 200
    context = payments_context(request, user, import_form=form, result=result)
    return render(request, "billing/payments.html", context, status=status)


@require_POST
@login_required
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    """An unmatched payment put on the invoice the billing staff recognised."""
    user = billing_staff(request, "billing-assign")
    payment = unmatched_for(user).filter(pk=pk).first()
    if payment is None:
        raise deny(
            user,
            request=request,
            what="billing-assign",
            object_type="billing.payment",
            object_id=pk,
        )
    form = AssignForm(request.POST)
    error = _("Give the number of the invoice this payment is for.")
    if form.is_valid():
        invoice = _invoice_by_number(user, form.cleaned_data["invoice_number"])
        if invoice is None:
            error = _("No invoice of yours has this number.")
        else:
            try:
                do_assign_payment(user, payment.pk, invoice.pk, request=request)
            except BillingError as refused:
                error = str(refused)
            else:
                messages.success(
                    request,
                    _("Payment assigned to invoice %(number)s.") % {"number": invoice.number},
                )
                return redirect("billing:payments")
    typed = str(request.POST.get("invoice_number", ""))[:20]
    context = payments_context(request, user, assign_errors={payment.pk: (typed, error)})
    return render(request, "billing/payments.html", context, status=400)


@require_GET
@login_required
def aging_report(request: HttpRequest) -> HttpResponse:
    user = billing_staff(request, "billing-aging")
    today = timezone.localdate()
    report = aging(organization_of(user), today)
    overdue = Paginator(overdue_invoices(organization_of(user), today), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = list(overdue.object_list)
    for invoice in rows:
        invoice.days_overdue = (today - invoice.due_date).days  # type: ignore[attr-defined]
    audit_listing(
        user,
        {invoice.patient_id for invoice in rows},
        request=request,
        what="billing-aging",
        object_type="billing.invoice",
        count=len(rows),
    )
    chart = {
        "labels": [bucket.label for bucket in report.buckets],
        "totals": [float(bucket.total) for bucket in report.buckets],
        "counts": [bucket.count for bucket in report.buckets],
    }
    return render(
        request,
        "billing/aging.html",
        {"report": report, "chart": chart, "page": overdue, "overdue": rows, "today": today},
    )


@require_GET
@login_required
def export(request: HttpRequest) -> HttpResponse:
    """The bookings of a period as CSV for the accounting; without a period, the form."""
    user = billing_staff(request, "billing-export")
    form = ExportForm(request.GET or None)
    if not form.is_valid():
        status = 400 if request.GET else 200
        return render(request, "billing/export.html", {"form": form}, status=status)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    content = bookings_csv(organization_of(user), start, end)
    audit_listing(
        user, (), request=request, what="billing-export", object_type="billing.invoice", count=0
    )
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="bookings-{start}-{end}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
