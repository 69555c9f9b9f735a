"""Rules as data: parameters validated per kind with clear messages; saving a version deactivates
the previous one in one transaction; the reference rules load idempotently (a changed entry is a
new version, an administrator's edit stays), and a bad file writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import User
from apps.care.models import Rule
from apps.care.services.support.parameters import PLACEHOLDERS, ParameterError, check_parameters
from apps.care.services.support.rules import (
    RuleError,
    check_rule,
    do_save_rule_version,
    load_reference_rules,
    rule_data,
)
from apps.records.reference import ReferenceDataError

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "care" / "rules.json"


def test_every_kind_has_a_cited_trilingual_reference_rule() -> None:
    entries = json.loads(FIXTURE.read_text())
    assert {entry["kind"] for entry in entries} == set(Rule.Kind.values)
    for entry in entries:
        assert entry["reference"] and entry["title_en"] and entry["rationale_de"]
        check_rule(entry)  # valid as written


@pytest.mark.parametrize(
    ("kind", "parameters", "problem"),
    [
        ("sustained", {"code": "8480-6", "above": 135, "days": 7}, "atc_classes: is required"),
        (
            "sustained",
            {"code": "8480-6", "above": "high", "days": 7, "atc_classes": ["C09"]},
            "above: must be a number, not 'high'",
        ),
        (
            "sustained",
            {"code": "8480-6", "above": 135, "days": 7.5, "atc_classes": ["C09"]},
            "days: must be a whole number, not 7.5",
        ),
        (
            "sustained",
            {"code": "8480-6", "above": 135, "days": 7, "atc_classes": ["c9x"]},
            "ATC code 'C9X' is not an ATC class",
        ),
        (
            "drift",
            {"codes": ["15074-8"], "window_days": 14, "lab": "4548-4", "lab_within_days": 90},
            "give rise_above, mean_above or both",
        ),
        (
            "lab-after-drug",
            {"atc_classes": ["C09A"], "min_days": 30, "max_days": 7, "labs": ["2823-3"]},
            "max_days: must be more than min_days (30), not 7",
        ),
        ("interaction", {"min_severity": "severe"}, "min_severity: must be one of minor"),
        ("allergy", {"criticalities": []}, "criticalities: must be a non-empty list"),
        (
            "dose-range",
            {"atc": "N02BE01", "max_mg_per_day": 4000, "limits": [{"when": {"age_over": 75}}]},
            "limits[0].when.age_over: is not a parameter of this kind of rule",
        ),
        (
            "dose-range",
            {"atc": "N02BE01", "max_mg_per_day": 4000, "limits": [{"when": {"age_at_least": 75}}]},
            "give max_mg_per_day, max_mg_per_kg_per_day or contraindicated",
        ),
        (
            "dose-range",
            {"atc": "N02BE01", "max_mg_per_day": 1000, "min_mg_per_day": 2000},
            "min_mg_per_day: must be below max_mg_per_day",
        ),
        ("potion", {}, "kind: 'potion' is not a kind of rule"),
    ],
)
def test_bad_parameters_say_what_to_fix(kind: str, parameters: Any, problem: str) -> None:
    with pytest.raises(ParameterError) as caught:
        check_parameters(kind, parameters)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_parameters_must_be_an_object() -> None:
    with pytest.raises(ParameterError, match="JSON object"):
        check_parameters("interaction", ["major"])


def test_defaults_are_filled() -> None:
    cleaned = check_parameters("dose-range", {"atc": "a10ba02", "max_mg_per_day": 3000})
    assert cleaned["atc"] == "A10BA02"
    assert cleaned["weight_codes"] == ["29463-7"] and cleaned["data_max_age_days"] == 365
    assert check_parameters("interaction", {}) == {"min_severity": "major"}


def test_a_rule_needs_french_texts_known_placeholders_and_a_fitting_action() -> None:
    entry = json.loads(FIXTURE.read_text())[3]  # the interaction rule
    with pytest.raises(RuleError) as caught:
        check_rule(
            dict(entry, title="", rationale_en="{drug} {weight}", action="prescription", code="A b")
        )
    problems = " | ".join(caught.value.problems)
    assert "title: the French title is required" in problems
    assert "unknown placeholder(s) weight" in problems
    assert "only sustained and dose-range rules draft a prescription" in problems
    assert "code: 'A b' must be lowercase words" in problems
    assert set(PLACEHOLDERS) == set(Rule.Kind.values)


def test_saving_a_version_deactivates_the_previous(reference: None, admin_user: User) -> None:
    entry = json.loads(FIXTURE.read_text())[3]
    v1 = do_save_rule_version(entry, None)
    v2 = do_save_rule_version(dict(entry, severity="critical"), admin_user)
    v1.refresh_from_db()
    assert (v1.version, v1.active, v2.version, v2.active) == (1, False, 2, True)
    assert v2.created_by == admin_user and v2.severity == "critical" and v1.severity == "warning"


def test_a_bad_version_changes_nothing(reference: None) -> None:
    entry = json.loads(FIXTURE.read_text())[3]
    v1 = do_save_rule_version(entry, None)
    with pytest.raises(RuleError):
        do_save_rule_version(dict(entry, parameters={"min_severity": "big"}), None)
    v1.refresh_from_db()
    assert v1.active and Rule.objects.count() == 1


def write(directory: Path, entries: list[dict[str, Any]]) -> Path:
    (directory / "rules.json").write_text(json.dumps(entries), encoding="utf-8")
    return directory


def test_loading_is_idempotent_and_a_changed_entry_is_a_new_version(
    reference: None, tmp_path: Path, admin_user: User
) -> None:
    entries = json.loads(FIXTURE.read_text())
    assert load_reference_rules() == {"created": len(entries), "updated": 0, "unchanged": 0}
    assert load_reference_rules() == {"created": 0, "updated": 0, "unchanged": len(entries)}
    # an administrator tunes one rule: reloading the same file keeps their version
    tuned = Rule.objects.get(code="drug-interaction-major", active=True)
    do_save_rule_version(dict(rule_data(tuned), severity="critical"), admin_user)
    assert load_reference_rules()["unchanged"] == len(entries)
    assert Rule.objects.get(code="drug-interaction-major", active=True).severity == "critical"
    # the file changes one entry: it becomes the next version
    entries[0]["parameters"]["above"] = 140
    assert load_reference_rules(write(tmp_path, entries)) == {
        "created": 0,
        "updated": 1,
        "unchanged": len(entries) - 1,
    }
    bp = Rule.objects.get(code=entries[0]["code"], active=True)
    assert bp.version == 2 and bp.parameters["above"] == 140


@pytest.mark.parametrize(
    "content",
    ['{"not": "a list"}', "[1,", '[{"code": "x", "kind": "interaction"}]'],
    ids=["object", "broken-json", "incomplete-entry"],
)
def test_a_bad_file_writes_nothing(reference: None, tmp_path: Path, content: str) -> None:
    (tmp_path / "rules.json").write_text(content, encoding="utf-8")
    with pytest.raises(ReferenceDataError):
        load_reference_rules(tmp_path)
    assert not Rule.objects.exists()


def test_one_bad_entry_stops_the_whole_file(reference: None, tmp_path: Path) -> None:
    entries = json.loads(FIXTURE.read_text())
    entries[5]["parameters"]["max_mg_per_day"] = -1
    entries.append(dict(entries[0]))
    with pytest.raises(ReferenceDataError) as caught:
        load_reference_rules(write(tmp_path, entries))
    problems = " | ".join(caught.value.problems)
    assert "rules.json[5] (paracetamol-daily-max): parameters.max_mg_per_day" in problems
    assert "appears twice in the file" in problems
    assert not Rule.objects.exists()


def test_a_missing_file_is_a_clear_error(reference: None, tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="file not found"):
        load_reference_rules(tmp_path)
