"""`drift`: capillary glucose drifting up over two weeks (or a high recent mean), with no HbA1c
in the last 90 days, proposes an HbA1c; a flat series, too few readings, or a recent HbA1c
do not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.care.models import Proposal, Rule
from apps.care.services.support.engine import evaluate_patient
from apps.records.models import Patient

from .conftest import GLUCOSE, HBA1C, NOW, day

CODE = "glucose-drift-hba1c"


@pytest.fixture
def drift_rule(only_rule: Callable[[str], Rule]) -> Rule:
    return only_rule(CODE)


def glucose_days(
    chart: Patient, observe: Callable[..., Any], first: int, values: list[float]
) -> None:
    """One fasting glucose a morning, from `first` days ago onwards."""
    for index, value in enumerate(values):
        observe(chart, GLUCOSE, value, day(-first + index, 7, 15))


PREVIOUS = [7.1, 7.4, 6.9, 7.2, 7.6, 7.0, 7.3, 7.1, 7.5, 7.2, 6.8, 7.4, 7.0, 7.3]  # mean 7.2
RISING = [8.1, 8.6, 8.3, 8.9, 8.4, 8.8, 8.2, 8.7, 8.5, 9.0, 8.6, 8.4, 8.8, 8.9]  # mean 8.6


def test_a_rise_of_more_than_one_mmol_proposes_hba1c(
    drift_rule: Rule, record: Patient, observe: Callable[..., Any]
) -> None:
    # given two weeks around 7.2 then two weeks around 8.6 (today included), HbA1c 5 months ago
    glucose_days(record, observe, 27, PREVIOUS + RISING)
    old = observe(record, HBA1C, 7.0, NOW - dt.timedelta(days=150), category="laboratory")

    made = evaluate_patient(record, now=NOW)

    assert [p.rule_code for p in made] == [CODE]
    evidence = made[0].evidence
    assert evidence["summary"]["recent_mean"]["en"] == "8.6"
    assert evidence["summary"]["previous_mean"]["fr"] == "7,2"
    assert evidence["summary"]["rise"]["en"] == "1.4"
    assert evidence["summary"]["lab"]["en"].startswith("Hemoglobin A1c")
    assert evidence["summary"]["last_lab"]["en"] == "10/19/2025"
    assert old.pk in {o["id"] for o in evidence["observations"]}
    assert len(evidence["series"]["days"]) == 28


def test_a_flat_series_is_silent(
    drift_rule: Rule, record: Patient, observe: Callable[..., Any]
) -> None:
    glucose_days(record, observe, 27, PREVIOUS + PREVIOUS)
    assert evaluate_patient(record, now=NOW) == []


def test_a_rise_just_under_the_threshold_is_silent(
    drift_rule: Rule, record: Patient, observe: Callable[..., Any]
) -> None:
    glucose_days(record, observe, 27, PREVIOUS + [v + 0.95 for v in PREVIOUS])
    assert evaluate_patient(record, now=NOW) == []


def test_a_recent_hba1c_silences_the_drift(
    drift_rule: Rule, record: Patient, observe: Callable[..., Any]
) -> None:
    glucose_days(record, observe, 27, PREVIOUS + RISING)
    observe(record, HBA1C, 7.4, NOW - dt.timedelta(days=60), category="laboratory")
    assert evaluate_patient(record, now=NOW) == []


def test_too_few_readings_are_no_trend(
    drift_rule: Rule, record: Patient, observe: Callable[..., Any]
) -> None:
    # six readings in the recent window: the rule wants seven
    glucose_days(record, observe, 27, PREVIOUS)
    for offset in (-12, -10, -8, -6, -4, -2):
        observe(record, GLUCOSE, 9.1, day(offset))
    assert evaluate_patient(record, now=NOW) == []


def test_a_high_recent_mean_fires_without_earlier_readings(
    drift_rule: Rule, record: Patient, observe: Callable[..., Any]
) -> None:
    # new to monitoring: no previous window, but a mean above 10.1 mmol/L (HbA1c ≈ 8 %)
    glucose_days(record, observe, 13, [10.4, 10.9, 11.2, 10.1, 10.6, 11.0, 10.8, 10.5])
    made = evaluate_patient(record, now=NOW)
    assert [p.rule_code for p in made] == [CODE]
    assert made[0].evidence["summary"]["previous_mean"]["en"] == "—"
    assert made[0].evidence["summary"]["last_lab"]["en"] == "never"


def test_one_proposal_per_missing_hba1c(
    drift_rule: Rule, record: Patient, observe: Callable[..., Any]
) -> None:
    glucose_days(record, observe, 27, PREVIOUS + RISING)
    assert len(evaluate_patient(record, now=NOW)) == 1
    # the drift goes on the next day: still the same finding (no HbA1c since), not a new one
    observe(record, GLUCOSE, 9.2, NOW + dt.timedelta(hours=23))
    assert evaluate_patient(record, now=NOW + dt.timedelta(days=1)) == []
    assert Proposal.objects.filter(patient=record, status=Proposal.Status.OPEN).count() == 1
