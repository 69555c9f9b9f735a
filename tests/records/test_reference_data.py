"""Reference data: the fixtures are well formed and the loader is idempotent and all-or-nothing."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    DrugInteraction,
    Medication,
    Patient,
)
from apps.records.reference import (
    FILES,
    ReferenceDataError,
    default_directory,
    load_reference_data,
)
from apps.records.services.prescriptions import check_prescription

SYSTEMS = {"loinc": CodeSystem.LOINC, "icd10": CodeSystem.ICD10, "snomed": CodeSystem.SNOMED}


def read(name: str, directory: Path | None = None) -> list[dict[str, Any]]:
    path = (directory or default_directory()) / f"{name}.json"
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write(directory: Path, name: str, data: Any) -> None:
    (directory / f"{name}.json").write_text(json.dumps(data, ensure_ascii=False), "utf-8")


@pytest.fixture
def fixtures_copy(tmp_path: Path) -> Path:
    """A writable copy of fixtures/reference."""
    target = tmp_path / "reference"
    shutil.copytree(default_directory(), target)
    return target


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "concepts": list(Concept.objects.order_by("pk").values_list()),
        "medications": list(Medication.objects.order_by("pk").values_list()),
        "interactions": list(DrugInteraction.objects.order_by("pk").values_list()),
    }


def row_counts() -> tuple[int, int, int]:
    return Concept.objects.count(), Medication.objects.count(), DrugInteraction.objects.count()


# ---------------------------------------------------------------------------------------------
# Loading


def test_loads_every_file_and_the_counts_match(db: None) -> None:
    # when
    counts = load_reference_data()

    # then
    for spec in FILES:
        assert counts[spec.name] == len(read(spec.name)), spec.name
    for name, system in SYSTEMS.items():
        assert Concept.objects.filter(system=system).count() == counts[name]
    assert Medication.objects.count() == counts["medications"]
    assert DrugInteraction.objects.count() == counts["interactions"]
    assert counts["created"] == sum(counts[spec.name] for spec in FILES)
    assert counts["updated"] == counts["unchanged"] == 0
    heart_rate = Concept.objects.get(system=CodeSystem.LOINC, code="8867-4")
    assert (heart_rate.unit, heart_rate.low, heart_rate.high) == ("/min", 60, 100)
    assert heart_rate.display_fr == "Fréquence cardiaque"


def test_a_second_run_changes_nothing(db: None) -> None:
    # given
    first = load_reference_data()
    before = snapshot()

    # when
    second = load_reference_data()

    # then
    assert second["created"] == second["updated"] == 0
    assert second["unchanged"] == first["created"]
    assert snapshot() == before
    temperature = Concept.objects.get(system=CodeSystem.LOINC, code="8310-5")
    assert (temperature.low, temperature.high) == (Decimal("36.0"), Decimal("37.5"))


def test_an_edited_entry_updates_its_row_in_place(db: None, fixtures_copy: Path) -> None:
    # given
    load_reference_data()
    medication = Medication.objects.get(name="Amoxicilline 1000 mg cp")
    medications = read("medications", fixtures_copy)
    entry = next(m for m in medications if m["name"] == medication.name)
    entry["form"] = "comprimé dispersible"
    write(fixtures_copy, "medications", medications)

    # when
    counts = load_reference_data(fixtures_copy)

    # then
    assert (counts["created"], counts["updated"]) == (0, 1)
    medication.refresh_from_db()
    assert medication.form == "comprimé dispersible"


def test_a_field_left_out_goes_back_to_its_default(db: None, fixtures_copy: Path) -> None:
    # given
    load_reference_data()
    problems = read("icd10", fixtures_copy)
    entry = next(c for c in problems if c["code"] == "F32.9")
    del entry["sensitivity"]
    write(fixtures_copy, "icd10", problems)

    # when
    load_reference_data(fixtures_copy)

    # then
    assert Concept.objects.get(system=CodeSystem.ICD10, code="F32.9").sensitivity == "normal"


def test_an_interaction_written_the_other_way_round_is_the_same_row(
    db: None, fixtures_copy: Path
) -> None:
    # given
    load_reference_data()
    interactions = read("interactions", fixtures_copy)
    interactions[0]["atc_a"], interactions[0]["atc_b"] = (
        interactions[0]["atc_b"],
        interactions[0]["atc_a"],
    )
    write(fixtures_copy, "interactions", interactions)

    # when
    counts = load_reference_data(fixtures_copy)

    # then
    assert (counts["created"], counts["updated"]) == (0, 1)
    assert DrugInteraction.objects.count() == len(interactions)


def _unknown_key(data: list[dict[str, Any]]) -> None:
    data[3]["colour"] = "red"


def _bad_system(data: list[dict[str, Any]]) -> None:
    data[3]["system"] = "http://snomed.info/sct"


def _unknown_system(data: list[dict[str, Any]]) -> None:
    data[3]["system"] = "http://example.org/codes"


def _missing_field(data: list[dict[str, Any]]) -> None:
    del data[3]["display"]


def _wrong_type(data: list[dict[str, Any]]) -> None:
    data[3]["low"] = "low"


def _wrong_check_digit(data: list[dict[str, Any]]) -> None:
    data[3]["code"] = "8310-6"


def _duplicate(data: list[dict[str, Any]]) -> None:
    data[3]["code"] = data[0]["code"]


def _vital_without_unit(data: list[dict[str, Any]]) -> None:
    del data[3]["unit"]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (_unknown_key, "unknown key(s) colour"),
        (_bad_system, "does not belong here"),
        (_unknown_system, "system Value 'http://example.org/codes' is not a valid choice"),
        (_missing_field, "missing required field(s) display"),
        (_wrong_type, "low must be a number"),
        (_wrong_check_digit, "wrong check digit"),
        (_duplicate, "duplicates entry 0"),
        (_vital_without_unit, "needs a UCUM unit"),
    ],
)
def test_an_invalid_entry_is_named_and_nothing_is_written(
    db: None,
    fixtures_copy: Path,
    break_it: Callable[[list[dict[str, Any]]], None],
    expected: str,
) -> None:
    # given: loinc.json is read first; a broken entry there must not stop the others being checked
    data = read("loinc", fixtures_copy)
    break_it(data)
    write(fixtures_copy, "loinc", data)

    # when
    with pytest.raises(ReferenceDataError) as raised:
        load_reference_data(fixtures_copy)

    # then
    message = str(raised.value)
    assert "loinc.json entry 3" in message
    assert expected in message
    assert row_counts() == (0, 0, 0)


def test_a_bad_last_file_keeps_the_earlier_ones_out_too(db: None, fixtures_copy: Path) -> None:
    # given
    interactions = read("interactions", fixtures_copy)
    interactions[-1]["severity"] = "terrible"
    write(fixtures_copy, "interactions", interactions)

    # when
    with pytest.raises(
        ReferenceDataError, match=rf"interactions.json entry {len(interactions) - 1}"
    ):
        load_reference_data(fixtures_copy)

    # then
    assert row_counts() == (0, 0, 0)


def test_an_invalid_file_leaves_loaded_rows_as_they_were(db: None, fixtures_copy: Path) -> None:
    # given
    load_reference_data()
    before = snapshot()
    medications = read("medications", fixtures_copy)
    medications[0]["form"] = "sirop"
    medications[1]["atc_code"] = "J01C"  # a class, not a substance
    write(fixtures_copy, "medications", medications)

    # when
    with pytest.raises(ReferenceDataError, match="medications.json entry 1: atc_code"):
        load_reference_data(fixtures_copy)

    # then
    assert snapshot() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"code": "8867-4"}', "must hold a JSON list"),
        ('[{"code": "8867-4",}]', "invalid JSON at line 1"),
        ('["8867-4"]', "entry 0: must be an object"),
    ],
)
def test_a_malformed_file_is_rejected(
    db: None, fixtures_copy: Path, content: str, expected: str
) -> None:
    (fixtures_copy / "snomed.json").write_text(content, "utf-8")

    with pytest.raises(ReferenceDataError, match="snomed.json") as raised:
        load_reference_data(fixtures_copy)

    assert expected in str(raised.value)
    assert row_counts() == (0, 0, 0)


def test_a_missing_file_is_an_error(db: None, fixtures_copy: Path) -> None:
    (fixtures_copy / "icd10.json").unlink()

    with pytest.raises(ReferenceDataError, match="icd10.json: file not found"):
        load_reference_data(fixtures_copy)


# ---------------------------------------------------------------------------------------------
# Content


def test_every_vital_sign_and_lab_has_a_unit_and_an_explanation() -> None:
    measured = [c for c in read("loinc") if c["category"] in {"vital-signs", "laboratory"}]
    assert len(measured) >= 30
    for concept in measured:
        assert concept.get("unit"), concept["code"]
        for field in ("explanation", "explanation_fr", "explanation_de"):
            assert concept.get(field), (concept["code"], field)
        if "low" in concept and "high" in concept:
            assert concept["low"] < concept["high"], concept["code"]


def test_the_codes_other_modules_rely_on_are_present() -> None:
    loinc = {c["code"]: c for c in read("loinc")}
    vitals = {"8867-4", "8480-6", "8462-4", "8310-5", "9279-1", "59408-5", "29463-7", "8302-2"}
    assert vitals <= {code for code, c in loinc.items() if c["category"] == "vital-signs"}
    documents = {"11506-3", "11488-4", "18842-5", "34109-9", "11502-2", "18748-4", "72170-4"}
    assert documents <= {code for code, c in loinc.items() if c["category"] == "document"}
    assert {"58410-2", "24323-8", "24331-1", "36643-5", "11524-6"} <= {
        code for code, c in loinc.items() if c["category"] == "report"
    }
    # Swiss laboratories report in SI units: the substance-concentration codes carry them.
    assert loinc["14682-9"]["unit"] == "umol/L"
    assert loinc["14749-6"]["unit"] == "mmol/L"
    assert "29463-7" not in {c for c, v in loinc.items() if "low" in v or "high" in v}


def test_codes_and_names_are_unique() -> None:
    for name in SYSTEMS:
        codes = [c["code"] for c in read(name)]
        assert len(codes) == len(set(codes)), name
    names = [m["name"] for m in read("medications")]
    assert len(names) == len(set(names))
    pairs = [frozenset((i["atc_a"], i["atc_b"])) for i in read("interactions")]
    assert len(pairs) == len(set(pairs))


def test_sensitive_problems_carry_their_category() -> None:
    sensitivity = {c["code"]: c.get("sensitivity", "normal") for c in read("icd10")}
    assert {code: sensitivity[code] for code in ("F32.9", "F41.1", "F10.2", "F17.2")} == {
        "F32.9": "mental_health",
        "F41.1": "mental_health",
        "F10.2": "addiction",
        "F17.2": "addiction",
    }
    assert sensitivity["A56.0"] == sensitivity["B20"] == "sexual_health"
    assert sensitivity["I10"] == sensitivity["E11.9"] == "normal"
    # Every mental and behavioural disorder (chapter V) is sensitive.
    assert all(level != "normal" for code, level in sensitivity.items() if code.startswith("F"))


def test_every_interaction_concerns_a_listed_medication() -> None:
    codes = {m["atc_code"] for m in read("medications")}
    for interaction in read("interactions"):
        sides = (interaction["atc_a"], interaction["atc_b"])
        assert any(c.startswith(side) for side in sides for c in codes), sides


def test_the_loaded_data_drives_the_prescription_checks(
    db: None, make_patient: Callable[..., Patient], clinician: Any
) -> None:
    # given
    load_reference_data()
    patient = make_patient()
    penicillin = Concept.objects.get(system=CodeSystem.SNOMED, code="764146007")
    AllergyIntolerance.objects.create(
        patient=patient,
        substance=penicillin,
        category="medication",
        criticality="high",
        recorded_by=clinician,
    )
    amoxicillin = Medication.objects.get(name="Amoxicilline 1000 mg cp")
    phenprocoumon = Medication.objects.get(name="Phenprocoumone 3 mg cp")
    ibuprofen = Medication.objects.get(name="Ibuprofène 400 mg cp")

    # when
    warnings = check_prescription(
        patient,
        [{"medication": amoxicillin}, {"medication": phenprocoumon}, {"medication": ibuprofen}],
    )

    # then
    kinds = {(w.kind, w.severity) for w in warnings}
    assert ("allergy", "contraindicated") in kinds
    assert ("interaction", "major") in kinds


# ---------------------------------------------------------------------------------------------
# Command


def test_the_command_prints_the_counts_as_one_json_line(db: None) -> None:
    out = io.StringIO()

    call_command("load_reference_data", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    counts = json.loads(lines[0])
    assert counts["loinc"] == len(read("loinc"))
    assert counts["created"] == Concept.objects.count() + Medication.objects.count() + (
        DrugInteraction.objects.count()
    )


def test_the_command_reports_an_invalid_directory(db: None, tmp_path: Path) -> None:
    write(tmp_path, "loinc", [{"system": "http://loinc.org"}])

    with pytest.raises(CommandError, match="loinc.json entry 0: missing required field"):
        call_command("load_reference_data", directory=str(tmp_path), stdout=io.StringIO())
    assert row_counts() == (0, 0, 0)
