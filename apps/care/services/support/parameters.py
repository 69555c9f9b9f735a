"""The parameters of each kind of decision-support rule, and their validation.

A rule's clinical content (codes, limits, days, drug classes, labs) lives in `Rule.parameters`;
the code only knows the kinds. Codes are LOINC (measurements, labs) and ATC (drugs, classes by
prefix). Numbers are in the canonical unit of the measurement (mm[Hg], mmol/L, kg, µmol/L).

`sustained` — a measurement's daily mean above a target on each of the last `days` complete
days, on a treatment that did not change during those days (and today):
    code                  LOINC of the measurement, e.g. "8480-6" (systolic blood pressure)
    above                 the target: every daily mean must be strictly above it, e.g. 135
    days                  how many days (2–60), e.g. 7
    min_readings_per_day  readings a day needs to count (1–24, default 1)
    atc_classes           the treatment: ATC classes, e.g. ["C02", "C03", "C07", "C08", "C09"];
                          the patient must take at least one drug of them, unchanged (no start,
                          stop or dose change) from the first day of the window to today

`drift` — the recent readings drift upward, and a lab was not done lately:
    codes                 LOINC of the readings, pooled, e.g. ["15074-8", "14749-6"]
    window_days           length of the recent window (2–90); the previous window is as long
    rise_above            fires when the recent mean exceeds the previous one by more (or null)
    mean_above            fires when the recent mean exceeds this (or null); one of them is needed
    min_readings          readings each window needs (1–1000, default 3)
    lab                   LOINC of the exam to propose, e.g. "4548-4" (HbA1c)
    lab_within_days       silent when a result of `lab` is this recent (1–3650)

`lab-after-drug` — a drug was started and its follow-up labs were not done since:
    atc_classes           drugs concerned, e.g. ["C09A", "C09B", "C09C", "C09D", "C03DA"]
    min_days, max_days    started between min_days and max_days days ago (0 ≤ min < max ≤ 365)
    labs                  LOINC of the labs, e.g. ["2823-3", "14682-9"]; fires while one of them
                          has no result after the day the drug was started

`interaction` — two active drugs that interact (records `DrugInteraction`, either order):
    min_severity          "minor", "moderate", "major" or "contraindicated" (default "major")

`allergy` — an active drug of the ATC class of an active allergy's substance:
    criticalities         which allergies count: any of "low", "high", "unable-to-assess"
                          (default all three)

`dose-range` — the daily dose of a drug (sum of its active prescription lines: dose × times a
day) outside its range, with stricter limits by age, weight or renal function:
    atc                   ATC code or class of the drug, e.g. "N02BE01" (paracetamol)
    max_mg_per_day        the usual maximum (mg/day), e.g. 4000
    min_mg_per_day        the usual minimum (mg/day, optional)
    limits                stricter limits, each {"when": {...}, and one or more of
                          "max_mg_per_day", "max_mg_per_kg_per_day", "contraindicated": true};
                          "when" holds all of its conditions among age_at_least, age_below,
                          weight_below, weight_at_least (kg), egfr_below, egfr_at_least
                          (mL/min/1.73 m²). A condition whose data is unknown does not hold.
    weight_codes          LOINC of body weight (default ["29463-7"])
    egfr_codes            LOINC of eGFR (default ["62238-1"])
    creatinine_codes      LOINC of serum creatinine in µmol/L (default ["14682-9"]); used with
                          CKD-EPI 2021 when it is more recent than the last eGFR
    data_max_age_days     weight and renal results older than this are ignored (default 365)
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.records.models import AllergyIntolerance, CodeSystem
from apps.records.reference import check_code

from ...models import Rule

Kind = Rule.Kind

# The `{placeholders}` each kind fills in a rule's reason (Rule.rationale).
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    Kind.SUSTAINED: (
        "label",
        "target",
        "unit",
        "days",
        "mean",
        "lowest_day",
        "readings",
        "treatment",
    ),
    Kind.DRIFT: (
        "label",
        "unit",
        "recent_mean",
        "previous_mean",
        "rise",
        "window_days",
        "readings",
        "lab",
        "lab_days",
        "last_lab",
    ),
    Kind.LAB_AFTER_DRUG: ("drug", "started", "days_since", "labs"),
    Kind.INTERACTION: ("drug", "other", "severity", "description"),
    Kind.ALLERGY: ("drug", "substance", "criticality", "reaction"),
    Kind.DOSE_RANGE: ("drug", "daily", "limit", "conditions"),
}

# A draft prescription copies the drug lines a finding is about: only where adjusting a dose
# is the answer (an interaction or an allergy means stopping a drug, not copying it).
PRESCRIPTION_KINDS = frozenset({Kind.SUSTAINED, Kind.DOSE_RANGE})

CONDITIONS = (
    "age_at_least",
    "age_below",
    "weight_below",
    "weight_at_least",
    "egfr_below",
    "egfr_at_least",
)
# records' DrugInteraction severities, from the mildest.
SEVERITY_ORDER = ("minor", "moderate", "major", "contraindicated")


class RuleError(ValueError):
    """A rule is invalid; `problems` says each thing to fix (shown in the admin)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class ParameterError(RuleError):
    """The parameters of a rule are invalid."""


class _Reader:
    """Reads one parameter dict, collecting every problem instead of stopping at the first."""

    def __init__(self, parameters: Mapping[str, Any], where: str = "") -> None:
        self.raw = parameters
        self.where = where
        self.problems: list[str] = []
        self.seen: set[str] = set()

    def fail(self, name: str, message: str) -> None:
        self.problems.append(f"{self.where}{name}: {message}")

    def _get(self, name: str, required: bool) -> Any:
        self.seen.add(name)
        value = self.raw.get(name)
        if value is None and required:
            self.fail(name, "is required")
        return value

    def number(
        self,
        name: str,
        *,
        required: bool = True,
        low: float | None = None,
        high: float | None = None,
        default: Any = None,
    ) -> float | None:
        value = self._get(name, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(name, f"must be a number, not {value!r}")
            return default
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.fail(name, f"must be a number, not {value!r}")
            return default
        if not number.is_finite():
            self.fail(name, "must be a finite number")
            return default
        if (low is not None and number < Decimal(str(low))) or (
            high is not None and number > Decimal(str(high))
        ):
            self.fail(name, f"must be between {low} and {high}, not {value}")
            return default
        return float(number)

    def integer(
        self, name: str, *, low: int, high: int, required: bool = True, default: int | None = None
    ) -> int | None:
        value = self._get(name, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"must be a whole number, not {value!r}")
            return default
        if not low <= value <= high:
            self.fail(name, f"must be between {low} and {high}, not {value}")
            return default
        return value

    def code(self, name: str, system: str, *, required: bool = True) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(name, f"must be a code, not {value!r}")
            return None
        value = value.strip().upper() if system == CodeSystem.ATC else value.strip()
        if reason := check_code(system, value):
            self.fail(name, reason)
            return None
        return value

    def codes(
        self, name: str, system: str, *, required: bool = True, default: list[str] | None = None
    ) -> list[str]:
        value = self._get(name, required and default is None)
        if value is None:
            return list(default or [])
        if not isinstance(value, list) or not value:
            self.fail(name, f"must be a non-empty list of codes, not {value!r}")
            return []
        cleaned: list[str] = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                self.fail(name, f"{item!r} is not a code")
                continue
            item = item.strip().upper() if system == CodeSystem.ATC else item.strip()
            if reason := check_code(system, item):
                self.fail(name, reason)
            elif item not in cleaned:
                cleaned.append(item)
        return cleaned

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self._get(name, False)
        if value is None:
            return default
        if value not in choices:
            self.fail(name, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return str(value)

    def choices(self, name: str, choices: tuple[str, ...]) -> list[str]:
        value = self._get(name, False)
        if value is None:
            return list(choices)
        if not isinstance(value, list) or not value or any(v not in choices for v in value):
            self.fail(name, f"must be a non-empty list among {', '.join(choices)}, not {value!r}")
            return list(choices)
        return [c for c in choices if c in value]

    def finish(self) -> None:
        for name in sorted(set(self.raw) - self.seen):
            self.fail(name, "is not a parameter of this kind of rule")


def _sustained(r: _Reader) -> dict[str, Any]:
    return {
        "code": r.code("code", CodeSystem.LOINC),
        "above": r.number("above"),
        "days": r.integer("days", low=2, high=60),
        "min_readings_per_day": r.integer(
            "min_readings_per_day", low=1, high=24, required=False, default=1
        ),
        "atc_classes": r.codes("atc_classes", CodeSystem.ATC),
    }


def _drift(r: _Reader) -> dict[str, Any]:
    cleaned = {
        "codes": r.codes("codes", CodeSystem.LOINC),
        "window_days": r.integer("window_days", low=2, high=90),
        "rise_above": r.number("rise_above", required=False, low=0),
        "mean_above": r.number("mean_above", required=False),
        "min_readings": r.integer("min_readings", low=1, high=1000, required=False, default=3),
        "lab": r.code("lab", CodeSystem.LOINC),
        "lab_within_days": r.integer("lab_within_days", low=1, high=3650),
    }
    if r.raw.get("rise_above") is None and r.raw.get("mean_above") is None:
        r.fail("rise_above", "give rise_above, mean_above or both")
    return cleaned


def _lab_after_drug(r: _Reader) -> dict[str, Any]:
    low = r.integer("min_days", low=0, high=364)
    high = r.integer("max_days", low=1, high=365)
    cleaned = {
        "atc_classes": r.codes("atc_classes", CodeSystem.ATC),
        "min_days": low,
        "max_days": high,
        "labs": r.codes("labs", CodeSystem.LOINC),
    }
    if low is not None and high is not None and low >= high:
        r.fail("max_days", f"must be more than min_days ({low}), not {high}")
    return cleaned


def _interaction(r: _Reader) -> dict[str, Any]:
    return {"min_severity": r.choice("min_severity", SEVERITY_ORDER, "major")}


def _allergy(r: _Reader) -> dict[str, Any]:
    criticalities = tuple(str(c) for c in AllergyIntolerance.Criticality.values)
    return {"criticalities": r.choices("criticalities", criticalities)}


def _limit(raw: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object with 'when' and a limit")
        return None
    r = _Reader(raw, f"{where}.")
    when_raw = r._get("when", True)
    when: dict[str, float] = {}
    if when_raw is not None:
        if not isinstance(when_raw, dict) or not when_raw:
            r.fail("when", "must be a non-empty object of conditions")
        else:
            w = _Reader(when_raw, f"{where}.when.")
            for name in CONDITIONS:
                if name in when_raw:
                    value = w.number(name, low=0, high=1000)
                    if value is not None:
                        when[name] = value
            w.finish()
            r.problems.extend(w.problems)
    limit: dict[str, Any] = {
        "when": when,
        "max_mg_per_day": r.number("max_mg_per_day", required=False, low=0, high=1_000_000),
        "max_mg_per_kg_per_day": r.number(
            "max_mg_per_kg_per_day", required=False, low=0, high=10_000
        ),
        "contraindicated": bool(r._get("contraindicated", False)),
    }
    if not isinstance(raw.get("contraindicated", False), bool):
        r.fail("contraindicated", "must be true or false")
    if (
        limit["max_mg_per_day"] is None
        and limit["max_mg_per_kg_per_day"] is None
        and not limit["contraindicated"]
    ):
        r.fail("max_mg_per_day", "give max_mg_per_day, max_mg_per_kg_per_day or contraindicated")
    r.finish()
    problems.extend(r.problems)
    return limit


def _dose_range(r: _Reader) -> dict[str, Any]:
    cleaned: dict[str, Any] = {
        "atc": r.code("atc", CodeSystem.ATC),
        "max_mg_per_day": r.number("max_mg_per_day", low=0, high=1_000_000),
        "min_mg_per_day": r.number("min_mg_per_day", required=False, low=0, high=1_000_000),
        "weight_codes": r.codes("weight_codes", CodeSystem.LOINC, default=["29463-7"]),
        "egfr_codes": r.codes("egfr_codes", CodeSystem.LOINC, default=["62238-1"]),
        "creatinine_codes": r.codes("creatinine_codes", CodeSystem.LOINC, default=["14682-9"]),
        "data_max_age_days": r.integer(
            "data_max_age_days", low=1, high=3650, required=False, default=365
        ),
    }
    low, high = cleaned["min_mg_per_day"], cleaned["max_mg_per_day"]
    if low is not None and high is not None and low >= high:
        r.fail("min_mg_per_day", f"must be below max_mg_per_day ({high}), not {low}")
    raw_limits = r._get("limits", False)
    limits: list[dict[str, Any]] = []
    if raw_limits is not None and not isinstance(raw_limits, list):
        r.fail("limits", "must be a list")
    else:
        for index, raw in enumerate(raw_limits or []):
            limit = _limit(raw, f"{r.where}limits[{index}]", r.problems)
            if limit is not None:
                limits.append(limit)
    cleaned["limits"] = limits
    return cleaned


_CHECKERS = {
    Kind.SUSTAINED: _sustained,
    Kind.DRIFT: _drift,
    Kind.LAB_AFTER_DRUG: _lab_after_drug,
    Kind.INTERACTION: _interaction,
    Kind.ALLERGY: _allergy,
    Kind.DOSE_RANGE: _dose_range,
}


def check_parameters(kind: str, parameters: Any) -> dict[str, Any]:
    """The cleaned parameters of a rule of `kind` (defaults filled), or ParameterError."""
    checker = _CHECKERS.get(kind)  # type: ignore[call-overload]
    if checker is None:
        raise ParameterError([f"kind: {kind!r} is not a kind of rule"])
    if not isinstance(parameters, dict):
        raise ParameterError([f"parameters must be a JSON object, not {type(parameters).__name__}"])
    reader = _Reader(parameters)
    cleaned = checker(reader)
    reader.finish()
    if reader.problems:
        raise ParameterError(reader.problems)
    return cleaned


def severity_at_least(severity: str, minimum: str) -> bool:
    order = {value: rank for rank, value in enumerate(SEVERITY_ORDER)}
    return order.get(severity, -1) >= order.get(minimum, len(SEVERITY_ORDER))
