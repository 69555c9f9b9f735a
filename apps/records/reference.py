"""Reference data: codes, medications and interactions from fixtures/reference/*.json.

Each file is a JSON list of objects whose keys are model fields (our own format, not Django's
fixture format). Entries are upserted by natural key: Concept by (system, code), Medication by
name, DrugInteraction by (atc_a, atc_b). A field left out of an entry takes the model default,
so the file is the whole truth about the rows it names; rows it does not name are left alone
(records point to them). Every file is validated before anything is written, and everything is
written in one transaction: an invalid file leaves the database as it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import translation

from .models import CodeSystem, Concept, DrugInteraction, Medication

Entry = dict[str, Any]
Key = tuple[str, ...]


class ReferenceDataError(ValueError):
    """One or more reference files are invalid; nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"- {problem}" for problem in problems)
        super().__init__(f"Invalid reference data ({len(problems)} problem(s)):\n{listed}")


# ---------------------------------------------------------------------------------------------
# Code formats. Check digits catch a mistyped code before it reaches a patient's record.

LOINC_RE = re.compile(r"^(\d{1,7})-(\d)$")
SNOMED_RE = re.compile(r"^[1-9]\d{5,17}$")
ICD10_RE = re.compile(r"^[A-Z]\d{2}(\.\d{1,2})?$")
# ATC levels: A, A10, A10B, A10BA, A10BA02.
ATC_CLASS_RE = re.compile(r"^[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?$")
ATC_SUBSTANCE_RE = re.compile(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$")

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def luhn_check_digit(digits: str) -> int:
    """The LOINC check digit (mod 10, as in Luhn) of the digits before the hyphen."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10


def verhoeff_valid(number: str) -> bool:
    """True when the last digit of `number` is its Verhoeff check digit (SNOMED CT ids)."""
    check = 0
    for position, char in enumerate(reversed(number)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(char)]]
    return check == 0


def check_code(system: str, code: str) -> str:
    """Why `code` is not a well-formed code of `system`, or "" when it is."""
    if system == CodeSystem.LOINC:
        match = LOINC_RE.match(code)
        if not match:
            return f"LOINC code {code!r} is not of the form 12345-6"
        if luhn_check_digit(match.group(1)) != int(match.group(2)):
            return f"LOINC code {code!r} has a wrong check digit"
    elif system == CodeSystem.SNOMED:
        if not SNOMED_RE.match(code):
            return f"SNOMED CT code {code!r} is not a 6 to 18 digit identifier"
        if code[-3:-1] not in {"00", "10"}:
            return f"SNOMED CT code {code!r} does not identify a concept"
        if not verhoeff_valid(code):
            return f"SNOMED CT code {code!r} has a wrong check digit"
    elif system == CodeSystem.ICD10:
        if not ICD10_RE.match(code):
            return f"ICD-10 code {code!r} is not of the form A00 or A00.0"
    elif system == CodeSystem.ATC and not ATC_CLASS_RE.match(code):
        return f"ATC code {code!r} is not an ATC class"
    return ""


# ---------------------------------------------------------------------------------------------
# Files


def _concept_checks(spec: ReferenceFile, entry: Entry) -> list[str]:
    problems = []
    if entry["system"] != spec.system:
        problems.append(f"system {entry['system']!r} does not belong here (expected {spec.system})")
    elif reason := check_code(entry["system"], entry["code"]):
        problems.append(reason)
    if entry["category"] not in spec.categories:
        allowed = ", ".join(sorted(spec.categories))
        problems.append(f"category {entry['category']!r} is not one of {allowed}")
    if entry["category"] in {"vital-signs", "laboratory"} and not entry["unit"]:
        problems.append(f"a {entry['category']} code needs a UCUM unit")
    low, high = entry["low"], entry["high"]
    if low is not None and high is not None and low > high:
        problems.append(f"low {low} is above high {high}")
    if entry["atc_prefix"] and not ATC_CLASS_RE.match(entry["atc_prefix"]):
        problems.append(f"atc_prefix {entry['atc_prefix']!r} is not an ATC class")
    return problems


def _medication_checks(spec: ReferenceFile, entry: Entry) -> list[str]:
    if not ATC_SUBSTANCE_RE.match(entry["atc_code"]):
        return [f"atc_code {entry['atc_code']!r} is not a complete ATC code (e.g. J01CA04)"]
    return []


def _interaction_checks(spec: ReferenceFile, entry: Entry) -> list[str]:
    return [
        f"{name} {entry[name]!r} is not an ATC class"
        for name in ("atc_a", "atc_b")
        if not ATC_CLASS_RE.match(entry[name])
    ]


@dataclass(frozen=True)
class ReferenceFile:
    """One fixture file: its model, natural key and the checks beyond the model's own."""

    name: str
    model: type[models.Model]
    key: tuple[str, ...]
    checks: Callable[[ReferenceFile, Entry], list[str]]
    system: str = ""
    categories: frozenset[str] = frozenset()
    symmetric: bool = False  # the key's parts may come in either order

    @property
    def filename(self) -> str:
        return f"{self.name}.json"

    def key_of(self, values: Mapping[str, Any]) -> Key:
        return tuple(str(values[name]) for name in self.key)

    def identity(self, values: Mapping[str, Any]) -> Hashable:
        key = self.key_of(values)
        return frozenset(key) if self.symmetric else key

    def existing(self) -> dict[Hashable, models.Model]:
        rows = self.model._default_manager.all()
        if self.system:
            rows = rows.filter(system=self.system)
        return {self.identity(vars(row)): row for row in rows}


FILES: tuple[ReferenceFile, ...] = (
    ReferenceFile(
        "loinc",
        Concept,
        ("system", "code"),
        _concept_checks,
        CodeSystem.LOINC,
        frozenset({"vital-signs", "laboratory", "report", "document"}),
    ),
    ReferenceFile(
        "icd10",
        Concept,
        ("system", "code"),
        _concept_checks,
        CodeSystem.ICD10,
        frozenset({"problem"}),
    ),
    ReferenceFile(
        "snomed",
        Concept,
        ("system", "code"),
        _concept_checks,
        CodeSystem.SNOMED,
        frozenset({"allergen"}),
    ),
    ReferenceFile("medications", Medication, ("name",), _medication_checks),
    ReferenceFile(
        "interactions", DrugInteraction, ("atc_a", "atc_b"), _interaction_checks, symmetric=True
    ),
)


def default_directory() -> Path:
    return Path(settings.BASE_DIR) / "fixtures" / "reference"


# ---------------------------------------------------------------------------------------------
# Validation


def _fields(model: type[models.Model]) -> dict[str, models.Field[Any, Any]]:
    return {f.name: f for f in model._meta.concrete_fields if not f.primary_key}


def _clean_value(field: models.Field[Any, Any], value: Any) -> tuple[Any, str]:
    """The value as the model stores it, or the reason it is not acceptable."""
    if value is None:
        return None, "" if field.null else "must not be null"
    if isinstance(field, models.CharField | models.TextField) and not isinstance(value, str):
        return None, f"must be a string, not {type(value).__name__}"
    if isinstance(field, models.DecimalField) and (
        isinstance(value, bool) or not isinstance(value, int | Decimal)
    ):
        return None, f"must be a number, not {type(value).__name__}"
    try:
        return field.clean(value, None), ""
    except ValidationError as exc:
        return None, " ".join(str(message) for message in exc.messages)


def _clean_entry(spec: ReferenceFile, raw: Any, where: str) -> tuple[Entry | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{where}: must be an object, not {type(raw).__name__}"]
    fields = _fields(spec.model)
    problems = []
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in raw and not f.blank and not f.null and not f.has_default()
    ]
    if missing:
        problems.append(f"{where}: missing required field(s) {', '.join(missing)}")
    entry: Entry = {}
    for name, f in fields.items():
        if name not in raw:
            entry[name] = f.get_default()
            continue
        entry[name], reason = _clean_value(f, raw[name])
        if reason:
            problems.append(f"{where}: {name} {reason}")
    if problems:
        return None, problems
    return entry, [f"{where}: {reason}" for reason in spec.checks(spec, entry)]


def _read(spec: ReferenceFile, directory: Path) -> tuple[list[Entry], list[str]]:
    path = directory / spec.filename
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except FileNotFoundError:
        return [], [f"{spec.filename}: file not found in {directory}"]
    except UnicodeDecodeError:
        return [], [f"{spec.filename}: not UTF-8 text"]
    except json.JSONDecodeError as exc:
        return [], [f"{spec.filename}: invalid JSON at line {exc.lineno}: {exc.msg}"]
    if not isinstance(data, list):
        return [], [f"{spec.filename}: must hold a JSON list of objects"]
    entries: list[Entry] = []
    problems: list[str] = []
    seen: dict[Hashable, int] = {}
    for index, raw in enumerate(data):
        where = f"{spec.filename} entry {index}"
        entry, entry_problems = _clean_entry(spec, raw, where)
        problems += entry_problems
        if entry is None or entry_problems:
            continue
        identity = spec.identity(entry)
        if identity in seen:
            key = " / ".join(spec.key_of(entry))
            problems.append(f"{where}: duplicates entry {seen[identity]} ({key})")
            continue
        seen[identity] = index
        entries.append(entry)
    return entries, problems


def check_reference_data(directory: str | Path | None = None) -> dict[str, list[Entry]]:
    """The cleaned entries of every file, by file name; raises ReferenceDataError if any is bad."""
    folder = Path(directory) if directory is not None else default_directory()
    loaded: dict[str, list[Entry]] = {}
    problems: list[str] = []
    # Django's own validation messages would follow the active language; ours are English.
    with translation.override("en"):
        for spec in FILES:
            entries, file_problems = _read(spec, folder)
            loaded[spec.name] = entries
            problems += file_problems
    if problems:
        raise ReferenceDataError(problems)
    return loaded


# ---------------------------------------------------------------------------------------------
# Loading


def load_reference_data(directory: str | Path | None = None) -> dict[str, int]:
    """Upsert every reference file in one transaction (idempotent).

    Returns the number of entries of each file, then how many rows were created, updated and
    left unchanged. Raises ReferenceDataError, writing nothing, when any file is invalid.
    """
    loaded = check_reference_data(directory)
    counts = {spec.name: len(loaded[spec.name]) for spec in FILES}
    created = updated = unchanged = 0
    with transaction.atomic():
        for spec in FILES:
            existing = spec.existing()
            new_rows = []
            for entry in loaded[spec.name]:
                row = existing.get(spec.identity(entry))
                if row is None:
                    new_rows.append(spec.model(**entry))
                    continue
                changed = [name for name, value in entry.items() if getattr(row, name) != value]
                if not changed:
                    unchanged += 1
                    continue
                for name in changed:
                    setattr(row, name, entry[name])
                row.save(update_fields=changed)
                updated += 1
            spec.model._default_manager.bulk_create(new_rows)
            created += len(new_rows)
    return {**counts, "created": created, "updated": updated, "unchanged": unchanged}
