"""`interaction` and `allergy`: two active drugs of a major interaction, or an active drug of
the class of an active allergy, fire; milder interactions, stopped drugs, resolved allergies,
foods and other classes do not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.care.models import Rule
from apps.care.services.support.engine import evaluate_patient
from apps.care.services.support.rules import do_save_rule_version, rule_data
from apps.records.models import MedicationStatement, Patient

from .conftest import NOW, TODAY

INTERACTION, ALLERGY = "drug-interaction-major", "allergy-conflict"
PENICILLIN, NSAID, PEANUT = "764146007", "372665008", "762952008"


@pytest.fixture
def interaction_rule(only_rule: Callable[[str], Rule]) -> Rule:
    return only_rule(INTERACTION)


@pytest.fixture
def allergy_rule(only_rule: Callable[[str], Rule]) -> Rule:
    return only_rule(ALLERGY)


def test_warfarin_and_ibuprofen_fire(
    interaction_rule: Rule, record: Patient, take: Callable[..., Any]
) -> None:
    warfarin = take(record, "Warfarine 5 mg cp")
    ibuprofen = take(record, "Ibuprofène 400 mg cp", started_on=TODAY - dt.timedelta(days=2))
    made = evaluate_patient(record, now=NOW)
    assert [p.rule_code for p in made] == [INTERACTION]
    evidence = made[0].evidence
    assert {m["id"] for m in evidence["medications"]} == {warfarin.pk, ibuprofen.pk}
    assert evidence["interaction"]["severity"] == "major"
    assert (evidence["interaction"]["atc_a"], evidence["interaction"]["atc_b"]) == ("B01AA", "M01A")
    assert evidence["summary"]["severity"]["en"] == "major"
    assert evidence["summary"]["description"]["fr"]


def test_a_moderate_interaction_is_below_the_rules_severity(
    interaction_rule: Rule, record: Patient, take: Callable[..., Any]
) -> None:
    take(record, "Warfarine 5 mg cp")
    take(record, "Ciprofloxacine 500 mg cp")  # B01AA × J01MA: moderate
    assert evaluate_patient(record, now=NOW) == []


def test_the_minimum_severity_is_a_parameter(
    interaction_rule: Rule, record: Patient, take: Callable[..., Any], admin_user: Any
) -> None:
    take(record, "Warfarine 5 mg cp")
    take(record, "Ciprofloxacine 500 mg cp")
    data = rule_data(interaction_rule)
    data["parameters"] = {"min_severity": "moderate"}
    do_save_rule_version(data, admin_user)
    assert len(evaluate_patient(record, now=NOW)) == 1


def test_a_stopped_drug_does_not_interact(
    interaction_rule: Rule, record: Patient, take: Callable[..., Any]
) -> None:
    take(record, "Warfarine 5 mg cp")
    take(
        record,
        "Ibuprofène 400 mg cp",
        status=MedicationStatement.Status.STOPPED,
        ended_on=TODAY - dt.timedelta(days=5),
    )
    assert evaluate_patient(record, now=NOW) == []


def test_a_drug_whose_course_ended_does_not_interact(
    interaction_rule: Rule, record: Patient, take: Callable[..., Any]
) -> None:
    take(record, "Warfarine 5 mg cp")
    take(record, "Clarithromycine 500 mg cp", ended_on=TODAY - dt.timedelta(days=1))
    assert evaluate_patient(record, now=NOW) == []


def test_penicillin_allergy_and_amoxicillin_fire(
    allergy_rule: Rule, record: Patient, take: Callable[..., Any], allergic: Callable[..., Any]
) -> None:
    allergy = allergic(record, PENICILLIN, reaction="Urticaire")
    drug = take(record, "Amoxicilline 1000 mg cp")
    made = evaluate_patient(record, now=NOW)
    assert [p.rule_code for p in made] == [ALLERGY]
    assert made[0].rule.severity == Rule.Severity.CRITICAL
    evidence = made[0].evidence
    assert evidence["allergies"][0]["id"] == allergy.pk
    assert evidence["allergies"][0]["atc_prefix"] == "J01C"
    assert evidence["medications"][0]["id"] == drug.pk
    assert evidence["summary"]["substance"]["fr"]
    assert evidence["summary"]["reaction"] == "Urticaire"


def test_an_nsaid_allergy_covers_ibuprofen(
    allergy_rule: Rule, record: Patient, take: Callable[..., Any], allergic: Callable[..., Any]
) -> None:
    allergic(record, NSAID, criticality="low")
    take(record, "Ibuprofène 400 mg cp")
    assert len(evaluate_patient(record, now=NOW)) == 1


def test_silent_allergy_cases(
    allergy_rule: Rule, record: Patient, take: Callable[..., Any], allergic: Callable[..., Any]
) -> None:
    allergic(record, PENICILLIN, clinical_status="resolved")
    allergic(record, PEANUT, category="food")
    allergic(record, NSAID)
    take(record, "Amoxicilline 1000 mg cp")  # penicillin allergy resolved
    take(record, "Paracétamol 500 mg cp")  # not an NSAID
    take(
        record,
        "Naproxène 500 mg cp",
        status=MedicationStatement.Status.STOPPED,
        ended_on=TODAY - dt.timedelta(days=30),
    )
    assert evaluate_patient(record, now=NOW) == []


def test_criticalities_are_a_parameter(
    allergy_rule: Rule,
    record: Patient,
    take: Callable[..., Any],
    allergic: Callable[..., Any],
    admin_user: Any,
) -> None:
    allergic(record, NSAID, criticality="low")
    take(record, "Ibuprofène 400 mg cp")
    data = rule_data(allergy_rule)
    data["parameters"] = {"criticalities": ["high"]}
    do_save_rule_version(data, admin_user)
    assert evaluate_patient(record, now=NOW) == []
