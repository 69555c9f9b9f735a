"""Administration of the record: reference data, patient identities, care teams, and the
emergency-access report. Clinical content is not browsable here (least privilege)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.admin import ReadOnlyAdmin
from apps.audit.models import Action
from apps.audit.services import record as audit

from .models import (
    BreakGlassAccess,
    CareTeam,
    CareTeamMember,
    Concept,
    DrugInteraction,
    Medication,
    Patient,
    Practitioner,
    PractitionerRole,
)
from .services.care_team import do_add_member


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ("code", "display", "display_fr", "system", "category", "unit")
    list_filter = ("system", "category", "sensitivity")
    search_fields = ("code", "display", "display_fr", "display_de")


@admin.register(Medication)
class MedicationAdmin(admin.ModelAdmin):
    list_display = ("name", "atc_code", "strength", "form")
    search_fields = ("name", "atc_code")


@admin.register(DrugInteraction)
class DrugInteractionAdmin(admin.ModelAdmin):
    list_display = ("atc_a", "atc_b", "severity", "description")
    list_filter = ("severity",)
    search_fields = ("atc_a", "atc_b", "description")


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    """Registration: identity and administrative data only; each opened form is audited."""

    list_display = ("family_name", "given_names", "birth_date", "ahv_number", "organization")
    search_fields = ("family_name", "given_names", "ahv_number", "insurance_card_number")
    list_filter = ("organization", "active")
    autocomplete_fields = ("user",)
    show_full_result_count = False

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        audit(
            Action.READ,
            request=request,
            object_type="records.patient",
            object_id=object_id,
            patient_id=object_id,
            detail={"what": "admin-identity"},
        )
        return super().change_view(request, object_id, *args, **kwargs)


class PractitionerRoleInline(admin.TabularInline):
    model = PractitionerRole
    extra = 0


@admin.register(Practitioner)
class PractitionerAdmin(admin.ModelAdmin):
    list_display = ("user", "registration_system", "registration_number", "qualification")
    search_fields = ("user__email", "user__last_name", "registration_number")
    autocomplete_fields = ("user",)
    inlines = [PractitionerRoleInline]


class CareTeamMemberInline(admin.TabularInline):
    model = CareTeamMember
    extra = 0
    fields = ("user", "role", "is_lead", "started_at", "ended_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CareTeamForm(forms.ModelForm):
    add_member = forms.ModelChoiceField(
        label=_("Add a member"),
        queryset=User.objects.filter(is_active=True, role__in=CLINICAL_ROLES),
        required=False,
        help_text=_("Members get access to the record at once; remove them from the clinic page."),
    )

    class Meta:
        model = CareTeam
        fields = ("patient", "name", "active", "organization")


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin):
    form = CareTeamForm
    list_display = ("name", "patient", "active", "created_at")
    search_fields = ("name", "patient__family_name")
    autocomplete_fields = ("patient",)
    inlines = [CareTeamMemberInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Deactivating a team would need the permissions re-synced: done by the clinic pages.
        return ("patient", "active") if obj else ()

    def save_model(self, request: HttpRequest, obj: CareTeam, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        member = form.cleaned_data.get("add_member")
        if member is not None:
            do_add_member(obj, member, by=request.user, request=request)  # type: ignore[arg-type]


class ActiveFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", _("still open")), ("over", _("ended"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(ended_at__isnull=True, expires_at__gt=now)
        if self.value() == "over":
            return queryset.exclude(ended_at__isnull=True, expires_at__gt=now)
        return queryset


@admin.register(BreakGlassAccess)
class BreakGlassReportAdmin(ReadOnlyAdmin):
    """The emergency-access report: who opened which record, why, and for how long."""

    list_display = ("started_at", "user", "patient", "reason", "expires_at", "ended_at")
    list_filter = (ActiveFilter, "started_at")
    search_fields = ("user__email", "user__last_name", "patient__family_name", "reason")
    date_hierarchy = "started_at"
    list_select_related = ("user", "patient")
