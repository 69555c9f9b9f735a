"""Tariff computation: units from durations, point values, prices to the centime, CHF rounding,
rule violations and the patient's share."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import translation

from apps.billing.models import Context, Coverage, Insurer, PointValue, Tariff, TariffCode
from apps.billing.money import round_chf, to_cents
from apps.billing.services import BillingError
from apps.billing.services.tariffs import (
    RuleViolation,
    basic_coverage,
    is_covered,
    patient_share,
    point_value_for,
    price,
    quantity_for,
    valid_on,
    violations,
)
from apps.records.models import Patient

from .conftest import VALID_FROM

ON = dt.date(2025, 3, 14)
D = Decimal

# ---------------------------------------------------------------------------------------------
# CHF rounding (money.py)


@pytest.mark.parametrize(
    ("amount", "rounded"),
    [
        ("2.325", "2.35"),
        ("2.324", "2.30"),
        ("0.025", "0.05"),
        ("0.024", "0.00"),
        ("2.375", "2.40"),
        ("2.37", "2.35"),
        ("2.38", "2.40"),
        ("65.37", "65.35"),
        ("100", "100.00"),
    ],
)
def test_round_chf_rounds_to_five_centimes_halves_up(amount: str, rounded: str) -> None:
    result = round_chf(D(amount))
    assert result == D(rounded)
    assert str(result) == rounded


@pytest.mark.parametrize(
    ("amount", "rounded"), [("17.2236", "17.22"), ("0.005", "0.01"), ("9.3465", "9.35")]
)
def test_to_cents_rounds_halves_up(amount: str, rounded: str) -> None:
    assert str(to_cents(D(amount))) == rounded


# ---------------------------------------------------------------------------------------------
# Quantities


@pytest.mark.parametrize(
    ("minutes", "units"),
    [(0, 0), (4, 0), (5, 0), (6, 1), (10, 1), (D("10.01"), 2), (17, 3), (35, 6), (120, 6)],
)
def test_per_further_five_minutes_counts_started_units_beyond_the_first_five(
    codes: dict[str, TariffCode], minutes: Decimal | int, units: int
) -> None:
    assert quantity_for(codes["video_more"], minutes) == units


def test_a_per_act_code_is_one_unit_whatever_the_length(codes: dict[str, TariffCode]) -> None:
    assert quantity_for(codes["video_base"], 1) == 1
    assert quantity_for(codes["video_base"], 17) == 1
    assert quantity_for(codes["video_base"], 240) == 1


def test_a_per_act_code_needs_its_minimum_minutes(tardoc: Tariff) -> None:
    long_visit = TariffCode.objects.create(
        tariff=tardoc,
        code="AA.00.0100",
        label="Long visit",
        tax_points=D("50"),
        min_minutes=20,
        for_in_person=True,
        valid_from=VALID_FROM,
    )
    assert quantity_for(long_visit, D("19.9")) == 0
    assert quantity_for(long_visit, 20) == 1


def test_monitoring_days_count_started_days_up_to_thirty(codes: dict[str, TariffCode]) -> None:
    day = 24 * 60
    assert quantity_for(codes["monitoring_day"], day * D("10.5")) == 11
    assert quantity_for(codes["monitoring_day"], day * 10) == 10
    assert quantity_for(codes["monitoring_day"], day * 40) == 30


def test_a_time_code_without_maximum_is_not_capped(tardoc: Tariff) -> None:
    per_ten = TariffCode.objects.create(
        tariff=tardoc,
        code="BB.01",
        label="Per 10 minutes",
        tax_points=D("10"),
        unit_minutes=10,
        for_video=True,
        valid_from=VALID_FROM,
    )
    assert quantity_for(per_ten, 601) == 61


# ---------------------------------------------------------------------------------------------
# Point values


def test_point_value_is_the_cantons(codes: dict[str, TariffCode], tardoc: Tariff) -> None:
    assert point_value_for(tardoc, "VD", None, ON) == D("0.9300")
    assert point_value_for(tardoc, "GE", None, ON) == D("0.9600")


def test_an_insurers_own_point_value_comes_first(
    codes: dict[str, TariffCode], tardoc: Tariff, insurer: Insurer, insurer_garant: Insurer
) -> None:
    PointValue.objects.create(
        tariff=tardoc, canton="VD", insurer=insurer, value=D("0.9100"), valid_from=VALID_FROM
    )
    assert point_value_for(tardoc, "VD", insurer, ON) == D("0.9100")
    # Another insurer, or another canton, keeps the canton's value.
    assert point_value_for(tardoc, "VD", insurer_garant, ON) == D("0.9300")
    assert point_value_for(tardoc, "GE", insurer, ON) == D("0.9600")


def test_point_values_follow_their_validity_dates(
    codes: dict[str, TariffCode], tardoc: Tariff, insurer: Insurer
) -> None:
    PointValue.objects.filter(tariff=tardoc, canton="VD").update(valid_until=dt.date(2025, 12, 31))
    PointValue.objects.create(
        tariff=tardoc, canton="VD", value=D("0.9500"), valid_from=dt.date(2026, 1, 1)
    )
    PointValue.objects.create(
        tariff=tardoc,
        canton="VD",
        insurer=insurer,
        value=D("0.8800"),
        valid_from=VALID_FROM,
        valid_until=dt.date(2024, 12, 31),
    )
    assert point_value_for(tardoc, "VD", None, dt.date(2025, 12, 31)) == D("0.9300")
    assert point_value_for(tardoc, "VD", None, dt.date(2026, 1, 1)) == D("0.9500")
    assert point_value_for(tardoc, "VD", insurer, dt.date(2024, 12, 31)) == D("0.8800")
    # The insurer's value expired: the canton's applies again.
    assert point_value_for(tardoc, "VD", insurer, dt.date(2025, 1, 1)) == D("0.9300")


def test_no_point_value_is_an_error_naming_tariff_and_canton(
    codes: dict[str, TariffCode], tardoc: Tariff
) -> None:
    with translation.override("en"), pytest.raises(BillingError) as error:
        point_value_for(tardoc, "ZH", None, ON)
    assert "TARDOC" in str(error.value) and "ZH" in str(error.value)
    with pytest.raises(BillingError):
        point_value_for(tardoc, "VD", None, dt.date(2019, 12, 31))


# ---------------------------------------------------------------------------------------------
# Prices


def test_points_price_is_points_times_value_to_the_centime(codes: dict[str, TariffCode]) -> None:
    # 18.52 × 0.93 = 17.2236
    priced = price(codes["video_base"], 1, canton="VD", on=ON)
    assert priced.unit_points == D("18.52")
    assert priced.point_value == D("0.9300")
    assert priced.unit_price == D("17.22")
    assert priced.amount == D("17.22")


def test_points_price_of_several_units(codes: dict[str, TariffCode]) -> None:
    # 17.26 × 0.93 = 16.0518 → 16.05; × 3 = 48.15
    priced = price(codes["video_more"], 3, canton="VD", on=ON)
    assert (priced.unit_price, priced.amount) == (D("16.05"), D("48.15"))
    # Geneva: 17.26 × 0.96 = 16.5696 → 16.57; × 3 = 49.71
    priced = price(codes["video_more"], 3, canton="GE", on=ON)
    assert (priced.unit_price, priced.amount) == (D("16.57"), D("49.71"))


def test_the_unit_price_is_rounded_before_it_is_multiplied(tardoc: Tariff, codes: dict) -> None:
    odd = TariffCode.objects.create(
        tariff=tardoc,
        code="CC.01",
        label="Odd points",
        tax_points=D("10.05"),
        for_video=True,
        valid_from=VALID_FROM,
    )
    # 10.05 × 0.93 = 9.3465 → 9.35 per unit; 3 units are 28.05 (not 28.04 = 28.0395 rounded).
    priced = price(odd, 3, canton="VD", on=ON)
    assert (priced.unit_price, priced.amount) == (D("9.35"), D("28.05"))


def test_points_price_uses_the_insurers_point_value(
    codes: dict[str, TariffCode], tardoc: Tariff, insurer: Insurer
) -> None:
    PointValue.objects.create(
        tariff=tardoc, canton="VD", insurer=insurer, value=D("0.9100"), valid_from=VALID_FROM
    )
    # 18.52 × 0.91 = 16.8532 → 16.85
    priced = price(codes["video_base"], 1, canton="VD", insurer=insurer, on=ON)
    assert (priced.point_value, priced.unit_price) == (D("0.9100"), D("16.85"))


def test_a_price_tariff_uses_the_codes_price(codes: dict[str, TariffCode]) -> None:
    priced = price(codes["monitoring_day"], 11, canton="VD", on=ON)
    assert priced.unit_points is None and priced.point_value is None
    assert (priced.unit_price, priced.amount) == (D("4.80"), D("52.80"))


def test_a_price_code_needs_no_point_value(codes: dict[str, TariffCode]) -> None:
    assert price(codes["report"], 1, canton="ZH", on=ON).amount == D("35.00")


def test_a_points_code_without_points_cannot_be_priced(tardoc: Tariff) -> None:
    odd = TariffCode.objects.create(
        tariff=tardoc, code="ZZ.01", label="Priced", price=D("5"), valid_from=VALID_FROM
    )
    with pytest.raises(BillingError):
        price(odd, 1, canton="VD", on=ON)


# ---------------------------------------------------------------------------------------------
# Validity


def test_valid_on_includes_both_bounds(codes: dict[str, TariffCode]) -> None:
    code = codes["video_more"]
    code.valid_from = dt.date(2025, 1, 1)
    code.valid_until = dt.date(2025, 6, 30)
    assert not valid_on(code, dt.date(2024, 12, 31))
    assert valid_on(code, dt.date(2025, 1, 1))
    assert valid_on(code, dt.date(2025, 6, 30))
    assert not valid_on(code, dt.date(2025, 7, 1))
    code.valid_until = None
    assert valid_on(code, dt.date(2099, 1, 1))


# ---------------------------------------------------------------------------------------------
# Violations


def test_a_correct_set_has_no_violations(codes: dict[str, TariffCode]) -> None:
    items = [(codes["video_base"], D(1)), (codes["video_more"], D(3)), (codes["report"], D(1))]
    assert violations(items, context=Context.VIDEO, on=ON) == []


def test_incompatible_codes_are_named_both(codes: dict[str, TariffCode]) -> None:
    items = [(codes["office"], D(1)), (codes["video_base"], D(1))]
    with translation.override("en"):
        found = violations(items, context=Context.IN_PERSON, on=ON)
    assert found == [
        "AA.00.0010 does not apply to this kind of act (in-person consultation).",
        "AA.00.0010 and AA.00.0030 cannot be billed together for the same act.",
    ]


def test_incompatibility_is_symmetrical(codes: dict[str, TariffCode]) -> None:
    assert codes["video_base"] in codes["office"].incompatible_with.all()
    found = violations(
        [(codes["video_base"], D(1)), (codes["office"], D(1))], context=Context.VIDEO, on=ON
    )
    assert any("AA.00.0010" in v and "AA.00.0030" in v for v in found)


def test_quantity_above_the_maximum_names_code_and_maximum(codes: dict[str, TariffCode]) -> None:
    with translation.override("en"):
        found = violations([(codes["video_more"], D(7))], context=Context.VIDEO, on=ON)
    assert found == ["AA.00.0020: 7 units is more than the maximum of 6 per act."]


def test_the_maximum_counts_every_line_of_the_same_code(codes: dict[str, TariffCode]) -> None:
    items = [(codes["video_base"], D(1)), (codes["video_base"], D(1))]
    with translation.override("en"):
        found = violations(items, context=Context.VIDEO, on=ON)
    assert found == ["AA.00.0010: 2 units is more than the maximum of 1 per act."]


def test_a_code_not_valid_on_the_date_is_explained(codes: dict[str, TariffCode]) -> None:
    code = codes["video_more"]
    code.valid_until = dt.date(2024, 12, 31)
    code.save()
    with translation.override("en"):
        found = violations([(code, D(1))], context=Context.VIDEO, on=ON)
    assert len(found) == 1
    assert found[0].startswith("AA.00.0020 is not valid on")
    assert "2025" in found[0] and "2024" in found[0]


def test_a_code_for_another_context_is_explained(codes: dict[str, TariffCode]) -> None:
    with translation.override("en"):
        found = violations([(codes["monitoring_day"], D(2))], context=Context.VIDEO, on=ON)
    assert found == ["TM.01 does not apply to this kind of act (video consultation)."]


@pytest.mark.parametrize("quantity", ["0", "-1"])
def test_a_quantity_must_be_positive(codes: dict[str, TariffCode], quantity: str) -> None:
    with translation.override("en"):
        found = violations([(codes["report"], D(quantity))], context=Context.VIDEO, on=ON)
    assert found == [f"RP.01: the quantity must be more than zero (it is {quantity})."]


def test_every_violation_is_listed(codes: dict[str, TariffCode]) -> None:
    items = [(codes["video_more"], D(9)), (codes["monitoring_day"], D(0))]
    found = violations(items, context=Context.VIDEO, on=ON)
    assert len(found) == 3


def test_rule_violation_lists_each_reason() -> None:
    error = RuleViolation(["one", "two"], intro="Refused:")
    assert isinstance(error, BillingError)
    assert error.violations == ["one", "two"]
    assert str(error) == "Refused:\none\ntwo"


# ---------------------------------------------------------------------------------------------
# Coverage and patient share


def test_patient_share_without_insurer_or_cover_is_everything(insurer: Insurer) -> None:
    assert patient_share(D("65.37"), None, True) == D("65.37")
    assert patient_share(D("65.37"), insurer, False) == D("65.37")


def test_patient_share_is_the_co_payment_to_the_centime(insurer: Insurer) -> None:
    assert patient_share(D("65.37"), insurer, True) == D("6.54")
    insurer.patient_share = D("20.00")
    assert patient_share(D("35.00"), insurer, True) == D("7.00")
    insurer.patient_share = D("0")
    assert patient_share(D("35.00"), insurer, True) == D("0.00")


def test_an_insurer_listing_no_codes_covers_all(
    codes: dict[str, TariffCode], insurer: Insurer
) -> None:
    assert all(is_covered(insurer, code) for code in codes.values())
    assert not is_covered(None, codes["video_base"])


def test_an_insurer_listing_codes_covers_only_those(
    codes: dict[str, TariffCode], insurer: Insurer, tardoc: Tariff
) -> None:
    insurer.covered_codes.add(codes["video_base"], codes["video_more"])
    assert is_covered(insurer, codes["video_base"])
    assert not is_covered(insurer, codes["report"])
    # A new version of a listed code stays covered.
    newer = TariffCode.objects.create(
        tariff=tardoc,
        code="AA.00.0010",
        label="Consultation vidéo (2026)",
        tax_points=D("19"),
        for_video=True,
        valid_from=dt.date(2026, 1, 1),
    )
    assert is_covered(insurer, newer)


def test_basic_coverage_is_the_one_valid_on_the_date(
    record: Patient, insurer: Insurer, insurer_garant: Insurer
) -> None:
    Coverage.objects.create(
        patient=record,
        insurer=insurer_garant,
        kind=Coverage.Kind.SUPPLEMENTARY,
        member_number="S1",
        valid_from=dt.date(2024, 1, 1),
    )
    assert basic_coverage(record, ON).insurer == insurer  # type: ignore[union-attr]
    Coverage.objects.filter(patient=record, insurer=insurer).update(
        valid_until=dt.date(2024, 12, 31)
    )
    Coverage.objects.create(
        patient=record, insurer=insurer_garant, member_number="B2", valid_from=dt.date(2025, 1, 1)
    )
    assert basic_coverage(record, dt.date(2024, 12, 31)).insurer == insurer  # type: ignore[union-attr]
    assert basic_coverage(record, ON).insurer == insurer_garant  # type: ignore[union-attr]
    assert basic_coverage(record, dt.date(2019, 1, 1)) is None
