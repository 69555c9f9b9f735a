from decimal import Decimal

import pytest

from apps.devices.units import MEASUREMENTS, UnitError, to_canonical


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected", "canonical"),
    [
        ("8480-6", "128", "mm[Hg]", "128", "mm[Hg]"),
        ("8867-4", "72", "{beats}/min", "72", "/min"),
        ("15074-8", "90.072", "mg/dL", "4.9996", "mmol/L"),  # 4.99955… rounded half-even
        ("15074-8", "180.16", "mg/dL", "10", "mmol/L"),
        ("15074-8", "5.5", "mmol/L", "5.5", "mmol/L"),
        ("29463-7", "100", "[lb_av]", "45.3592", "kg"),  # 45.359237
        ("29463-7", "72500", "g", "72.5", "kg"),
        ("8310-5", "98.6", "[degF]", "37", "Cel"),
        ("8310-5", "104", "[degF]", "40", "Cel"),
    ],
)
def test_conversions_to_canonical_unit(
    code: str, value: str, unit: str, expected: str, canonical: str
) -> None:
    converted, stored_unit = to_canonical(code, Decimal(value), unit)
    assert stored_unit == canonical
    assert converted == Decimal(expected)


def test_glucose_factor_is_exact_both_ways() -> None:
    mmol, _ = to_canonical("15074-8", Decimal("3.9") * Decimal("18.016"), "mg/dL")
    assert mmol == Decimal("3.9")


def test_every_code_has_bounds_and_accepts_its_canonical_unit() -> None:
    for code, measurement in MEASUREMENTS.items():
        assert measurement.low < measurement.high
        middle = (measurement.low + measurement.high) / 2
        assert to_canonical(code, middle, measurement.unit)[1] == measurement.unit


@pytest.mark.parametrize(
    ("code", "value", "unit", "reason"),
    [
        ("1234-5", "1", "mm[Hg]", "unknown_code"),
        ("8480-6", "128", "kPa", "wrong_unit"),
        ("15074-8", "5", "mg", "wrong_unit"),
        ("8480-6", "900", "mm[Hg]", "impossible_value"),
        ("59408-5", "101", "%", "impossible_value"),
        ("8310-5", "-3", "Cel", "impossible_value"),
        ("8310-5", "212", "[degF]", "impossible_value"),  # 100 Cel: converted, then bounded
        ("29463-7", "900", "[lb_av]", "impossible_value"),
        ("29463-7", "1e30", "kg", "impossible_value"),
        ("8310-5", "Infinity", "Cel", "impossible_value"),
    ],
)
def test_rejections_name_their_reason(code: str, value: str, unit: str, reason: str) -> None:
    with pytest.raises(UnitError) as exc:
        to_canonical(code, Decimal(value), unit)
    assert exc.value.reason == reason
    assert exc.value.detail
