"""Starting thresholds per condition, which a physician applies and then adjusts per patient.

Limits follow common telemonitoring practice (ESC/ESH hypertension grades, ESC heart-failure
weight-gain rule, GOLD oxygen targets, ADA hypoglycaemia levels); they are defaults, not advice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

SYSTOLIC, DIASTOLIC, HEART_RATE = "8480-6", "8462-4", "8867-4"
SPO2, WEIGHT, TEMPERATURE, GLUCOSE = "59408-5", "29463-7", "8310-5", "15074-8"


@dataclass(frozen=True)
class DefaultRule:
    code: str
    kind: str
    limit: Decimal
    severity: str
    n_of: int = 1
    m_of: int = 1
    hysteresis: Decimal = Decimal(0)
    window: dt.timedelta | None = None


@dataclass(frozen=True)
class Template:
    key: str
    label: str | Promise
    # ICD-10 codes (or prefixes) of the active conditions the template suits.
    icd10_prefixes: tuple[str, ...]
    rules: tuple[DefaultRule, ...]


def _d(value: str) -> Decimal:
    return Decimal(value)


TEMPLATES: dict[str, Template] = {
    t.key: t
    for t in (
        Template(
            "hypertension",
            _("Hypertension"),
            ("I10", "I11", "I12", "I13", "I15"),
            (
                DefaultRule(SYSTOLIC, "above", _d("160"), "warning", 2, 3, _d("10")),
                DefaultRule(SYSTOLIC, "above", _d("180"), "critical", 1, 1, _d("10")),
                DefaultRule(DIASTOLIC, "above", _d("110"), "critical", 1, 1, _d("5")),
                DefaultRule(SYSTOLIC, "below", _d("90"), "warning", 2, 3, _d("5")),
            ),
        ),
        Template(
            "heart_failure",
            _("Heart failure"),
            ("I50",),
            (
                DefaultRule(
                    WEIGHT,
                    "rise",
                    _d("2"),
                    "warning",
                    hysteresis=_d("0.5"),
                    window=dt.timedelta(days=3),
                ),
                DefaultRule(SYSTOLIC, "below", _d("90"), "warning", 2, 3, _d("5")),
                DefaultRule(HEART_RATE, "above", _d("120"), "warning", 2, 3, _d("10")),
                DefaultRule(SPO2, "below", _d("90"), "critical", 2, 3, _d("2")),
            ),
        ),
        Template(
            "copd",
            _("COPD"),
            ("J44", "J43"),
            (
                DefaultRule(SPO2, "below", _d("92"), "warning", 2, 3, _d("2")),
                DefaultRule(SPO2, "below", _d("88"), "critical", 1, 1, _d("2")),
                DefaultRule(HEART_RATE, "above", _d("120"), "warning", 2, 3, _d("10")),
                DefaultRule(TEMPERATURE, "above", _d("38.5"), "warning", 1, 1, _d("0.3")),
            ),
        ),
        Template(
            "diabetes",
            _("Diabetes"),
            ("E10", "E11", "E13", "E14"),
            (
                DefaultRule(GLUCOSE, "below", _d("3.9"), "critical", 1, 1, _d("0.5")),
                DefaultRule(GLUCOSE, "above", _d("13.9"), "warning", 2, 3, _d("1")),
                DefaultRule(GLUCOSE, "above", _d("20"), "critical", 1, 1, _d("2")),
            ),
        ),
        Template(
            "general",
            _("General monitoring"),
            (),
            (
                DefaultRule(SPO2, "below", _d("90"), "critical", 2, 3, _d("2")),
                DefaultRule(HEART_RATE, "above", _d("130"), "warning", 2, 3, _d("10")),
                DefaultRule(HEART_RATE, "below", _d("40"), "warning", 2, 3, _d("5")),
                DefaultRule(TEMPERATURE, "above", _d("38.5"), "warning", 1, 1, _d("0.3")),
                DefaultRule(SYSTOLIC, "above", _d("180"), "critical", 1, 1, _d("10")),
            ),
        ),
    )
}


def templates_for(icd10_codes: list[str]) -> list[Template]:
    """The templates that suit these conditions (the general one when none does)."""
    suited = [
        template
        for template in TEMPLATES.values()
        if any(code.startswith(template.icd10_prefixes) for code in icd10_codes)
        and template.icd10_prefixes
    ]
    return suited or [TEMPLATES["general"]]
