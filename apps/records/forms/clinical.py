"""Forms of the record's clinical pages (observations, notes, care team, emergency access)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import CLINICAL_ROLES, User

from ..models import ClinicalNote, Concept, Sensitivity
from ..timeline import kinds


class ObservationForm(forms.Form):
    code = forms.ModelChoiceField(
        label=_("Measurement"),
        queryset=Concept.objects.filter(category="vital-signs").order_by("display"),
    )
    value = forms.DecimalField(label=_("Value"), max_digits=12, decimal_places=4)
    effective_at = forms.DateTimeField(
        label=_("Measured at"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Leave empty for now."),
    )


class AnnotationForm(forms.Form):
    text = forms.CharField(
        label=_("Annotation"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )


class NoteForm(forms.Form):
    kind = forms.ChoiceField(label=_("Type"), choices=ClinicalNote.Kind.choices)
    title = forms.CharField(label=_("Title"), max_length=200)
    text = forms.CharField(label=_("Text"), max_length=20000, widget=forms.Textarea)
    sensitivity = forms.ChoiceField(label=_("Category"), choices=Sensitivity.choices)

    def __init__(self, *args: Any, allowed: frozenset[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["sensitivity"]
        field.choices = [(v, label) for v, label in Sensitivity.choices if v in allowed]


class AmendNoteForm(forms.Form):
    text = forms.CharField(label=_("Corrected text"), max_length=20000, widget=forms.Textarea)
    reason = forms.CharField(label=_("Reason for the amendment"), max_length=300)


class BreakGlassForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for the emergency access"),
        min_length=10,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Required. Your access, its reason and its time are shown to the patient."),
    )


class EmergencySearchForm(forms.Form):
    ahv_number = forms.CharField(label=_("AHV number"), max_length=16, required=False)
    family_name = forms.CharField(label=_("Family name"), max_length=100, required=False)
    birth_date = forms.DateField(
        label=_("Birth date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("ahv_number") and not (data.get("family_name") and data.get("birth_date")):
            raise forms.ValidationError(
                _("Give the AHV number, or the family name and the birth date.")
            )
        return data


class AddMemberForm(forms.Form):
    user = forms.ModelChoiceField(label=_("Professional"), queryset=User.objects.none())

    def __init__(self, *args: Any, organization_id: int | None, exclude: list[int], **kwargs: Any):
        super().__init__(*args, **kwargs)
        field: Any = self.fields["user"]
        field.queryset = (
            User.objects.filter(
                is_active=True, role__in=CLINICAL_ROLES, organization=organization_id
            )
            .exclude(pk__in=exclude)
            .order_by("last_name", "first_name")
        )
        field.label_from_instance = lambda u: f"{u.get_full_name()} — {u.role_label}"


class TimelineFilterForm(forms.Form):
    kind = forms.MultipleChoiceField(
        label=_("Show"), required=False, widget=forms.CheckboxSelectMultiple
    )
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["kind"]
        field.choices = kinds()
