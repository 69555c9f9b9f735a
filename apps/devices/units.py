"""Measurements devices may send: canonical UCUM unit per LOINC code, conversions and bounds.

Readings are stored in the canonical unit only, so thresholds and charts compare like with
like. Bounds are what a living patient can show (not normal ranges): anything outside is a
device fault and goes to the dead letters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

Converter = Callable[[Decimal], Decimal]

# Exact factors: the avoirdupois pound is defined as 0.45359237 kg; glucose's molar mass
# (180.16 g/mol) makes 1 mmol/L = 18.016 mg/dL.
GLUCOSE_MG_DL_PER_MMOL_L = Decimal("18.016")
KG_PER_LB = Decimal("0.45359237")
STORED_PLACES = Decimal("0.0001")  # records.Observation.value has 4 decimal places


class UnitError(ValueError):
    """A reading that cannot be stored; `reason` is a DeadLetterReason value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _identity(value: Decimal) -> Decimal:
    return value


def _fahrenheit_to_celsius(value: Decimal) -> Decimal:
    return (value - 32) * 5 / 9


def _mg_dl_to_mmol_l(value: Decimal) -> Decimal:
    return value / GLUCOSE_MG_DL_PER_MMOL_L


def _lb_to_kg(value: Decimal) -> Decimal:
    return value * KG_PER_LB


def _g_to_kg(value: Decimal) -> Decimal:
    return value / 1000


@dataclass(frozen=True)
class Measurement:
    code: str
    label: str
    unit: str
    low: Decimal
    high: Decimal
    alternatives: dict[str, Converter] = field(default_factory=dict)

    def accepted_units(self) -> list[str]:
        return [self.unit, *self.alternatives]


_BEATS: dict[str, Converter] = {"{beats}/min": _identity}
_GLUCOSE: dict[str, Converter] = {"mg/dL": _mg_dl_to_mmol_l}

MEASUREMENTS: dict[str, Measurement] = {
    m.code: m
    for m in (
        Measurement("8480-6", "systolic blood pressure", "mm[Hg]", Decimal(20), Decimal(300)),
        Measurement("8462-4", "diastolic blood pressure", "mm[Hg]", Decimal(10), Decimal(200)),
        Measurement("8867-4", "heart rate", "/min", Decimal(20), Decimal(300), _BEATS),
        Measurement("9279-1", "respiratory rate", "/min", Decimal(2), Decimal(80), _BEATS),
        Measurement("59408-5", "SpO2 (pulse oximetry)", "%", Decimal(40), Decimal(100)),
        Measurement("2708-6", "oxygen saturation", "%", Decimal(40), Decimal(100)),
        Measurement(
            "29463-7",
            "body weight",
            "kg",
            Decimal("0.3"),
            Decimal(400),
            {"[lb_av]": _lb_to_kg, "g": _g_to_kg},
        ),
        Measurement(
            "8310-5",
            "body temperature",
            "Cel",
            Decimal(25),
            Decimal(45),
            {"[degF]": _fahrenheit_to_celsius},
        ),
        Measurement("15074-8", "blood glucose", "mmol/L", Decimal("0.5"), Decimal(60), _GLUCOSE),
    )
}


def to_canonical(code: str, value: Decimal, unit: str) -> tuple[Decimal, str]:
    """The value in the code's canonical unit, rounded to storage precision; UnitError if not."""
    measurement = MEASUREMENTS.get(code)
    if measurement is None:
        raise UnitError("unknown_code", f"code {code[:30]!r} is not a supported device LOINC code")
    if unit == measurement.unit:
        converted = value
    elif unit in measurement.alternatives:
        converted = measurement.alternatives[unit](value)
    else:
        accepted = ", ".join(measurement.accepted_units())
        raise UnitError(
            "wrong_unit",
            f"unit {unit[:30]!r} is not valid for {code} ({measurement.label}); use {accepted}",
        )
    # Bounds first: quantizing an absurdly large number would overflow the decimal context.
    if not (value.is_finite() and measurement.low <= converted <= measurement.high):
        raise UnitError(
            "impossible_value",
            f"{value:.6g} {unit} is impossible for {measurement.label} "
            f"(accepted {measurement.low}–{measurement.high} {measurement.unit})",
        )
    return converted.quantize(STORED_PLACES, rounding=ROUND_HALF_EVEN), measurement.unit
