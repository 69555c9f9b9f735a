"""The threshold rule form: what a physician types, turned into `do_create_rule`'s fields."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .models import Severity, ThresholdRule
from .services.alerts import measurement_label
from .services.rules import MAX_M
from .units import MEASUREMENTS

HOURS, DAYS = "hours", "days"
WINDOW_UNITS = [(HOURS, _("hours")), (DAYS, _("days"))]
TRENDS = (ThresholdRule.Kind.RISE, ThresholdRule.Kind.FALL)
MAX_ESCALATION_MINUTES = 24 * 60


def measurement_choices() -> list[tuple[str, str]]:
    """Each measurement devices send, named in the active language, with its unit."""
    return [
        (code, f"{measurement_label(code)} ({measurement.unit})")
        for code, measurement in MEASUREMENTS.items()
    ]


def _decimal(label: Any, **kwargs: Any) -> forms.DecimalField:
    # 0.1 suits every unit devices send (kg, °C, mmol/L); two places leave room for finer ones.
    field = forms.DecimalField(label=label, max_digits=10, decimal_places=2, **kwargs)
    field.widget.attrs.update({"step": "0.01", "inputmode": "decimal"})
    return field


class RuleForm(forms.Form):
    """One threshold rule; `fields()` gives the service's dict (window and delay as timedelta).

    With `rule`, the form edits that rule: its measurement is fixed (another measurement is
    another rule) and its unit is shown with the limit.
    """

    code = forms.ChoiceField(label=_("Measurement"))
    kind = forms.ChoiceField(
        label=_("Rule"),
        choices=ThresholdRule.Kind.choices,
        help_text=_("A rise or a fall compares each reading with those of the period below."),
    )
    limit = _decimal(
        _("Limit"), min_value=Decimal(0), help_text=_("In the measurement's unit, shown above.")
    )
    window_value = forms.IntegerField(
        label=_("Period"),
        required=False,
        min_value=1,
        max_value=30 * 24,
        help_text=_("Rise and fall rules only: e.g. 3 days."),
    )
    window_unit = forms.ChoiceField(label=_("Period unit"), choices=WINDOW_UNITS, initial=DAYS)
    n_of = forms.IntegerField(
        label=_("Readings out of range (N)"),
        min_value=1,
        max_value=MAX_M,
        initial=1,
        help_text=_("Alert when N of the last M readings are out of range."),
    )
    m_of = forms.IntegerField(
        label=_("Among the last (M) readings"), min_value=1, max_value=MAX_M, initial=1
    )
    hysteresis = _decimal(
        _("Hysteresis"),
        required=False,
        min_value=Decimal(0),
        initial=Decimal(0),
        help_text=_(
            "How far back past the limit readings must come before the rule can alert again."
        ),
    )
    severity = forms.ChoiceField(
        label=_("Severity"), choices=Severity.choices, initial=Severity.WARNING
    )
    escalate_minutes = forms.IntegerField(
        label=_("Escalate after (minutes)"),
        required=False,
        min_value=1,
        max_value=MAX_ESCALATION_MINUTES,
    )

    def __init__(self, *args: Any, rule: ThresholdRule | None = None, **kwargs: Any) -> None:
        self.rule = rule
        if rule is not None:
            kwargs.setdefault("initial", initial_for(rule))
        super().__init__(*args, **kwargs)
        code_field: forms.ChoiceField = self.fields["code"]  # type: ignore[assignment]
        code_field.choices = measurement_choices()
        if rule is not None:
            # The measurement stays; its unit goes with the limit.
            del self.fields["code"]
            unit = f" ({rule.unit})"
            self.fields["limit"].label = f"{self.fields['limit'].label}{unit}"
            self.fields["limit"].help_text = ""
            self.fields["hysteresis"].label = f"{self.fields['hysteresis'].label}{unit}"
        minutes = settings.DEVICES_ESCALATION_MINUTES
        self.fields["escalate_minutes"].help_text = _(
            "Empty: the default, %(critical)s min for critical alerts and %(warning)s min for "
            "warnings; information alerts do not escalate."
        ) % {"critical": minutes.get("critical"), "warning": minutes.get("warning")}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") in TRENDS and not data.get("window_value"):
            self.add_error("window_value", _("A rise or fall rule needs a period."))
        n_of, m_of = data.get("n_of"), data.get("m_of")
        if n_of is not None and m_of is not None and n_of > m_of:
            self.add_error("n_of", _("N cannot be more than M."))
        return data

    def fields_for_service(self) -> dict[str, Any]:
        """The cleaned form as `do_create_rule` / `do_update_rule` take it."""
        data = self.cleaned_data
        window = None
        if data["kind"] in TRENDS and data.get("window_value"):
            unit = HOURS if data["window_unit"] == HOURS else DAYS
            window = dt.timedelta(**{unit: data["window_value"]})
        minutes = data.get("escalate_minutes")
        fields = {
            "kind": data["kind"],
            "limit": data["limit"],
            "window": window,
            "n_of": data["n_of"],
            "m_of": data["m_of"],
            "hysteresis": data.get("hysteresis") or Decimal(0),
            "severity": data["severity"],
            "escalate_after": dt.timedelta(minutes=minutes) if minutes else None,
        }
        if "code" in data:
            fields["code"] = data["code"]
        return fields


def plain(value: Decimal) -> Decimal:
    """The value without trailing zeros nor an exponent: 160.0000 is 160, not 1.6E+2."""
    return Decimal(f"{value.normalize():f}")


def initial_for(rule: ThresholdRule) -> dict[str, Any]:
    """The form's values for an existing rule (periods in days when they are whole days)."""
    initial: dict[str, Any] = {
        "code": rule.code,
        "kind": rule.kind,
        "limit": plain(rule.limit),
        "n_of": rule.n_of,
        "m_of": rule.m_of,
        "hysteresis": plain(rule.hysteresis),
        "severity": rule.severity,
        "window_unit": DAYS,
    }
    if rule.window is not None:
        hours = int(rule.window.total_seconds() // 3600)
        if hours % 24 == 0:
            initial["window_value"] = hours // 24
        else:
            initial.update(window_value=hours, window_unit=HOURS)
    if rule.escalate_after is not None:
        initial["escalate_minutes"] = int(rule.escalate_after.total_seconds() // 60)
    return initial
