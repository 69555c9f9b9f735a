"""Forms of the e-prescription pages: the lines, the signing options, cancel and renew."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import Medication, Route
from ..services.prescriptions import MAX_ITEMS


class MedicationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        details = " ".join(part for part in (obj.strength, obj.form) if part)
        label = f"{obj.name} {details}".strip() if details and details not in obj.name else obj.name
        return f"{label} ({obj.atc_code})"


class ItemForm(forms.Form):
    """One line of the prescription; an untouched extra line is simply ignored."""

    medication = MedicationChoiceField(
        label=_("Medication"), queryset=Medication.objects.order_by("name")
    )
    dose = forms.CharField(
        label=_("Dose"), max_length=60, help_text=_("For example: 1 tablet, 500 mg, 2 puffs.")
    )
    route = forms.ChoiceField(label=_("Route"), choices=Route.choices, initial=Route.ORAL)
    frequency = forms.IntegerField(label=_("Times per day"), min_value=1, max_value=24)
    as_needed = forms.BooleanField(label=_("As needed"), required=False)
    duration_days = forms.IntegerField(label=_("Duration (days)"), min_value=1, max_value=366)
    quantity = forms.IntegerField(label=_("Quantity (packs)"), min_value=1, max_value=99)
    instructions = forms.CharField(label=_("Instructions"), max_length=300, required=False)

    def has_changed(self) -> bool:
        # A line with only its route or "as needed" left as they came is still an empty line.
        return any(name not in ("route", "as_needed") for name in self.changed_data)


class DraftLineForm(forms.Form):
    """What a physician adjusts on a line of a draft before signing it."""

    dose = ItemForm.base_fields["dose"]
    frequency = ItemForm.base_fields["frequency"]
    duration_days = ItemForm.base_fields["duration_days"]
    quantity = ItemForm.base_fields["quantity"]
    instructions = ItemForm.base_fields["instructions"]


class BaseItemFormSet(forms.BaseFormSet):
    def items(self) -> list[dict[str, Any]]:
        """The filled-in lines, in order."""
        return [
            form.cleaned_data for form in self.forms if form.has_changed() and form.cleaned_data
        ]


def item_formset(lines: int = 3) -> type[BaseItemFormSet]:
    """A formset showing `lines` lines (the first one required) when unbound."""
    lines = max(1, min(lines, MAX_ITEMS))
    return forms.formset_factory(  # type: ignore[return-value]
        ItemForm,
        formset=BaseItemFormSet,
        extra=lines - 1,
        min_num=1,
        validate_min=True,
        max_num=MAX_ITEMS,
        validate_max=True,
    )


class OverrideForm(forms.Form):
    """The reason to sign despite warnings; `acknowledged` names the warnings that were shown."""

    override_reason = forms.CharField(
        label=_("Reason for signing despite the warnings"),
        max_length=1000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    acknowledged = forms.CharField(required=False, widget=forms.HiddenInput)


class PrescriptionForm(OverrideForm):
    valid_days = forms.IntegerField(
        label=_("Valid for (days)"), min_value=1, max_value=366, initial=90
    )


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason for cancelling"), max_length=300)


class RenewForm(OverrideForm):
    pass
