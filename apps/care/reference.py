"""Care reference data from fixtures/care/: questionnaires, pathways, decision-support rules.

`load_care_reference` loads, in this order and in one transaction, the questionnaires (the
follow-up services), the pathways (here; they name questionnaires by code) and the
decision-support rules (the support services). Every file is checked before it is written and
an invalid one raises `ReferenceDataError` with every problem listed: nothing is written then.

pathways.json is a list of pathways; each names its lines in full:
    {"code", "name", "name_en", "name_de", "description", "description_en", "description_de",
     "follow_up_days", "medication_reminders", "satisfaction_survey" (questionnaire code),
     "active",
     "goals": [{"description", "description_en", "description_de", "measure" (LOINC),
                "target_low", "target_high", "unit", "due_after_days"}],
     "activities": [{"title", "title_en", "title_de", "detail", "kind", "role", "task_kind",
                     "offset_days", "repeat_days"}],
     "thresholds": [{"code" (LOINC of a device measurement), "kind" (above, below, rise, fall),
                     "limit", "window_hours" (rise, fall), "hysteresis", "n_of", "m_of",
                     "severity"}],  (no window or hysteresis: the devices defaults)
     "questionnaires": [{"questionnaire" (code), "days": [1, 3, 7]}]}
A pathway whose content changed is updated, its lines replaced, and its version goes up by
one (plans keep the version they were built from); an unchanged one is left as it is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import translation

from apps.accounts.models import CLINICAL_ROLES
from apps.devices.models import Severity, ThresholdRule
from apps.records.reference import LOINC_RE, ReferenceDataError, luhn_check_digit

from .models import (
    Pathway,
    PathwayActivity,
    PathwayGoal,
    PathwayQuestionnaire,
    PathwayThreshold,
    Questionnaire,
)
from .models.common import ActivityKind, TaskKind
from .services import CareError
from .services.pathways import check_threshold, rule_fields

PATHWAYS_FILE = "pathways.json"
MAX_DAYS = 3650
Entry = dict[str, Any]


def default_directory() -> Path:
    return Path(settings.BASE_DIR) / "fixtures" / "care"


# ---------------------------------------------------------------------------------------------
# Checking one entry: each helper reads one key, notes a problem and returns a clean value.


@dataclass
class _Reader:
    raw: dict[str, Any]
    where: str
    problems: list[str]

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.where}: {key} {text}")

    def text(self, key: str, maximum: int, *, required: bool = False) -> str:
        value = self.raw.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.problem(key, "must be text")
            return ""
        value = value.strip()
        if required and not value:
            self.problem(key, "is required")
        elif len(value) > maximum:
            self.problem(key, f"is longer than {maximum} characters")
        return value

    def whole(self, key: str, low: int, high: int, *, default: int | None = None) -> int | None:
        value = self.raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(key, f"must be a whole number from {low} to {high}")
            return default
        return value

    def decimal(self, key: str) -> Decimal | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            self.problem(key, "must be a number")
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.problem(key, "must be a number")
            return None
        if not number.is_finite() or abs(number) >= Decimal(10**6):
            self.problem(key, "must be a finite number below 1000000")
            return None
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def choice(self, key: str, choices: Any, *, blank: bool = False) -> str:
        value = self.raw.get(key, "")
        if blank and value in ("", None):
            return ""
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(sorted(str(c) for c in choices))}")
            return ""
        return str(value)

    def unknown(self, allowed: set[str]) -> None:
        for key in sorted(set(self.raw) - allowed):
            self.problem(key, "is not a known key")


def _loinc_valid(code: str) -> bool:
    match = LOINC_RE.match(code)
    return bool(match) and int(match.group(2)) == luhn_check_digit(match.group(1))  # type: ignore[union-attr]


def _lines(reader: _Reader, key: str) -> list[tuple[int, dict[str, Any]]]:
    value = reader.raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        reader.problem(key, "must be a list of objects")
        return []
    return list(enumerate(value))


def _goal(reader: _Reader) -> Entry:
    reader.unknown(
        {"description", "description_en", "description_de", "measure"}
        | {"target_low", "target_high", "unit", "due_after_days"}
    )
    goal: Entry = {
        "description": reader.text("description", 300, required=True),
        "description_en": reader.text("description_en", 300),
        "description_de": reader.text("description_de", 300),
        "measure": reader.text("measure", 20),
        "target_low": reader.decimal("target_low"),
        "target_high": reader.decimal("target_high"),
        "unit": reader.text("unit", 30),
        "due_after_days": reader.whole("due_after_days", 0, MAX_DAYS),
    }
    if goal["measure"] and not _loinc_valid(goal["measure"]):
        reader.problem("measure", f"{goal['measure']!r} is not a valid LOINC code")
    low, high = goal["target_low"], goal["target_high"]
    if (low is not None or high is not None) and not goal["measure"]:
        reader.problem("target_low", "needs a measure")
    if low is not None and high is not None and low > high:
        reader.problem("target_high", "is below target_low")
    return goal


def _activity(reader: _Reader) -> Entry:
    reader.unknown(
        {"title", "title_en", "title_de", "detail", "kind", "role", "task_kind"}
        | {"offset_days", "repeat_days"}
    )
    return {
        "title": reader.text("title", 200, required=True),
        "title_en": reader.text("title_en", 200),
        "title_de": reader.text("title_de", 200),
        "detail": reader.text("detail", 500),
        "kind": reader.choice("kind", ActivityKind.values),
        "role": reader.choice("role", {str(role) for role in CLINICAL_ROLES}, blank=True),
        "task_kind": reader.choice("task_kind", TaskKind.values, blank=True),
        "offset_days": reader.whole("offset_days", 0, MAX_DAYS, default=0),
        "repeat_days": reader.whole("repeat_days", 1, MAX_DAYS),
    }


def _threshold(reader: _Reader) -> Entry:
    reader.unknown(
        {"code", "kind", "limit", "window_hours", "hysteresis", "n_of", "m_of"} | {"severity"}
    )
    hours = reader.whole("window_hours", 1, 24 * 30)
    threshold: Entry = {
        "code": reader.text("code", 20, required=True),
        "kind": reader.choice("kind", ThresholdRule.Kind.values),
        "limit": reader.decimal("limit"),
        "window": dt.timedelta(hours=hours) if hours is not None else None,
        "hysteresis": reader.decimal("hysteresis"),
        "n_of": reader.whole("n_of", 1, 50, default=1),
        "m_of": reader.whole("m_of", 1, 50, default=1),
        "severity": Severity.WARNING.value,
    }
    if threshold["window"] is not None and threshold["kind"] not in ("rise", "fall"):
        reader.problem("window_hours", "is for rise and fall rules only")
    if "severity" in reader.raw:
        threshold["severity"] = reader.choice("severity", Severity.values)
    if threshold["limit"] is None:
        reader.problem("limit", "is required")
    elif threshold["kind"] and threshold["code"]:
        try:
            check_threshold(
                rule_fields(
                    threshold["code"],
                    threshold["kind"],
                    threshold["limit"],
                    threshold["n_of"] or 1,
                    threshold["m_of"] or 1,
                    threshold["severity"] or Severity.WARNING.value,
                    threshold["window"],
                    threshold["hysteresis"],
                )
            )
        except CareError as error:
            reader.problems.append(f"{reader.where}: {error}")
    return threshold


def _questionnaire(reader: _Reader) -> Entry:
    reader.unknown({"questionnaire", "days"})
    days = reader.raw.get("days")
    if (
        not isinstance(days, list)
        or not days
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DAYS for d in days
        )
    ):
        reader.problem("days", f"must be a list of whole days from 0 to {MAX_DAYS}")
        days = []
    return {
        "questionnaire": reader.text("questionnaire", 40, required=True),
        "days": sorted(set(days)),
    }


LINE_KINDS: dict[str, Callable[[_Reader], Entry]] = {
    "goals": _goal,
    "activities": _activity,
    "thresholds": _threshold,
    "questionnaires": _questionnaire,
}
PATHWAY_KEYS = {
    "code",
    "name",
    "name_en",
    "name_de",
    "description",
    "description_en",
    "description_de",
    "follow_up_days",
    "medication_reminders",
    "satisfaction_survey",
    "active",
    *LINE_KINDS,
}


def _pathway(raw: dict[str, Any], where: str, problems: list[str]) -> Entry:
    reader = _Reader(raw, where, problems)
    reader.unknown(PATHWAY_KEYS)
    code = reader.text("code", 40, required=True)
    if code and not all(c.isascii() and (c.isalnum() or c in "-_") for c in code):
        reader.problem("code", "may hold only letters, digits, hyphens and underscores")
    entry: Entry = {
        "code": code,
        "name": reader.text("name", 120, required=True),
        "name_en": reader.text("name_en", 120),
        "name_de": reader.text("name_de", 120),
        "description": reader.text("description", 5000),
        "description_en": reader.text("description_en", 5000),
        "description_de": reader.text("description_de", 5000),
        "follow_up_days": reader.whole("follow_up_days", 1, MAX_DAYS),
        "medication_reminders": reader.flag("medication_reminders", True),
        "satisfaction_survey": reader.text("satisfaction_survey", 40) or None,
        "active": reader.flag("active", True),
    }
    for key, clean in LINE_KINDS.items():
        entry[key] = [
            clean(_Reader(line, f"{where} {key}[{index}]", problems))
            for index, line in _lines(reader, key)
        ]
    return entry


def check_pathways(directory: str | Path | None = None) -> list[Entry]:
    """The cleaned pathways of pathways.json; ReferenceDataError listing every problem."""
    source = Path(directory or default_directory()) / PATHWAYS_FILE
    try:
        data = json.loads(source.read_text(encoding="utf-8"), parse_float=Decimal)
    except FileNotFoundError:
        raise ReferenceDataError([f"{source}: file not found"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceDataError([f"{PATHWAYS_FILE}: not valid JSON ({exc})"]) from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ReferenceDataError([f"{PATHWAYS_FILE}: must hold a JSON list of objects"])
    problems: list[str] = []
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    # The devices' validation messages follow the active language; the file's are English.
    with translation.override("en"):
        for index, raw in enumerate(data):
            where = f"{PATHWAYS_FILE} entry {index}"
            entry = _pathway(raw, where, problems)
            if entry["code"] in seen:
                problems.append(
                    f"{where}: duplicates entry {seen[entry['code']]} ({entry['code']})"
                )
            seen.setdefault(entry["code"], index)
            entries.append(entry)
    if problems:
        raise ReferenceDataError(problems)
    return entries


# ---------------------------------------------------------------------------------------------
# Writing


def _questionnaire_codes(entries: list[Entry]) -> dict[str, Questionnaire]:
    """The questionnaires the pathways name (loaded just before); a missing one is a problem."""
    wanted = {entry["satisfaction_survey"] for entry in entries if entry["satisfaction_survey"]}
    wanted |= {line["questionnaire"] for entry in entries for line in entry["questionnaires"]}
    found = {q.code: q for q in Questionnaire.objects.filter(code__in=wanted)}
    problems = [
        f"{PATHWAYS_FILE} pathway {entry['code']}: questionnaire {code!r} does not exist"
        for entry in entries
        for code in [entry["satisfaction_survey"]]
        + [q["questionnaire"] for q in entry["questionnaires"]]
        if code and code not in found
    ]
    if problems:
        raise ReferenceDataError(sorted(set(problems)))
    return found


def _stored(pathway: Pathway) -> Entry:
    """The pathway as it is in the database, in the shape of a cleaned file entry."""
    entry: Entry = {
        name: getattr(pathway, name)
        for name in PATHWAY_KEYS - set(LINE_KINDS) - {"satisfaction_survey"}
    }
    entry["satisfaction_survey"] = (
        pathway.satisfaction_survey.code if pathway.satisfaction_survey else None
    )
    entry["goals"] = [
        {name: getattr(goal, name) for name in GOAL_FIELDS}
        for goal in pathway.goals.order_by("order", "pk")
    ]
    entry["activities"] = [
        {name: getattr(activity, name) for name in ACTIVITY_FIELDS}
        for activity in pathway.activities.order_by("order", "pk")
    ]
    entry["thresholds"] = sorted(
        ({name: getattr(t, name) for name in THRESHOLD_FIELDS} for t in pathway.thresholds.all()),
        key=_threshold_key,
    )
    entry["questionnaires"] = [
        {"questionnaire": line.questionnaire.code, "days": line.days}
        for line in pathway.questionnaires.select_related("questionnaire").order_by("pk")
    ]
    return entry


GOAL_FIELDS = (
    "description",
    "description_en",
    "description_de",
    "measure",
    "target_low",
    "target_high",
    "unit",
    "due_after_days",
)
ACTIVITY_FIELDS = (
    "title",
    "title_en",
    "title_de",
    "detail",
    "kind",
    "role",
    "task_kind",
    "offset_days",
    "repeat_days",
)
THRESHOLD_FIELDS = ("code", "kind", "limit", "window", "hysteresis", "n_of", "m_of", "severity")


def _threshold_key(line: Entry) -> tuple[str, str, Decimal]:
    return (line["code"], line["kind"], line["limit"])


def _normalized(entry: Entry) -> Entry:
    return {**entry, "thresholds": sorted(entry["thresholds"], key=_threshold_key)}


def _write_lines(pathway: Pathway, entry: Entry, questionnaires: dict[str, Questionnaire]) -> None:
    pathway.goals.all().delete()
    pathway.activities.all().delete()
    pathway.thresholds.all().delete()
    pathway.questionnaires.all().delete()
    PathwayGoal.objects.bulk_create(
        PathwayGoal(pathway=pathway, order=index, **goal)
        for index, goal in enumerate(entry["goals"])
    )
    PathwayActivity.objects.bulk_create(
        PathwayActivity(pathway=pathway, order=index, **activity)
        for index, activity in enumerate(entry["activities"])
    )
    PathwayThreshold.objects.bulk_create(
        PathwayThreshold(pathway=pathway, **threshold) for threshold in entry["thresholds"]
    )
    PathwayQuestionnaire.objects.bulk_create(
        PathwayQuestionnaire(
            pathway=pathway, questionnaire=questionnaires[line["questionnaire"]], days=line["days"]
        )
        for line in entry["questionnaires"]
    )


def _write_pathways(entries: list[Entry]) -> dict[str, int]:
    questionnaires = _questionnaire_codes(entries)
    existing = {p.code: p for p in Pathway.objects.select_related("satisfaction_survey")}
    created = updated = unchanged = 0
    for entry in entries:
        fields = {
            name: entry[name] for name in PATHWAY_KEYS - set(LINE_KINDS) - {"satisfaction_survey"}
        }
        survey = entry["satisfaction_survey"]
        fields["satisfaction_survey"] = questionnaires[survey] if survey else None
        pathway = existing.get(entry["code"])
        if pathway is None:
            pathway = Pathway.objects.create(**fields)
            _write_lines(pathway, entry, questionnaires)
            created += 1
            continue
        if _stored(pathway) == _normalized(entry):
            unchanged += 1
            continue
        for name, value in fields.items():
            setattr(pathway, name, value)
        pathway.version += 1
        pathway.save()
        _write_lines(pathway, entry, questionnaires)
        updated += 1
    return {
        "pathways": len(entries),
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
    }


def load_pathways(directory: str | Path | None = None) -> dict[str, int]:
    """Upsert the pathways of pathways.json (their questionnaires must exist already)."""
    entries = check_pathways(directory)
    with transaction.atomic():
        return _write_pathways(entries)


def load_care_reference(directory: str | Path | None = None) -> dict[str, Any]:
    """Questionnaires, then pathways, then decision-support rules; all or nothing.

    Returns the counts of each part. Raises ReferenceDataError, writing nothing, when any file
    is invalid.
    """
    from .services.questionnaires import load_reference_questionnaires
    from .services.support.rules import load_reference_rules

    folder = Path(directory or default_directory())
    # The pathways file is checked first: a bad one stops the load before anything is written.
    entries = check_pathways(folder)
    with transaction.atomic():
        questionnaires = load_reference_questionnaires(folder)
        pathways = _write_pathways(entries)
        rules = load_reference_rules(folder)
    return {"questionnaires": questionnaires, "pathways": pathways, "rules": rules}
