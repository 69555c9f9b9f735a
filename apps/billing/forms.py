"""Forms of the billing pages: they parse what was typed; the services decide what is allowed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Context, Insurer, Invoice, TariffCode
from .services.payments import MAX_IMPORT_BYTES

CENT = Decimal("0.01")


class DateInput(forms.DateInput):
    input_type = "date"


def _money(label: Any, **kwargs: Any) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        max_digits=12,
        decimal_places=2,
        min_value=CENT,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
        **kwargs,
    )


class GenerateForm(forms.Form):
    patient = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class InvoiceFilterForm(forms.Form):
    """The filters of the billing staff's invoice list (all optional)."""

    OVERDUE = "overdue"
    OPEN = "open"

    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            ("", _("All")),
            (OPEN, _("Open")),
            (OVERDUE, _("Overdue")),
            (Invoice.Status.PAID, _("Paid")),
            (Invoice.Status.CANCELLED, _("Cancelled")),
        ],
    )
    insurer = forms.ModelChoiceField(
        label=_("Insurer"),
        required=False,
        queryset=Insurer.objects.all(),
        empty_label=_("All"),
    )
    q = forms.CharField(label=_("Invoice number"), required=False, max_length=20)

    def filter(self, invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
        if not self.is_valid():
            return invoices
        data = self.cleaned_data
        today = timezone.localdate()
        if data["status"] == self.OPEN:
            invoices = invoices.filter(status=Invoice.Status.ISSUED)
        elif data["status"] == self.OVERDUE:
            invoices = invoices.filter(status=Invoice.Status.ISSUED, due_date__lt=today)
        elif data["status"]:
            invoices = invoices.filter(status=data["status"])
        if data["insurer"] is not None:
            invoices = invoices.filter(insurer=data["insurer"])
        if data["q"].strip():
            invoices = invoices.filter(number__icontains=data["q"].strip())
        return invoices

    def query_string(self) -> str:
        """The filters as a query string, for the pager's links."""
        if not self.is_valid():
            return ""
        parts = []
        for name in ("status", "q"):
            if self.cleaned_data[name]:
                parts.append(f"{name}={self.cleaned_data[name]}")
        if self.cleaned_data["insurer"] is not None:
            parts.append(f"insurer={self.cleaned_data['insurer'].pk}")
        from urllib.parse import quote

        return "&".join(quote(part, safe="=") for part in parts)


class InvoicePaymentForm(forms.Form):
    """A payment received for the invoice shown."""

    amount = _money(_("Amount (CHF)"))
    received_on = forms.DateField(label=_("Received on"), widget=DateInput)
    reference = forms.CharField(label=_("Bank reference"), required=False, max_length=35)

    def clean_received_on(self) -> dt.date:
        received: dt.date = self.cleaned_data["received_on"]
        if received > timezone.localdate():
            raise forms.ValidationError(_("A payment cannot be received in the future."))
        return received


class PaymentForm(InvoicePaymentForm):
    """A payment recorded by hand: matched by its reference, or to the invoice named."""

    reference = forms.CharField(
        label=_("Payment reference"),
        required=False,
        max_length=35,
        help_text=_("The QR or creditor reference printed on the payment slip."),
    )
    invoice_number = forms.CharField(
        label=_("or invoice number"),
        required=False,
        max_length=20,
        help_text=_("When the payer gave no reference."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("reference", "").strip() and not data.get("invoice_number", "").strip():
            raise forms.ValidationError(
                _(
                    "Give the payment reference or the invoice number; a payment with neither "
                    "cannot be matched."
                )
            )
        return data


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("Bank file"),
        help_text=_("camt.054 (XML) or CSV with the columns date;amount;reference;bank_id."),
        widget=forms.ClearableFileInput(attrs={"accept": ".xml,.csv,text/xml,text/csv"}),
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(_("The file is too large for a bank statement."))
        return upload


class AssignForm(forms.Form):
    invoice_number = forms.CharField(label=_("Invoice number"), max_length=20)


class CreditNoteForm(forms.Form):
    amount = _money(_("Amount to credit (CHF)"))
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Printed on the credit note."),
    )


class ExportForm(forms.Form):
    start = forms.DateField(label=_("From"), widget=DateInput)
    end = forms.DateField(label=_("To"), widget=DateInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError(_("The period ends before it starts."))
        if start and end and (end - start).days > 366 * 5:
            raise forms.ValidationError(_("Export at most five years at a time."))
        return data


# ---------------------------------------------------------------------------------------------
# The clinician's review


class QuantityForm(forms.Form):
    charge = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    quantity = forms.DecimalField(
        label=_("Quantity"),
        max_digits=8,
        decimal_places=2,
        min_value=CENT,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )


class ChargeForm(forms.Form):
    """One charge of the act chosen by the page's buttons (cancel)."""

    charge = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


def codes_for(context: str, on: dt.date) -> QuerySet[TariffCode]:
    """The codes valid on `on` that apply to acts of this context (automatic or not)."""
    flag = {
        Context.VIDEO: "for_video",
        Context.IN_PERSON: "for_in_person",
        Context.MONITORING: "for_monitoring",
    }[Context(context)]
    return (
        TariffCode.objects.filter(**{flag: True}, valid_from__lte=on)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=on))
        .select_related("tariff")
        .order_by("tariff__code", "code")
    )


class CodeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.tariff.name} {obj.code} — {obj.label}"


class AddChargeForm(forms.Form):
    code = CodeChoiceField(label=_("Code"), queryset=TariffCode.objects.none())
    quantity = forms.DecimalField(
        label=_("Quantity"),
        max_digits=8,
        decimal_places=2,
        min_value=CENT,
        initial=1,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )

    def __init__(self, *args: Any, context: str, on: dt.date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["code"].queryset = codes_for(context, on)  # type: ignore[attr-defined]
