"""Admin of care coordination: pathways (reference templates, edited here) and care plans
(read-only, metadata only).

A pathway is edited with its lines (goals, activities, monitoring thresholds, questionnaires);
each save of an existing pathway raises its version (`services.pathways.do_bump_version`), so
a plan shows which version it was built from. A threshold line is checked by the devices' own
rule validation. Care plans are the patients' records: administrators see who coordinates
which pathway and when, never the titles or descriptions, and opening one is audited against
its patient.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.audit.admin import ReadOnlyAdmin
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..models import (
    CarePlan,
    Pathway,
    PathwayActivity,
    PathwayGoal,
    PathwayQuestionnaire,
    PathwayThreshold,
)
from ..services import CareError
from ..services.pathways import check_threshold, rule_fields


class PathwayGoalInline(admin.StackedInline):
    model = PathwayGoal
    extra = 0
    fields = (
        ("description", "description_en", "description_de"),
        ("measure", "target_low", "target_high", "unit"),
        ("due_after_days", "order"),
    )


class PathwayActivityInline(admin.StackedInline):
    model = PathwayActivity
    extra = 0
    fields = (
        ("title", "title_en", "title_de"),
        "detail",
        ("kind", "role", "task_kind"),
        ("offset_days", "repeat_days", "order"),
    )


class ThresholdForm(forms.ModelForm):
    """A pathway threshold must make a valid devices rule (measurement, limit, N of M…)."""

    class Meta:
        model = PathwayThreshold
        fields = ("code", "kind", "limit", "window", "hysteresis", "n_of", "m_of", "severity")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        needed = ("code", "kind", "limit", "n_of", "m_of", "severity")
        if all(data.get(name) is not None for name in needed):
            code, kind, limit, n_of, m_of, severity = (data[name] for name in needed)
            window, hysteresis = data.get("window"), data.get("hysteresis")
            try:
                check_threshold(
                    rule_fields(code, kind, limit, n_of, m_of, severity, window, hysteresis)
                )
            except CareError as error:
                raise forms.ValidationError(str(error)) from None
        return data


class PathwayThresholdInline(admin.TabularInline):
    model = PathwayThreshold
    form = ThresholdForm
    extra = 0


class PathwayQuestionnaireInline(admin.TabularInline):
    model = PathwayQuestionnaire
    extra = 0


@admin.register(Pathway)
class PathwayAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "follow_up_days", "active", "version", "updated_at")
    list_filter = ("active",)
    search_fields = ("name", "name_en", "name_de", "code")
    readonly_fields = ("version", "updated_at")
    fields = (
        ("code", "active"),
        ("name", "name_en", "name_de"),
        "description",
        "description_en",
        "description_de",
        ("follow_up_days", "medication_reminders"),
        "satisfaction_survey",
        ("version", "updated_at"),
    )
    inlines = (
        PathwayGoalInline,
        PathwayActivityInline,
        PathwayThresholdInline,
        PathwayQuestionnaireInline,
    )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the lines: one new version for the pathway and all its lines saved together.
        if change:
            from ..services.pathways import do_bump_version

            do_bump_version(form.instance)


PLAN_METADATA = (
    "fhir_id",
    "patient",
    "pathway",
    "pathway_version",
    "status",
    "start_date",
    "end_date",
    "coordinator",
    "follow_up_days",
    "next_follow_up",
    "created_by",
    "created_at",
    "updated_at",
)


@admin.register(CarePlan)
class CarePlanAdmin(ReadOnlyAdmin):
    """Read-only and metadata only; opening a plan is audited against its patient."""

    list_display = (
        "pk",
        "patient",
        "pathway",
        "pathway_version",
        "status",
        "start_date",
        "end_date",
        "coordinator",
        "next_follow_up",
    )
    list_display_links = ("pk",)
    list_filter = ("status", "pathway")
    list_select_related = ("patient", "pathway", "coordinator")
    date_hierarchy = "start_date"
    fields = PLAN_METADATA
    readonly_fields = PLAN_METADATA
    # The breadcrumb would show the plan's title (str(plan)): this one shows its number.
    change_form_template = "care/plans/admin_change_form.html"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        patient_id = None
        if object_id.isdigit():
            patient_id = (
                CarePlan.objects.filter(pk=int(object_id))
                .values_list("patient_id", flat=True)
                .first()
            )
        audit(
            Action.READ,
            request=request,
            object_type="care.careplan",
            object_id=object_id,
            patient_id=str(patient_id or ""),
            detail={"what": "admin-care-plan"},
        )
        extra = {**(extra_context or {}), "subtitle": f"#{object_id}"}
        return super().change_view(request, object_id, form_url, extra)
