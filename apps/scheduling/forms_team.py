"""Forms of the clinic's scheduling pages: team agenda filters, booking, availability."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Role, User

from .models import AppointmentType, AvailabilityException, Location, Mode, Weekday
from .services.availability import AGENDA_ROLES
from .services.slots import clinic_zone, wall_clock


def _clinician_choices(clinicians: list[User]) -> list[tuple[str, str]]:
    return [(str(c.pk), f"{c.get_full_name()} ({c.role_label})") for c in clinicians]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, step: int = 300, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", attrs={"step": step}, **kwargs)


class AgendaFilterForm(forms.Form):
    """GET parameters of the team agenda; built from an in-memory list (no query on clean)."""

    view = forms.ChoiceField(
        label=_("View"), choices=[("day", _("Day")), ("week", _("Week"))], required=False
    )
    date = forms.DateField(label=_("Date"), required=False, widget=DateInput())
    profession = forms.ChoiceField(label=_("Profession"), required=False)
    clinician = forms.MultipleChoiceField(
        label=_("Professionals"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, clinicians: list[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["profession"].choices = [("", _("All professions"))] + [  # type: ignore[attr-defined]
            (role.value, role.label) for role in AGENDA_ROLES
        ]
        self.fields["clinician"].choices = _clinician_choices(clinicians)  # type: ignore[attr-defined]


class PatientChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.family_name} {obj.given_names} ({obj.birth_date:%d.%m.%Y})"


class StaffBookingForm(forms.Form):
    patient = PatientChoiceField(label=_("Patient"), queryset=None)  # type: ignore[arg-type]
    type = forms.ModelChoiceField(
        label=_("Kind of appointment"),
        queryset=AppointmentType.objects.filter(active=True).order_by("name"),
    )
    clinicians = forms.MultipleChoiceField(
        label=_("Professionals"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Choose several for a joint appointment; the first listed is responsible."),
    )
    date = forms.DateField(label=_("Date"), widget=DateInput())
    time = forms.TimeField(label=_("Time"), required=False, widget=TimeInput())
    reason = forms.CharField(label=_("Reason"), max_length=300, required=False)

    def __init__(self, *args: Any, patients: Any, clinicians: list[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["patient"].queryset = patients  # type: ignore[attr-defined]
        self.fields["clinicians"].choices = _clinician_choices(clinicians)  # type: ignore[attr-defined]
        self._clinicians = {c.pk: c for c in clinicians}

    def chosen_clinicians(self) -> list[User]:
        """The chosen clinicians, physicians first (the first one is responsible)."""
        order = {str(role): i for i, role in enumerate([*AGENDA_ROLES, Role.COORDINATOR])}
        chosen = [self._clinicians[int(pk)] for pk in self.cleaned_data["clinicians"]]
        return sorted(chosen, key=lambda c: (order.get(c.role, 9), c.last_name, c.pk))

    def starts_at(self) -> dt.datetime | None:
        """The chosen date and time in the clinic's zone (None when no time was given)."""
        at = self.cleaned_data.get("time")
        if at is None:
            return None
        return wall_clock(self.cleaned_data["date"], at, clinic_zone())


class RuleForm(forms.Form):
    weekday = forms.TypedChoiceField(label=_("Day"), choices=Weekday.choices, coerce=int)
    starts = forms.TimeField(label=_("From"), widget=TimeInput())
    ends = forms.TimeField(label=_("Until"), widget=TimeInput())
    mode = forms.ChoiceField(label=_("Mode"), choices=Mode.choices)
    location = forms.ModelChoiceField(
        label=_("Place"),
        queryset=Location.objects.none(),
        required=False,
        help_text=_("Required for in-person appointments."),
    )
    valid_from = forms.DateField(label=_("Valid from"), required=False, widget=DateInput())
    valid_until = forms.DateField(label=_("Valid until"), required=False, widget=DateInput())

    def __init__(self, *args: Any, clinician: User, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "rule")
        super().__init__(*args, **kwargs)
        places = Location.objects.filter(organization_id=clinician.organization_id or 0)
        self.fields["location"].queryset = places.filter(active=True)  # type: ignore[attr-defined]


class ExceptionForm(forms.Form):
    starts_at = forms.DateTimeField(
        label=_("From"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    ends_at = forms.DateTimeField(
        label=_("Until"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=AvailabilityException.Kind.choices)
    reason = forms.CharField(label=_("Reason"), max_length=200, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "exception")
        super().__init__(*args, **kwargs)


class TypesForm(forms.Form):
    types = forms.ModelMultipleChoiceField(
        label=_("Kinds of appointment offered"),
        queryset=AppointmentType.objects.filter(active=True).order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    specialty = forms.CharField(label=_("Specialty"), max_length=120, required=False)
    specialty_code = forms.CharField(
        label=_("Specialty code (SNOMED CT)"), max_length=20, required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "types")
        super().__init__(*args, **kwargs)
