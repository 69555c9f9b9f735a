"""Forms of the patient's follow-up pages: reminder preferences and a dose answer. (The
questionnaire form is built from the questionnaire's items and checked by the service.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import CarePreferences
from .services.followup_time import DOSE_SLOTS, valid_zone_names
from .services.reminders import REASON_MAX

COMMON_ZONES = (
    "Europe/Zurich",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Rome",
    "Europe/London",
    "Europe/Lisbon",
    "America/New_York",
    "America/Montreal",
)
TIME_WIDGET = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")


def zone_choices() -> list[tuple[Any, Any]]:
    """Common zones of the hospital's patients first, then every other zone by name."""
    others = sorted(name for name in valid_zone_names() if "/" in name and name not in COMMON_ZONES)
    return [
        (_("Common"), [(zone, zone.replace("_", " ")) for zone in COMMON_ZONES]),
        (_("All time zones"), [(zone, zone.replace("_", " ")) for zone in others]),
    ]


class PreferencesForm(forms.Form):
    medication_reminders = forms.BooleanField(
        label=_("Remind me to take my medicines"), required=False
    )
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=())
    dose_1 = forms.TimeField(label=_("First dose of the day"), widget=TIME_WIDGET)
    dose_2 = forms.TimeField(label=_("Midday dose"), widget=TIME_WIDGET)
    dose_3 = forms.TimeField(label=_("Evening dose"), widget=TIME_WIDGET)
    dose_4 = forms.TimeField(label=_("Bedtime dose"), widget=TIME_WIDGET)
    quiet_start = forms.TimeField(label=_("No reminders from"), required=False, widget=TIME_WIDGET)
    quiet_end = forms.TimeField(label=_("until"), required=False, widget=TIME_WIDGET)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = zone_choices()  # type: ignore[attr-defined]
        self.fields["dose_1"].help_text = _(
            "Once a day: the first time; twice: the first and the evening; three times: the "
            "first three; four times: all four."
        )
        self.fields["quiet_end"].help_text = _(
            "A reminder falling in these hours is sent at their end. Leave both empty for the "
            "hospital's default (22:30 to 07:00)."
        )

    @classmethod
    def initial_for(cls, prefs: CarePreferences | None, rules: Any) -> dict[str, Any]:
        times = list(rules.dose_times)
        return {
            "medication_reminders": rules.reminders_on,
            "time_zone": rules.zone.key,
            **{f"dose_{i + 1}": times[i] for i in range(DOSE_SLOTS)},
            "quiet_start": prefs.quiet_start if prefs else None,
            "quiet_end": prefs.quiet_end if prefs else None,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        times = [data.get(f"dose_{i + 1}") for i in range(DOSE_SLOTS)]
        given = [t for t in times if isinstance(t, dt.time)]
        if len(given) == DOSE_SLOTS and any(a >= b for a, b in zip(given, given[1:], strict=False)):
            self.add_error("dose_2", _("The dose times must follow each other through the day."))
        start, end = data.get("quiet_start"), data.get("quiet_end")
        if (start is None) != (end is None):
            self.add_error("quiet_end", _("Give both the start and the end of the quiet hours."))
        elif start is not None and start == end:
            self.add_error("quiet_end", _("The quiet hours must end at another time."))
        return data

    @property
    def dose_times(self) -> list[str]:
        return [self.cleaned_data[f"dose_{i + 1}"].strftime("%H:%M") for i in range(DOSE_SLOTS)]


class DoseAnswerForm(forms.Form):
    answer = forms.ChoiceField(
        choices=[("taken", _("Taken")), ("skipped", _("Skipped"))],
        error_messages={"required": _("Say whether you took this dose.")},
    )
    reason = forms.CharField(
        label=_("Why did you skip it? (optional)"), max_length=REASON_MAX, required=False
    )
