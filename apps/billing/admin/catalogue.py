"""The tariff catalogue, insurers, billing profiles and coverages, each entry checked."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from stdnum import iban

from .. import reference
from ..models import (
    BillingProfile,
    Context,
    Coverage,
    Insurer,
    PointValue,
    Tariff,
    TariffCode,
)
from ..services.references import is_qr_iban
from .common import ValidityFilter, audit_opened, overlaps

CONTEXT_FIELDS = {
    Context.VIDEO: "for_video",
    Context.IN_PERSON: "for_in_person",
    Context.MONITORING: "for_monitoring",
}


# ---------------------------------------------------------------------------------------------
# The tariff catalogue


class ContextFilter(admin.SimpleListFilter):
    title = _("applies to")
    parameter_name = "context"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(Context.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        flag = CONTEXT_FIELDS.get(self.value() or "")  # type: ignore[call-overload]
        return queryset.filter(**{flag: True}) if flag else queryset


class TariffCodeForm(forms.ModelForm):
    class Meta:
        model = TariffCode
        fields = (
            "tariff",
            "code",
            "label",
            "tax_points",
            "price",
            "vat_rate",
            "for_video",
            "for_in_person",
            "for_monitoring",
            "automatic",
            "unit_minutes",
            "min_minutes",
            "max_quantity",
            "incompatible_with",
            "valid_from",
            "valid_until",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        incompatible: Any = self.fields.get("incompatible_with")
        if incompatible is not None and self.instance.pk is not None:
            # A code cannot exclude itself.
            incompatible.queryset = incompatible.queryset.exclude(pk=self.instance.pk)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tariff = data.get("tariff")
        contexts = [context for context, name in CONTEXT_FIELDS.items() if data.get(name)]
        if tariff is not None:
            for name, problem in reference.code_problems(
                tariff.kind,
                tax_points=data.get("tax_points"),
                price=data.get("price"),
                unit_minutes=data.get("unit_minutes"),
                max_quantity=data.get("max_quantity"),
                contexts=contexts,
                vat_rate=data.get("vat_rate"),
            ).items():
                self.add_error(name or None, problem)
        valid_from, valid_until = data.get("valid_from"), data.get("valid_until")
        if problem := reference.period_problem(valid_from, valid_until):
            self.add_error("valid_until", problem)
        elif tariff is not None and data.get("code") and valid_from is not None:
            versions = TariffCode.objects.filter(tariff=tariff, code=data["code"])
            if overlaps(versions, self.instance, valid_from, valid_until):
                self.add_error(
                    "valid_from",
                    _("Another version of this code is valid on some of these days."),
                )
        return data


@admin.register(TariffCode)
class TariffCodeAdmin(admin.ModelAdmin):
    form = TariffCodeForm
    list_display = (
        "code",
        "label",
        "tariff",
        "tax_points",
        "price",
        "unit_minutes",
        "max_quantity",
        "for_video",
        "for_in_person",
        "for_monitoring",
        "automatic",
        "valid_from",
        "valid_until",
    )
    list_filter = ("tariff", ContextFilter, ValidityFilter, "automatic")
    list_select_related = ("tariff",)
    search_fields = ("code", "label")
    filter_horizontal = ("incompatible_with",)
    fieldsets = (
        (None, {"fields": ("tariff", "code", "label")}),
        (_("Value"), {"fields": ("tax_points", "price", "vat_rate")}),
        (
            _("Rules"),
            {
                "fields": (
                    ("for_video", "for_in_person", "for_monitoring"),
                    "automatic",
                    ("unit_minutes", "min_minutes", "max_quantity"),
                    "incompatible_with",
                ),
                "description": _(
                    "Time-based codes count one unit per started period of the given minutes "
                    "(“per 5 minutes”); leave the minutes empty for one unit per act."
                ),
            },
        ),
        (_("Validity"), {"fields": (("valid_from", "valid_until"),)}),
    )


class TariffCodeInline(admin.TabularInline):
    """The tariff's codes, to open one (they are edited on their own page)."""

    model = TariffCode
    fields = ("code", "label", "tax_points", "price", "valid_from", "valid_until")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PointValueForm(forms.ModelForm):
    class Meta:
        model = PointValue
        fields = ("tariff", "canton", "insurer", "value", "valid_from", "valid_until")

    def clean_canton(self) -> str:
        canton = (self.cleaned_data.get("canton") or "").upper()
        if problem := reference.canton_problem(canton):
            raise forms.ValidationError(problem)
        return canton

    def clean_value(self) -> Any:
        value = self.cleaned_data.get("value")
        if value is not None and value <= 0:
            raise forms.ValidationError(_("A point is worth more than zero."))
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # In the tariff's page the tariff is not a field of the form.
        tariff = data.get("tariff") or (self.instance.tariff if self.instance.tariff_id else None)
        if tariff is not None and tariff.kind != Tariff.Kind.POINTS:
            self.add_error(None, _("Only a points tariff has point values."))
        valid_from, valid_until = data.get("valid_from"), data.get("valid_until")
        if problem := reference.period_problem(valid_from, valid_until):
            self.add_error("valid_until", problem)
        elif tariff is not None and data.get("canton") and valid_from is not None:
            values = PointValue.objects.filter(
                tariff=tariff, canton=data["canton"], insurer=data.get("insurer")
            )
            if overlaps(values, self.instance, valid_from, valid_until):
                self.add_error(
                    "valid_from",
                    _("Another value for this canton and insurer is valid on some of these days."),
                )
        return data


class PointValueInline(admin.TabularInline):
    model = PointValue
    form = PointValueForm
    fields = ("canton", "insurer", "value", "valid_from", "valid_until")
    autocomplete_fields = ("insurer",)
    extra = 0


class TariffForm(forms.ModelForm):
    class Meta:
        model = Tariff
        fields = ("code", "name", "kind")

    def clean_kind(self) -> str:
        kind = self.cleaned_data["kind"]
        instance = self.instance
        if instance.pk is not None and kind != instance.kind and instance.codes.exists():
            # Its codes carry tax points or prices according to the kind.
            raise forms.ValidationError(_("The kind of a tariff with codes cannot change."))
        return str(kind)


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin):
    form = TariffForm
    list_display = ("code", "name", "kind")
    list_filter = ("kind",)
    search_fields = ("code", "name")

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return []
        return (
            [TariffCodeInline, PointValueInline]
            if obj.kind == Tariff.Kind.POINTS
            else [TariffCodeInline]
        )


@admin.register(PointValue)
class PointValueAdmin(admin.ModelAdmin):
    form = PointValueForm
    list_display = ("tariff", "canton", "insurer", "value", "valid_from", "valid_until")
    list_filter = ("tariff", "canton", ValidityFilter)
    list_select_related = ("tariff", "insurer")
    search_fields = ("canton", "insurer__name")
    autocomplete_fields = ("insurer",)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "tariff":
            kwargs["queryset"] = Tariff.objects.filter(kind=Tariff.Kind.POINTS)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# ---------------------------------------------------------------------------------------------
# Insurers, billing profiles, coverages


class InsurerForm(forms.ModelForm):
    # Room for a GLN typed in groups ("760 1003 0010 13"), compacted by clean_gln.
    gln = forms.CharField(label=_("GLN"), max_length=20)
    claim_url = forms.URLField(
        label=_("FHIR base URL for claims"), required=False, assume_scheme="https"
    )

    class Meta:
        model = Insurer
        fields = (
            "name",
            "gln",
            "payment_mode",
            "patient_share",
            "covered_codes",
            "connector",
            "claim_url",
            "active",
        )

    def clean_gln(self) -> str:
        gln = "".join(str(self.cleaned_data.get("gln") or "").split())
        if problem := reference.gln_problem(gln):
            raise forms.ValidationError(problem)
        return gln

    def clean_patient_share(self) -> Any:
        share = self.cleaned_data.get("patient_share")
        if share is not None and not 0 <= share <= 100:
            raise forms.ValidationError(_("A share is a percentage between 0 and 100."))
        return share

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("connector") == Insurer.Connector.FHIR and not data.get("claim_url"):
            self.add_error("claim_url", _("Claims over FHIR need the insurer's FHIR base URL."))
        return data


@admin.register(Insurer)
class InsurerAdmin(admin.ModelAdmin):
    form = InsurerForm
    list_display = ("name", "gln", "payment_mode", "patient_share", "connector", "active")
    list_filter = ("payment_mode", "connector", "active")
    search_fields = ("name", "gln")
    filter_horizontal = ("covered_codes",)
    readonly_fields = ("fhir_id",)
    fieldsets = (
        (None, {"fields": ("name", "gln", "active", "fhir_id")}),
        (
            _("Billing"),
            {
                "fields": ("payment_mode", "patient_share", "covered_codes"),
                "description": _("No covered code chosen: the insurer covers every code."),
            },
        ),
        (_("Claims"), {"fields": ("connector", "claim_url")}),
    )


class BillingProfileForm(forms.ModelForm):
    # Room for an IBAN typed in groups of four, compacted by clean_iban.
    iban = forms.CharField(label=_("IBAN or QR-IBAN"), max_length=42)

    class Meta:
        model = BillingProfile
        fields = (
            "organization",
            "creditor_name",
            "street",
            "postal_code",
            "city",
            "country",
            "canton",
            "iban",
            "vat_number",
            "zsr_number",
            "payment_days",
        )

    def clean_iban(self) -> str:
        value = str(self.cleaned_data.get("iban") or "")
        if problem := reference.iban_problem(value):
            raise forms.ValidationError(problem)
        return str(iban.compact(value))

    def clean_canton(self) -> str:
        canton = str(self.cleaned_data.get("canton") or "").upper()
        if problem := reference.canton_problem(canton):
            raise forms.ValidationError(problem)
        return canton

    def clean_country(self) -> str:
        country = str(self.cleaned_data.get("country") or "").upper()
        if len(country) != 2 or not country.isalpha():
            raise forms.ValidationError(_("A two-letter country code (CH)."))
        return country

    def clean_vat_number(self) -> str:
        value = str(self.cleaned_data.get("vat_number") or "").strip()
        if problem := reference.vat_number_problem(value):
            raise forms.ValidationError(problem)
        return value

    def clean_zsr_number(self) -> str:
        value = str(self.cleaned_data.get("zsr_number") or "").strip().upper()
        if problem := reference.zsr_problem(value):
            raise forms.ValidationError(problem)
        return value


@admin.register(BillingProfile)
class BillingProfileAdmin(admin.ModelAdmin):
    form = BillingProfileForm
    list_display = ("creditor_name", "organization", "canton", "iban", "qr_iban", "payment_days")
    search_fields = ("creditor_name", "organization__name")
    list_select_related = ("organization",)

    @admin.display(description=_("QR-IBAN"), boolean=True)
    def qr_iban(self, obj: BillingProfile) -> bool:
        return is_qr_iban(obj.iban)


class CoverageForm(forms.ModelForm):
    class Meta:
        model = Coverage
        fields = ("patient", "insurer", "kind", "member_number", "valid_from", "valid_until")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        valid_from, valid_until = data.get("valid_from"), data.get("valid_until")
        if problem := reference.period_problem(valid_from, valid_until):
            self.add_error("valid_until", problem)
        elif data.get("patient") and data.get("kind") and valid_from is not None:
            others = Coverage.objects.filter(patient=data["patient"], kind=data["kind"])
            if overlaps(others, self.instance, valid_from, valid_until):
                # Invoices take the coverage of the act's date: it must be unambiguous.
                self.add_error(
                    "valid_from",
                    _("The patient has another coverage of this kind on some of these days."),
                )
        return data


@admin.register(Coverage)
class CoverageAdmin(admin.ModelAdmin):
    """Patients' insurance (administrative data); each opened form is audited."""

    form = CoverageForm
    list_display = ("patient", "insurer", "kind", "member_number", "valid_from", "valid_until")
    list_filter = ("kind", "insurer", ValidityFilter)
    list_select_related = ("patient", "insurer")
    search_fields = ("patient__family_name", "patient__given_names", "member_number")
    autocomplete_fields = ("patient", "insurer")
    show_full_result_count = False

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        audit_opened(request, Coverage, object_id, "patient_id")
        return super().change_view(request, object_id, *args, **kwargs)
