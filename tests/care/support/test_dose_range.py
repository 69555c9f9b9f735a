"""`dose-range`: paracetamol above 4 g/day, or above 3 g/day at 75 or under 50 kg (60 mg/kg);
metformin above 1 g/day at eGFR 30–44, contraindicated under 30 (eGFR measured, or CKD-EPI
2021 from creatinine). The boundaries of age, weight and eGFR are tested on both sides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apps.care.models import Rule
from apps.care.services.support.engine import evaluate_patient
from apps.care.services.support.snapshot import ckd_epi_2021, dose_mg
from apps.records.models import Patient

from .conftest import CREATININE, EGFR, NOW, TODAY, WEIGHT, day

PARACETAMOL, METFORMIN = "paracetamol-daily-max", "metformin-renal-dose"
METFORMIN_CI = "metformin-contraindicated-egfr-30"


def born(age: int, *, birthday_passed: bool = True) -> dt.date:
    """A birth date giving `age` years on TODAY."""
    when = TODAY.replace(year=TODAY.year - age)
    return when - dt.timedelta(days=1) if birthday_passed else when + dt.timedelta(days=1)


@pytest.fixture
def paracetamol_rule(only_rule: Callable[[str], Rule]) -> Rule:
    return only_rule(PARACETAMOL)


def codes(chart: Patient) -> list[str]:
    return [p.rule_code for p in evaluate_patient(chart, now=NOW)]


@pytest.mark.parametrize(
    ("dose", "strength_product", "frequency", "expected"),
    [
        ("1 g", "Paracétamol 1000 mg cp", 4, []),
        ("1000 mg", "Paracétamol 1000 mg cp", 5, [PARACETAMOL]),
        ("2 cp", "Paracétamol 500 mg cp", 4, []),
        ("2 comprimés", "Paracétamol 500 mg cp", 5, [PARACETAMOL]),
    ],
)
def test_four_grams_a_day_is_the_adult_maximum(
    paracetamol_rule: Rule,
    record: Patient,
    prescribe: Callable[..., Any],
    observe: Callable[..., Any],
    dose: str,
    strength_product: str,
    frequency: int,
    expected: list[str],
) -> None:
    observe(record, WEIGHT, 64, day(-20))
    prescribe(record, [(strength_product, dose, frequency)])
    assert codes(record) == expected


@pytest.mark.parametrize(
    ("weight", "daily", "fires"),
    [(50, "1 g × 4", False), (49.5, "1 g × 3", True), (49.5, "500 mg × 5", False)],
)
def test_under_50_kg_the_limit_is_60_mg_per_kg(
    paracetamol_rule: Rule,
    record: Patient,
    prescribe: Callable[..., Any],
    observe: Callable[..., Any],
    weight: float,
    daily: str,
    fires: bool,
) -> None:
    # 49.5 kg × 60 mg = 2970 mg: 3 g fires, 2.5 g does not; at 50 kg 4 g is allowed
    dose, times = daily.split(" × ")
    observe(record, WEIGHT, weight, day(-10))
    prescribe(record, [("Paracétamol 1000 mg cp", dose, int(times))])
    made = evaluate_patient(record, now=NOW)
    assert len(made) == (1 if fires else 0)
    if fires:
        evidence = made[0].evidence
        assert evidence["max_mg"] == 2970.0
        assert evidence["patient"]["weight"]["kg"] == 49.5
        assert evidence["summary"]["conditions"]["en"] == "weight under 50 kg"


def test_an_old_weight_is_not_used(
    paracetamol_rule: Rule,
    record: Patient,
    prescribe: Callable[..., Any],
    observe: Callable[..., Any],
) -> None:
    observe(record, WEIGHT, 45, NOW - dt.timedelta(days=400))
    prescribe(record, [("Paracétamol 1000 mg cp", "1 g", 4)])
    assert codes(record) == []


@pytest.mark.parametrize(("age", "passed", "fires"), [(75, True, True), (74, True, False)])
def test_from_75_the_limit_is_three_grams(
    paracetamol_rule: Rule,
    record: Patient,
    prescribe: Callable[..., Any],
    age: int,
    passed: bool,
    fires: bool,
) -> None:
    record.birth_date = born(age, birthday_passed=passed)
    record.save()
    prescribe(record, [("Paracétamol 1000 mg cp", "1 g", 4)])
    made = evaluate_patient(record, now=NOW)
    assert len(made) == (1 if fires else 0)
    if fires:
        assert made[0].evidence["patient"]["age"] == 75
        assert made[0].evidence["summary"]["limit"]["en"] == "at most 3000 mg a day"


def test_the_day_before_the_75th_birthday_is_still_74(
    paracetamol_rule: Rule, record: Patient, prescribe: Callable[..., Any]
) -> None:
    record.birth_date = born(75, birthday_passed=False)
    record.save()
    prescribe(record, [("Paracétamol 1000 mg cp", "1 g", 4)])
    assert codes(record) == []


def test_all_running_lines_of_the_drug_add_up(
    paracetamol_rule: Rule, record: Patient, prescribe: Callable[..., Any]
) -> None:
    prescribe(record, [("Paracétamol 1000 mg cp", "1 g", 3)])
    prescribe(record, [("Paracétamol 500 mg cp", "500 mg", 3)])
    made = evaluate_patient(record, now=NOW)
    assert made[0].evidence["daily_mg"] == 4500.0
    assert len(made[0].evidence["medications"]) == 2


def test_a_finished_course_is_not_counted(
    paracetamol_rule: Rule, record: Patient, prescribe: Callable[..., Any]
) -> None:
    prescribe(record, [("Paracétamol 1000 mg cp", "1 g", 6)], signed=day(-20), duration_days=10)
    assert codes(record) == []


@pytest.fixture
def metformin_rules(rules: dict[str, Rule]) -> None:
    Rule.objects.exclude(code__in=[METFORMIN, METFORMIN_CI]).update(active=False)


@pytest.mark.parametrize(
    ("egfr", "daily", "expected"),
    [
        (44, 2, [METFORMIN]),
        (45, 2, []),
        (30, 1, []),
        (30, 2, [METFORMIN]),
        (29, 1, [METFORMIN_CI]),
        (61, 3, []),
    ],
)
def test_metformin_follows_the_egfr(
    metformin_rules: None,
    record: Patient,
    prescribe: Callable[..., Any],
    observe: Callable[..., Any],
    egfr: int,
    daily: int,
    expected: list[str],
) -> None:
    observe(record, EGFR, egfr, day(-15), category="laboratory")
    prescribe(record, [("Metformine 1000 mg cp", "1000 mg", daily)])
    assert codes(record) == expected


def test_a_newer_creatinine_gives_the_egfr_by_ckd_epi(
    metformin_rules: None,
    record: Patient,
    prescribe: Callable[..., Any],
    observe: Callable[..., Any],
) -> None:
    # a 67-year-old woman: eGFR 70 last year, creatinine 120 µmol/L last week (CKD-EPI ≈ 41)
    observe(record, EGFR, 70, day(-200), category="laboratory")
    creatinine = observe(record, CREATININE, 120, day(-7), category="laboratory")
    prescribe(record, [("Metformine 1000 mg cp", "1000 mg", 2)])
    made = evaluate_patient(record, now=NOW)
    assert [p.rule_code for p in made] == [METFORMIN]
    egfr = made[0].evidence["patient"]["egfr"]
    assert egfr["from"] == "creatinine" and egfr["id"] == creatinine.pk
    assert 38 < egfr["egfr"] < 44
    assert creatinine.pk in {o["id"] for o in made[0].evidence["observations"]}


def test_unknown_renal_function_keeps_the_usual_maximum(
    metformin_rules: None, record: Patient, prescribe: Callable[..., Any]
) -> None:
    prescribe(record, [("Metformine 1000 mg cp", "1000 mg", 2)])
    assert codes(record) == []


def test_ckd_epi_2021_reference_values() -> None:
    # Inker et al., NEJM 2021, worked by hand for creatinine 1.0 mg/dL (88.4 µmol/L) at 50:
    # men 142 × (1/0.9)^-1.2 × 0.9938^50 = 91.7; women 142 × (1/0.7)^-1.2 × 0.9938^50 × 1.012
    assert ckd_epi_2021(88.4, 50, "male") == pytest.approx(91.7, abs=0.2)
    assert ckd_epi_2021(88.4, 50, "female") == pytest.approx(68.6, abs=0.2)
    # below κ the α exponent applies: 0.6 mg/dL, woman of 40 → 142 × (0.6/0.7)^-0.241 × …
    assert ckd_epi_2021(53.04, 40, "female") == pytest.approx(116.3, abs=0.2)
    assert ckd_epi_2021(88.4, 50, "unknown") is None


@pytest.mark.parametrize(
    ("dose", "strength", "mg"),
    [
        ("500 mg", "", Decimal(500)),
        ("1 g", "", Decimal(1000)),
        ("0,5 g", "", Decimal(500)),
        ("1000mg", "", Decimal(1000)),
        ("250 µg", "", Decimal("0.25")),
        ("2 cp", "500 mg", Decimal(1000)),
        ("½ cp", "1000 mg", Decimal(500)),
        ("1 comprimé", "875 mg/125 mg", Decimal(875)),
        ("2 bouffées", "100 µg/dose", None),
        ("10 UI", "100 UI/ml", None),
        ("1 cp", "100 UI/ml", None),
        ("selon schéma", "", None),
    ],
)
def test_doses_are_read_in_milligrams(dose: str, strength: str, mg: Decimal | None) -> None:
    assert dose_mg(dose, strength) == mg
