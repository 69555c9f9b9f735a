"""Admin: appointment types, places and agendas. Appointments are patient data: not here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import CLINICAL_ROLES, Role

from .models import AppointmentType, AvailabilityException, AvailabilityRule, Location, Schedule


class AppointmentTypeForm(forms.ModelForm):  # type: ignore[type-arg]
    professions = forms.MultipleChoiceField(
        label=_("professions"),
        choices=[(role.value, role.label) for role in Role if role in CLINICAL_ROLES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Who may deliver it; none chosen: every profession."),
    )

    class Meta:
        model = AppointmentType
        fields = (
            "code",
            "name",
            "name_en",
            "name_de",
            "minutes",
            "mode",
            "first_visit",
            "professions",
            "patient_bookable",
            "active",
        )

    def clean_professions(self) -> list[str]:
        return list(self.cleaned_data["professions"])


@admin.register(AppointmentType)
class AppointmentTypeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = AppointmentTypeForm
    list_display = ("code", "name", "minutes", "mode", "first_visit", "patient_bookable", "active")
    list_filter = ("mode", "first_visit", "patient_bookable", "active")
    search_fields = ("code", "name", "name_en", "name_de")


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "organization", "active")
    list_filter = ("active", "organization")
    search_fields = ("name", "address")


class RuleInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AvailabilityRule
    extra = 0


class ExceptionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AvailabilityException
    extra = 0


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("clinician", "specialty", "active")
    list_filter = ("active",)
    search_fields = ("clinician__email", "clinician__last_name", "specialty")
    autocomplete_fields = ("clinician",)
    filter_horizontal = ("appointment_types",)
    readonly_fields = ("fhir_id",)
    inlines = (RuleInline, ExceptionInline)

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).select_related("clinician")
