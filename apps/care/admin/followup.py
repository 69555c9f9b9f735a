"""Admin of care coordination: follow-up. Questionnaires are edited here (their questions
checked before saving); patients' reminder preferences can be corrected; the questionnaires
sent and the dose reminders are listed read-only, metadata only (no answers, no medicine), and
opening one is audited against its patient."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.audit.admin import ReadOnlyAdmin
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..models import CarePreferences, DoseReminder, Questionnaire, QuestionnaireRequest
from ..services.followup_items import ItemsError, check_items
from ..services.followup_time import check_dose_times, zone_or_none


def audit_opened(request: HttpRequest, model: type[Any], object_id: str) -> None:
    """Record that an administrator opened a page about a patient's follow-up."""
    patient_id = None
    if object_id.isdigit():
        patient_id = (
            model.objects.filter(pk=int(object_id)).values_list("patient_id", flat=True).first()
        )
    audit(
        Action.READ,
        request=request,
        object_type=model._meta.label_lower,
        object_id=object_id,
        patient_id=str(patient_id or ""),
        detail={"what": "admin-care-followup"},
    )


class QuestionnaireForm(forms.ModelForm):
    class Meta:
        model = Questionnaire
        fields = (
            "code",
            "title",
            "title_en",
            "title_de",
            "purpose",
            "status",
            "answer_within_days",
            "items",
        )
        help_texts = {
            "items": _(
                'A JSON list of questions: {"link_id", "text", "text_en", "text_de", "type" '
                '(choice, integer, decimal, boolean, string, text), "required", "options" '
                '[{"code", "display", "display_en", "display_de"}], "min", "max", '
                '"max_length", "alert": {"op": ">=", "value": 7}}.'
            )
        }

    def clean_items(self) -> Any:
        items = self.cleaned_data.get("items")
        try:
            return check_items(items)
        except ItemsError as exc:
            raise forms.ValidationError(exc.problems) from exc


@admin.register(Questionnaire)
class QuestionnaireAdmin(admin.ModelAdmin):
    form = QuestionnaireForm
    list_display = ("code", "title", "purpose", "status", "version", "question_count")
    list_filter = ("purpose", "status")
    search_fields = ("code", "title", "title_en", "title_de")
    readonly_fields = ("version", "updated_at")

    @admin.display(description=_("questions"))
    def question_count(self, obj: Questionnaire) -> int:
        return len(obj.items) if isinstance(obj.items, list) else 0


class CarePreferencesForm(forms.ModelForm):
    class Meta:
        model = CarePreferences
        fields = (
            "patient",
            "time_zone",
            "medication_reminders",
            "dose_times",
            "quiet_start",
            "quiet_end",
        )

    def clean_time_zone(self) -> str:
        value = self.cleaned_data["time_zone"]
        if zone_or_none(value) is None:
            raise forms.ValidationError(_("Unknown time zone (e.g. Europe/Zurich)."))
        return str(value)

    def clean_dose_times(self) -> Any:
        value = self.cleaned_data.get("dose_times") or []
        if not value:
            return []
        try:
            return check_dose_times(list(value) if isinstance(value, list) else value)
        except (ValueError, TypeError):
            raise forms.ValidationError(
                _('Four times of the day in order, e.g. ["08:00", "12:00", "18:00", "22:00"].')
            ) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            self.add_error("quiet_end", _("Give both the start and the end of the quiet hours."))
        return data


@admin.register(CarePreferences)
class CarePreferencesAdmin(admin.ModelAdmin):
    form = CarePreferencesForm
    list_display = ("patient_id", "time_zone", "medication_reminders", "updated_at")
    list_filter = ("medication_reminders",)
    raw_id_fields = ("patient",)

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        audit_opened(request, CarePreferences, object_id)
        return super().change_view(request, object_id, *args, **kwargs)

    def save_model(
        self, request: HttpRequest, obj: CarePreferences, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        audit(
            Action.UPDATE if change else Action.CREATE,
            request=request,
            obj=obj,
            patient_id=str(obj.patient_id),
            detail={"what": "reminder preferences", "via": "admin"},
        )
        # Doses not reminded yet follow the corrected times.
        DoseReminder.objects.filter(
            patient_id=obj.patient_id, status=DoseReminder.Status.PLANNED
        ).delete()


class _AuditedReadOnly(ReadOnlyAdmin):
    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        audit_opened(request, self.model, object_id)
        return super().change_view(request, object_id, *args, **kwargs)


QUESTIONNAIRE_REQUEST_FIELDS = (
    "key",
    "patient_id",
    "questionnaire",
    "plan_id",
    "encounter_id",
    "due_at",
    "expires_at",
    "status",
    "sent_at",
)


@admin.register(QuestionnaireRequest)
class QuestionnaireRequestAdmin(_AuditedReadOnly):
    list_display = ("key", "patient_id", "questionnaire", "due_at", "status")
    list_filter = ("status", "questionnaire")
    list_select_related = ("questionnaire",)
    search_fields = ("key",)
    fields = QUESTIONNAIRE_REQUEST_FIELDS
    readonly_fields = QUESTIONNAIRE_REQUEST_FIELDS


DOSE_FIELDS = (
    "patient_id",
    "line_id",
    "scheduled_for",
    "local_time",
    "send_at",
    "status",
    "sent_at",
    "answered_at",
)


@admin.register(DoseReminder)
class DoseReminderAdmin(_AuditedReadOnly):
    list_display = ("patient_id", "line_id", "scheduled_for", "local_time", "status")
    list_filter = ("status",)
    date_hierarchy = "scheduled_for"
    fields = DOSE_FIELDS
    readonly_fields = DOSE_FIELDS
