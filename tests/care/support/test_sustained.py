"""`sustained`: blood pressure above target on each of the last 7 days (2 readings a day at
least) on an unchanged antihypertensive treatment proposes a dosage review; shorter series, a
missing day, a day of one reading, a mean at the target or a treatment change do not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.care.models import Proposal, Rule
from apps.care.services.support.engine import evaluate_patient
from apps.records.models import MedicationStatement, Patient

from .conftest import NOW, SYSTOLIC, TODAY, day

CODE = "bp-above-target-on-treatment"
HIGH_WEEK = [[142, 148], [145, 150], [140, 146], [147, 149], [143, 141], [150, 144], [146, 148]]


@pytest.fixture
def bp_rule(only_rule: Callable[[str], Rule]) -> Rule:
    return only_rule(CODE)


@pytest.fixture
def on_lisinopril(record: Patient, take: Callable[..., MedicationStatement]) -> MedicationStatement:
    return take(record, "Lisinopril 10 mg cp", dosage="10 mg le matin")


def proposals(chart: Patient) -> list[Proposal]:
    return list(Proposal.objects.filter(patient=chart, rule_code=CODE))


def test_seven_high_days_on_unchanged_treatment_fire(
    bp_rule: Rule,
    record: Patient,
    on_lisinopril: MedicationStatement,
    daily_readings: Callable[..., Any],
) -> None:
    # given BP 140–150 twice a day for the last 7 days, lisinopril for months
    readings = daily_readings(record, SYSTOLIC, HIGH_WEEK)

    # when
    made = evaluate_patient(record, now=NOW)

    # then one proposal, with the data it used
    assert [p.rule_code for p in made] == [CODE]
    proposal = made[0]
    assert proposal.rule == bp_rule and proposal.status == Proposal.Status.OPEN
    evidence = proposal.evidence
    assert {o["id"] for o in evidence["observations"]} == {o.pk for o in readings}
    first = evidence["observations"][0]
    assert set(first) == {"id", "code", "label", "value", "unit", "at"}
    assert first["code"] == SYSTOLIC and first["unit"] == "mm[Hg]"
    assert first["label"]["en"] == "Systolic blood pressure"
    assert [d["n"] for d in evidence["series"]["days"]] == [2] * 7
    assert evidence["series"]["target"] == 135
    assert evidence["medications"][0]["name"] == "Lisinopril 10 mg cp"
    assert evidence["medications"][0]["id"] == on_lisinopril.pk
    assert evidence["parameters"]["days"] == 7
    assert evidence["rule"] == {"code": CODE, "version": 1, "reference": bp_rule.reference}
    assert evidence["summary"]["mean"]["en"] == "146"  # 2039 / 14
    assert evidence["summary"]["lowest_day"]["fr"] == "142"
    assert evidence["window"] == {
        "from": (TODAY - dt.timedelta(days=7)).isoformat(),
        "to": (TODAY - dt.timedelta(days=1)).isoformat(),
    }


def test_six_days_are_not_enough(
    bp_rule: Rule, record: Patient, on_lisinopril: Any, daily_readings: Callable[..., Any]
) -> None:
    daily_readings(record, SYSTOLIC, HIGH_WEEK[1:])
    assert evaluate_patient(record, now=NOW) == []


def test_a_day_without_readings_breaks_the_series(
    bp_rule: Rule, record: Patient, on_lisinopril: Any, daily_readings: Callable[..., Any]
) -> None:
    week = [list(values) for values in HIGH_WEEK]
    week[3] = []
    daily_readings(record, SYSTOLIC, week)
    assert evaluate_patient(record, now=NOW) == []


def test_a_day_with_a_single_reading_does_not_count(
    bp_rule: Rule, record: Patient, on_lisinopril: Any, daily_readings: Callable[..., Any]
) -> None:
    week = [list(values) for values in HIGH_WEEK]
    week[5] = [160]
    daily_readings(record, SYSTOLIC, week)
    assert evaluate_patient(record, now=NOW) == []


@pytest.mark.parametrize(
    ("third_day", "fires"),
    [([130, 140], False), ([130, 140.2], True)],
    ids=["mean-at-target", "mean-just-above"],
)
def test_a_daily_mean_must_be_above_the_target(
    bp_rule: Rule,
    record: Patient,
    on_lisinopril: Any,
    daily_readings: Callable[..., Any],
    third_day: list[float],
    fires: bool,
) -> None:
    week = [list(values) for values in HIGH_WEEK]
    week[2] = third_day  # a mean of exactly 135, or 135.1
    daily_readings(record, SYSTOLIC, week)
    assert len(evaluate_patient(record, now=NOW)) == (1 if fires else 0)


def test_a_dose_change_on_day_four_means_the_treatment_is_new(
    bp_rule: Rule,
    record: Patient,
    on_lisinopril: MedicationStatement,
    take: Callable[..., MedicationStatement],
    daily_readings: Callable[..., Any],
) -> None:
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    changed = TODAY - dt.timedelta(days=4)
    on_lisinopril.status = MedicationStatement.Status.STOPPED
    on_lisinopril.ended_on = changed - dt.timedelta(days=1)
    on_lisinopril.save()
    take(record, "Lisinopril 10 mg cp", dosage="20 mg le matin", started_on=changed)
    assert evaluate_patient(record, now=NOW) == []


def test_a_drug_added_during_the_window_is_a_change(
    bp_rule: Rule,
    record: Patient,
    on_lisinopril: Any,
    take: Callable[..., MedicationStatement],
    daily_readings: Callable[..., Any],
) -> None:
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    take(record, "Amlodipine 5 mg cp", started_on=TODAY - dt.timedelta(days=4))
    assert evaluate_patient(record, now=NOW) == []


def test_a_renewal_at_the_same_dose_is_no_change(
    bp_rule: Rule,
    record: Patient,
    prescribe: Callable[..., Any],
    daily_readings: Callable[..., Any],
) -> None:
    first = prescribe(record, [("Amlodipine 5 mg cp", "5 mg", 1)], signed=day(-40))
    # renewed three days ago: the old line completed, the same one signed again
    first.status = "completed"
    first.save()
    MedicationStatement.objects.filter(prescription=first).update(
        status="completed", ended_on=TODAY - dt.timedelta(days=3)
    )
    prescribe(record, [("Amlodipine 5 mg cp", "5 mg", 1)], signed=day(-3))
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    assert [p.rule_code for p in evaluate_patient(record, now=NOW)] == [CODE]


def test_no_treatment_of_the_classes_means_no_dosage_review(
    bp_rule: Rule,
    record: Patient,
    take: Callable[..., MedicationStatement],
    daily_readings: Callable[..., Any],
) -> None:
    take(record, "Atorvastatine 20 mg cp")  # a statin is not an antihypertensive
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    assert evaluate_patient(record, now=NOW) == []


def test_today_is_not_part_of_the_window(
    bp_rule: Rule,
    record: Patient,
    on_lisinopril: Any,
    daily_readings: Callable[..., Any],
    observe: Callable[..., Any],
) -> None:
    # six complete high days and high readings this morning: the seventh day is not over
    daily_readings(record, SYSTOLIC, HIGH_WEEK[1:])
    observe(record, SYSTOLIC, 150, NOW - dt.timedelta(hours=2))
    observe(record, SYSTOLIC, 152, NOW - dt.timedelta(hours=1))
    assert evaluate_patient(record, now=NOW) == []
