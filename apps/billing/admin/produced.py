"""What billing produced, read-only: invoices, credit notes, payments, claims, charge items
and billing runs. Nothing is added, changed or deleted here, and no PDF is shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.audit.admin import ReadOnlyAdmin

from ..models import (
    BillingRun,
    ChargeItem,
    Claim,
    CreditNote,
    Invoice,
    InvoiceLine,
    Payment,
)
from .common import audit_opened


class _AuditedReadOnlyAdmin(ReadOnlyAdmin):
    """Read-only, and opening a row is audited against its patient (`patient_path`)."""

    patient_path = "patient_id"

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        audit_opened(request, self.model, object_id, self.patient_path)
        return super().change_view(request, object_id, *args, **kwargs)


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InvoiceLineInline(_ReadOnlyInline):
    model = InvoiceLine
    fields = (
        "performed_at",
        "tariff",
        "code",
        "label",
        "quantity",
        "unit_points",
        "point_value",
        "unit_price",
        "amount",
        "vat_rate",
        "covered",
    )
    readonly_fields = fields


class CreditNoteInline(_ReadOnlyInline):
    model = CreditNote
    fields = ("number", "amount", "reason", "issued_at", "issued_by")
    readonly_fields = fields
    show_change_link = True


class PaymentInline(_ReadOnlyInline):
    model = Payment
    fields = ("received_on", "amount", "reference", "method", "recorded_by")
    readonly_fields = fields
    show_change_link = True


class ClaimInline(_ReadOnlyInline):
    model = Claim
    fields = ("insurer", "status", "attempts", "created_at", "submitted_at")
    readonly_fields = fields
    show_change_link = True


INVOICE_FIELDS = (
    "number",
    "fhir_id",
    "patient",
    "organization",
    "insurer",
    "coverage",
    "recipient",
    "status",
    "issued_at",
    "issued_by",
    "due_date",
    "net",
    "vat",
    "total",
    "patient_share",
    "insurer_share",
    "amount_due",
    "paid",
    "credited",
    "reference",
    "sent_to_patient_at",
)


@admin.register(Invoice)
class InvoiceAdmin(_AuditedReadOnlyAdmin):
    """Issued invoices, never changed or deleted here (no PDF either: the billing pages)."""

    list_display = (
        "number",
        "patient",
        "insurer",
        "recipient",
        "status",
        "issued_at",
        "due_date",
        "total",
        "amount_due",
        "paid",
        "credited",
    )
    list_filter = ("status", "recipient", "insurer", "issued_at")
    list_select_related = ("patient", "insurer")
    search_fields = ("number", "reference", "patient__family_name")
    date_hierarchy = "issued_at"
    show_full_result_count = False
    fields = INVOICE_FIELDS
    readonly_fields = INVOICE_FIELDS
    inlines = [InvoiceLineInline, CreditNoteInline, PaymentInline, ClaimInline]


CREDIT_NOTE_FIELDS = ("number", "invoice", "amount", "reason", "issued_at", "issued_by")


@admin.register(CreditNote)
class CreditNoteAdmin(_AuditedReadOnlyAdmin):
    list_display = CREDIT_NOTE_FIELDS
    list_select_related = ("invoice", "issued_by")
    search_fields = ("number", "invoice__number")
    date_hierarchy = "issued_at"
    fields = CREDIT_NOTE_FIELDS
    readonly_fields = CREDIT_NOTE_FIELDS

    patient_path = "invoice__patient_id"


PAYMENT_FIELDS = (
    "received_on",
    "amount",
    "invoice",
    "reference",
    "method",
    "bank_id",
    "recorded_by",
    "recorded_at",
)


class MatchedFilter(admin.SimpleListFilter):
    title = _("matched")
    parameter_name = "matched"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("matched to an invoice")), ("no", _("not matched"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(invoice__isnull=self.value() == "no")
        return queryset


@admin.register(Payment)
class PaymentAdmin(_AuditedReadOnlyAdmin):
    list_display = ("received_on", "amount", "invoice", "reference", "method")
    list_filter = ("method", MatchedFilter, "received_on")
    list_select_related = ("invoice",)
    search_fields = ("reference", "invoice__number", "bank_id")
    date_hierarchy = "received_on"
    fields = PAYMENT_FIELDS
    readonly_fields = PAYMENT_FIELDS

    patient_path = "invoice__patient_id"


CLAIM_FIELDS = (
    "invoice",
    "insurer",
    "status",
    "idempotency_key",
    "attempts",
    "last_error",
    "created_at",
    "created_by",
    "submitted_at",
    "response",
)


@admin.register(Claim)
class ClaimAdmin(_AuditedReadOnlyAdmin):
    list_display = ("invoice", "insurer", "status", "attempts", "created_at", "submitted_at")
    list_filter = ("status", "insurer")
    list_select_related = ("invoice", "insurer")
    search_fields = ("invoice__number", "idempotency_key")
    date_hierarchy = "created_at"
    fields = CLAIM_FIELDS
    readonly_fields = CLAIM_FIELDS

    patient_path = "invoice__patient_id"


CHARGE_FIELDS = (
    "patient",
    "code",
    "context",
    "performed_at",
    "performer",
    "quantity",
    "unit_points",
    "point_value",
    "unit_price",
    "amount",
    "vat_rate",
    "status",
    "explanation",
    "confirmed_by",
    "confirmed_at",
    "invoice",
)


@admin.register(ChargeItem)
class ChargeItemAdmin(_AuditedReadOnlyAdmin):
    """Charges are proposed by capture and reviewed by clinicians on the clinic pages."""

    list_display = ("performed_at", "patient", "code", "quantity", "amount", "status", "invoice")
    list_filter = ("status", "context", "code__tariff")
    list_select_related = ("patient", "code", "invoice")
    search_fields = ("patient__family_name", "code__code")
    date_hierarchy = "performed_at"
    show_full_result_count = False
    fields = CHARGE_FIELDS
    readonly_fields = CHARGE_FIELDS


RUN_FIELDS = (
    "organization",
    "started_by",
    "status",
    "total",
    "done",
    "failed",
    "errors",
    "created_at",
    "finished_at",
)


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "organization", "started_by", "status", "done", "failed", "total")
    list_filter = ("status",)
    list_select_related = ("organization", "started_by")
    date_hierarchy = "created_at"
    fields = RUN_FIELDS
    readonly_fields = RUN_FIELDS
