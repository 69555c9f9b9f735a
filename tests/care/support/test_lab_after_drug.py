"""`lab-after-drug`: an ACE inhibitor, ARB or spironolactone started 7 to 60 days ago with no
potassium or creatinine since proposes them; too early, too late, or both labs done is silent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.care.models import Rule
from apps.care.services.support.engine import evaluate_patient
from apps.records.models import MedicationStatement, Patient

from .conftest import CREATININE, NOW, POTASSIUM, TODAY, day

CODE = "potassium-creatinine-after-raas"


@pytest.fixture
def lab_rule(only_rule: Callable[[str], Rule]) -> Rule:
    return only_rule(CODE)


def started(
    take: Callable[..., MedicationStatement], chart: Patient, name: str, days_ago: int
) -> MedicationStatement:
    return take(chart, name, started_on=TODAY - dt.timedelta(days=days_ago))


def lab(observe: Callable[..., Any], chart: Patient, code: str, at: dt.datetime) -> Any:
    return observe(chart, code, 4.2 if code == POTASSIUM else 88, at, category="laboratory")


@pytest.mark.parametrize(
    "name", ["Ramipril 5 mg cp", "Candésartan 8 mg cp", "Spironolactone 25 mg cp"]
)
def test_a_start_ten_days_ago_without_labs_fires(
    lab_rule: Rule, record: Patient, take: Callable[..., Any], name: str
) -> None:
    statement = started(take, record, name, 10)
    made = evaluate_patient(record, now=NOW)
    assert [p.rule_code for p in made] == [CODE]
    evidence = made[0].evidence
    assert evidence["missing"] == [POTASSIUM, CREATININE]
    assert evidence["medications"][0]["id"] == statement.pk
    assert evidence["summary"]["days_since"] == "10"
    assert "Potassium" in evidence["summary"]["labs"]["en"]


@pytest.mark.parametrize("days_ago", [3, 6, 61, 120])
def test_outside_the_window_is_silent(
    lab_rule: Rule, record: Patient, take: Callable[..., Any], days_ago: int
) -> None:
    started(take, record, "Ramipril 5 mg cp", days_ago)
    assert evaluate_patient(record, now=NOW) == []


def test_the_window_edges_count(lab_rule: Rule, record: Patient, take: Callable[..., Any]) -> None:
    started(take, record, "Ramipril 5 mg cp", 7)
    started(take, record, "Spironolactone 25 mg cp", 60)
    assert len(evaluate_patient(record, now=NOW)) == 2


def test_both_labs_after_the_start_silence_it(
    lab_rule: Rule, record: Patient, take: Callable[..., Any], observe: Callable[..., Any]
) -> None:
    started(take, record, "Ramipril 5 mg cp", 10)
    lab(observe, record, POTASSIUM, day(-3))
    lab(observe, record, CREATININE, day(-3))
    assert evaluate_patient(record, now=NOW) == []


def test_one_missing_lab_is_named(
    lab_rule: Rule, record: Patient, take: Callable[..., Any], observe: Callable[..., Any]
) -> None:
    started(take, record, "Ramipril 5 mg cp", 10)
    lab(observe, record, POTASSIUM, day(-3))
    made = evaluate_patient(record, now=NOW)
    assert made[0].evidence["missing"] == [CREATININE]
    assert [o["code"] for o in made[0].evidence["observations"]] == [POTASSIUM]


def test_labs_of_the_start_day_are_the_baseline(
    lab_rule: Rule, record: Patient, take: Callable[..., Any], observe: Callable[..., Any]
) -> None:
    started(take, record, "Ramipril 5 mg cp", 10)
    lab(observe, record, POTASSIUM, day(-10, 8))
    lab(observe, record, CREATININE, day(-10, 8))
    assert len(evaluate_patient(record, now=NOW)) == 1


def test_a_stopped_drug_is_not_followed(
    lab_rule: Rule, record: Patient, take: Callable[..., Any]
) -> None:
    statement = started(take, record, "Ramipril 5 mg cp", 10)
    statement.status = MedicationStatement.Status.STOPPED
    statement.ended_on = TODAY - dt.timedelta(days=2)
    statement.save()
    assert evaluate_patient(record, now=NOW) == []


def test_other_drugs_are_not_concerned(
    lab_rule: Rule, record: Patient, take: Callable[..., Any]
) -> None:
    started(take, record, "Amlodipine 5 mg cp", 10)
    assert evaluate_patient(record, now=NOW) == []
