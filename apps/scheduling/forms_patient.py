"""Forms of the patient's booking pages: search, confirm, cancel, move, waiting list."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Appointment, AppointmentType, Mode, Schedule
from .services.slots import Slot, clinic_zone


def bookable_types() -> QuerySet[AppointmentType]:
    return AppointmentType.objects.filter(active=True, patient_bookable=True)


def active_schedules() -> QuerySet[Schedule]:
    return (
        Schedule.objects.filter(active=True, clinician__is_active=True)
        .select_related("clinician")
        .order_by("clinician__last_name", "clinician__first_name", "pk")
    )


class TypeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.label} ({obj.get_mode_display()}, {obj.minutes} min)"


class ScheduleChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        name = obj.clinician.get_full_name()
        return f"{name} — {obj.specialty}" if obj.specialty else name


class SearchForm(forms.Form):
    """What the patient looks for; every field is optional and narrows the search."""

    specialty = forms.ChoiceField(label=_("Specialty"), required=False)
    schedule = ScheduleChoiceField(
        label=_("Professional"),
        queryset=Schedule.objects.none(),
        required=False,
        empty_label=_("Any professional"),
    )
    type = TypeChoiceField(
        label=_("Kind of appointment"),
        queryset=AppointmentType.objects.none(),
        required=False,
        empty_label=_("Any kind"),
    )
    mode = forms.ChoiceField(
        label=_("Video or in person"),
        choices=[("", _("Either"))] + list(Mode.choices),
        required=False,
    )
    date = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schedules = list(active_schedules())
        specialties = sorted({s.specialty for s in schedules if s.specialty})
        specialty_field: Any = self.fields["specialty"]
        specialty_field.choices = [("", _("Any specialty"))] + [
            (name, name) for name in specialties
        ]
        # The loaded list serves the choices and the names in the results (no second query).
        self.schedules = {s.pk: s for s in schedules}
        schedule_field: Any = self.fields["schedule"]
        schedule_field.queryset = active_schedules()
        schedule_field.choices = [("", schedule_field.empty_label)] + [
            (s.pk, schedule_field.label_from_instance(s)) for s in schedules
        ]
        self.types = list(bookable_types())
        type_field: Any = self.fields["type"]
        type_field.queryset = bookable_types()
        type_field.choices = [("", type_field.empty_label)] + [
            (t.pk, type_field.label_from_instance(t)) for t in self.types
        ]
        self.fields["date"].initial = timezone.localdate()

    def clean_schedule(self) -> Schedule | None:
        chosen = self.cleaned_data.get("schedule")
        return self.schedules.get(chosen.pk) if chosen is not None else None

    def clean_date(self) -> dt.date:
        today = dt.datetime.now(clinic_zone()).date()
        return max(self.cleaned_data.get("date") or today, today)

    def types_to_search(self) -> list[AppointmentType]:
        chosen = self.cleaned_data.get("type")
        if chosen is not None:
            return [t for t in self.types if t.pk == chosen.pk]
        mode = self.cleaned_data.get("mode")
        return [t for t in self.types if not mode or t.mode == mode]


@dataclass(frozen=True)
class SlotChoice:
    """A slot as the pages pass it around: type, schedule and start (UTC) in one token."""

    type_id: int
    schedule_id: int
    starts_at: dt.datetime

    TOKEN = re.compile(r"^(\d{1,9})-(\d{1,9})-(\d{8}T\d{4})Z$")

    @property
    def token(self) -> str:
        return f"{self.type_id}-{self.schedule_id}-{self.starts_at.astimezone(dt.UTC):%Y%m%dT%H%M}Z"

    @classmethod
    def of(cls, slot: Slot, type_id: int) -> SlotChoice:
        return cls(type_id, slot.schedule_id, slot.starts_at)

    @classmethod
    def parse(cls, token: str) -> SlotChoice | None:
        found = cls.TOKEN.match(token or "")
        if found is None:
            return None
        try:
            starts_at = dt.datetime.strptime(found[3], "%Y%m%dT%H%M").replace(tzinfo=dt.UTC)
        except ValueError:
            return None
        return cls(int(found[1]), int(found[2]), starts_at)


class SlotField(forms.CharField):
    def to_python(self, value: Any) -> SlotChoice | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        choice = SlotChoice.parse(text)
        if choice is None:
            raise forms.ValidationError(_("Choose a time from the list."))
        return choice


class ConfirmForm(forms.Form):
    slot = SlotField(widget=forms.HiddenInput)
    reason = forms.CharField(
        label=_("Reason for the visit (optional)"),
        max_length=300,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("A few words help the clinic prepare. Do not write anything urgent here."),
    )


class MoveForm(forms.Form):
    slot = SlotField()


class CancelForm(forms.Form):
    confirm = forms.BooleanField(label=_("Yes, cancel this appointment"))
    reason = forms.CharField(label=_("Reason (optional)"), max_length=300, required=False)


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (Appointment.Status.ARRIVED, Appointment.Status.ARRIVED.label),
            (Appointment.Status.FULFILLED, Appointment.Status.FULFILLED.label),
            (Appointment.Status.NOSHOW, Appointment.Status.NOSHOW.label),
        ]
    )


class JoinWaitingListForm(forms.Form):
    schedule = ScheduleChoiceField(label=_("Professional"), queryset=Schedule.objects.none())
    type = TypeChoiceField(label=_("Kind of appointment"), queryset=AppointmentType.objects.none())
    latest = forms.DateField(
        label=_("Any time before"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    current = forms.ModelChoiceField(
        label=_("Appointment to move earlier (optional)"),
        queryset=Appointment.objects.none(),
        required=False,
        empty_label=_("None: a new appointment"),
    )

    def __init__(self, *args: Any, upcoming: QuerySet[Appointment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["schedule"].queryset = active_schedules()  # type: ignore[attr-defined]
        self.fields["type"].queryset = bookable_types()  # type: ignore[attr-defined]
        self.fields["current"].queryset = upcoming  # type: ignore[attr-defined]
        self.fields["current"].label_from_instance = self._appointment_label  # type: ignore[attr-defined]

    @staticmethod
    def _appointment_label(appointment: Appointment) -> str:
        from django.utils.formats import date_format

        when = date_format(appointment.starts_at.astimezone(clinic_zone()), "DATETIME_FORMAT")
        return f"{appointment.type.label}, {when}"
