"""One evaluator per kind of rule: what it looks for is in the rule's parameters (see
`parameters.py`); each returns its findings, a fingerprint and the evidence it used.

Evidence holds `summary` (the reason's placeholders, as text or as {language: text}),
`observations`, `series` (daily means for the chart), `medications`, `allergies` and `patient`
facts; the engine adds the rule and the parameters applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import formats
from django.utils.translation import gettext as _

from apps.records.models import AllergyIntolerance, MedicationRequest, MedicationStatement
from apps.records.models import Severity as InteractionSeverity
from apps.records.services.prescriptions import _matches

from ...models import Rule
from .parameters import severity_at_least
from .snapshot import (
    DayStat,
    PatientData,
    Texts,
    ckd_epi_2021,
    concept_label,
    dose_mg,
    fingerprint,
    medication_entry,
    number,
    observation_entry,
    tri,
)


@dataclass(frozen=True)
class Finding:
    fingerprint: str
    evidence: dict[str, Any]


def _series(
    data: PatientData, code: str, stats: list[DayStat], target: float | None
) -> dict[str, Any]:
    concept = data.concepts([code]).get(code)
    return {
        "code": code,
        "label": concept_label(concept, code),
        "unit": concept.unit if concept else "",
        "target": target,
        "days": [
            {
                "date": s.day.isoformat(),
                "mean": round(s.mean, 2),
                "n": s.n,
                "min": s.low,
                "max": s.high,
            }
            for s in stats
        ],
    }


def _date(day: dt.date) -> Texts:
    return tri(lambda: formats.date_format(day, "SHORT_DATE_FORMAT"))


def _label_of(choice: Any) -> Texts:
    """A choice's label (a lazy translation) in every language."""
    return tri(lambda: choice.label)


def _joined(names: list[str]) -> str:
    return ", ".join(names)


# ---------------------------------------------------------------------------------------------
# sustained


def sustained(rule: Rule, data: PatientData) -> list[Finding]:
    p = rule.parameters
    days, target = p["days"], p["above"]
    first = data.today - dt.timedelta(days=days)
    last = data.today - dt.timedelta(days=1)
    # The treatment first (no query): it must be the same from the window's first day to today.
    by_day = data.treatment_by_day(p["atc_classes"], first, data.today)
    if not by_day[data.today] or len(set(by_day.values())) != 1:
        return []
    start, end = data.midnight(first), data.midnight(data.today)
    stats = data.daily([p["code"]], start, end)
    per_day = {s.day: s for s in stats}
    for offset in range(days):
        stat = per_day.get(first + dt.timedelta(days=offset))
        if stat is None or stat.n < p["min_readings_per_day"] or stat.mean <= target:
            return []
    current = data.current(p["atc_classes"])
    readings = sum(s.n for s in stats)
    mean = sum(s.total for s in stats) / readings
    concept = data.concepts([p["code"]]).get(p["code"])
    label = concept_label(concept, p["code"])
    unit = concept.unit if concept else ""
    meds = [medication_entry(data, s, None) for s in current]
    return [
        Finding(
            fingerprint(rule.kind, sorted(by_day[data.today])),
            {
                "summary": {
                    "label": label,
                    "target": number(target),
                    "unit": unit,
                    "days": str(days),
                    "mean": number(mean),
                    "lowest_day": number(min(s.mean for s in stats)),
                    "readings": str(readings),
                    "treatment": _joined([f"{m['name']} ({m['dose']})" for m in meds]),
                },
                "window": {"from": first.isoformat(), "to": last.isoformat()},
                "series": _series(data, p["code"], stats, target),
                "observations": [
                    observation_entry(o) for o in data.readings([p["code"]], start, end)
                ],
                "observations_total": readings,
                "medications": meds,
            },
        )
    ]


# ---------------------------------------------------------------------------------------------
# drift


def drift(rule: Rule, data: PatientData) -> list[Finding]:
    p = rule.parameters
    window = p["window_days"]
    lab = p["lab"]
    last_lab = data.latest([lab])
    if last_lab is not None and last_lab.effective_at >= data.now - dt.timedelta(
        days=p["lab_within_days"]
    ):
        return []
    # Windows of whole local days, today included in the recent one.
    recent_first = data.today - dt.timedelta(days=window - 1)
    previous_first = recent_first - dt.timedelta(days=window)
    start = data.midnight(previous_first)
    end = data.midnight(data.today + dt.timedelta(days=1))
    stats = data.daily(p["codes"], start, end)
    recent = [s for s in stats if s.day >= recent_first]
    previous = [s for s in stats if s.day < recent_first]
    n_recent, n_previous = sum(s.n for s in recent), sum(s.n for s in previous)
    if n_recent < p["min_readings"]:
        return []
    recent_mean = sum(s.total for s in recent) / n_recent
    previous_mean = sum(s.total for s in previous) / n_previous if n_previous else None
    rise = recent_mean - previous_mean if previous_mean is not None else None
    rising = (
        p["rise_above"] is not None
        and rise is not None
        and n_previous >= p["min_readings"]
        and rise > p["rise_above"]
    )
    high = p["mean_above"] is not None and recent_mean > p["mean_above"]
    if not (rising or high):
        return []
    code = p["codes"][0]
    concept = data.concepts(p["codes"]).get(code)
    lab_concept = data.concepts([lab]).get(lab)
    dash = dict.fromkeys(("fr", "en", "de"), "—")
    return [
        Finding(
            fingerprint(rule.kind, lab, last_lab.pk if last_lab else None),
            {
                "summary": {
                    "label": concept_label(concept, code),
                    "unit": concept.unit if concept else "",
                    "recent_mean": number(recent_mean),
                    "previous_mean": number(previous_mean) if previous_mean is not None else dash,
                    "rise": number(rise) if rise is not None else dash,
                    "window_days": str(window),
                    "readings": str(n_recent),
                    "lab": concept_label(lab_concept, lab),
                    "lab_days": str(p["lab_within_days"]),
                    "last_lab": (
                        _date(last_lab.effective_at.astimezone(data.tz).date())
                        if last_lab
                        else tri(lambda: _("never"))
                    ),
                },
                "window": {
                    "previous_from": previous_first.isoformat(),
                    "recent_from": recent_first.isoformat(),
                    "to": data.today.isoformat(),
                },
                "series": _series(data, code, stats, p["mean_above"]),
                "observations": [
                    observation_entry(o) for o in data.readings(p["codes"], start, end)
                ]
                + ([observation_entry(last_lab)] if last_lab else []),
                "observations_total": n_recent + n_previous,
                "medications": [],
            },
        )
    ]


# ---------------------------------------------------------------------------------------------
# lab-after-drug


def lab_after_drug(rule: Rule, data: PatientData) -> list[Finding]:
    p = rule.parameters
    started: list[tuple[MedicationStatement, dt.date]] = []
    for statement in data.current(p["atc_classes"]):
        if statement.started_on is None:
            continue
        days = (data.today - statement.started_on).days
        if p["min_days"] <= days <= p["max_days"]:
            started.append((statement, statement.started_on))
    if not started:
        return []
    # Results from the day after the start: one taken the same day is the baseline.
    earliest = data.midnight(min(day for _s, day in started) + dt.timedelta(days=1))
    results = data.results_since(p["labs"], earliest)
    findings = []
    for statement, started_on in started:
        after = data.midnight(started_on + dt.timedelta(days=1))
        done = [r for r in results if r.effective_at >= after]
        done_codes = {r.code.code for r in done}
        missing = [lab for lab in p["labs"] if lab not in done_codes]
        if not missing:
            continue
        labels = [data.label(code) for code in missing]
        findings.append(
            Finding(
                fingerprint(rule.kind, statement.medication_id, started_on),
                {
                    "summary": {
                        "drug": statement.medication.name,
                        "started": _date(started_on),
                        "days_since": str((data.today - started_on).days),
                        "labs": {
                            lang: ", ".join(label[lang] for label in labels) for lang in labels[0]
                        },
                    },
                    "missing": missing,
                    "observations": [observation_entry(r) for r in done],
                    "medications": [medication_entry(data, statement, None)],
                },
            )
        )
    return findings


# ---------------------------------------------------------------------------------------------
# interaction and allergy


def interaction(rule: Rule, data: PatientData) -> list[Finding]:
    current = [s for s in data.current() if s.medication.atc_code]
    if len(current) < 2:
        return []
    interactions = data.interactions({s.medication.atc_code.upper() for s in current})
    minimum = rule.parameters["min_severity"]
    findings = []
    for index, first in enumerate(current):
        for second in current[index + 1 :]:
            a, b = first.medication.atc_code.upper(), second.medication.atc_code.upper()
            for found in interactions:
                if not severity_at_least(found.severity, minimum) or not _matches(found, a, b):
                    continue
                severity = InteractionSeverity(found.severity)
                findings.append(
                    Finding(
                        fingerprint(
                            rule.kind,
                            found.pk,
                            sorted([first.medication_id, second.medication_id]),
                        ),
                        {
                            "summary": {
                                "drug": first.medication.name,
                                "other": second.medication.name,
                                "severity": _label_of(severity),
                                "description": {
                                    "fr": found.description_fr or found.description,
                                    "en": found.description,
                                    "de": found.description_de or found.description,
                                },
                            },
                            "interaction": {
                                "id": found.pk,
                                "atc_a": found.atc_a,
                                "atc_b": found.atc_b,
                                "severity": found.severity,
                            },
                            "medications": [
                                medication_entry(data, first, None),
                                medication_entry(data, second, None),
                            ],
                        },
                    )
                )
    return findings


def _allergy_entry(allergy: AllergyIntolerance) -> dict[str, Any]:
    return {
        "id": allergy.pk,
        "substance": concept_label(allergy.substance, allergy.substance.code),
        "atc_prefix": allergy.substance.atc_prefix,
        "criticality": allergy.criticality,
        "reaction": allergy.reaction,
    }


def allergy(rule: Rule, data: PatientData) -> list[Finding]:
    wanted = rule.parameters["criticalities"]
    allergies = [a for a in data.allergies if a.substance.atc_prefix and a.criticality in wanted]
    findings = []
    for found in allergies:
        prefix = found.substance.atc_prefix.upper()
        for statement in data.current([prefix]):
            criticality = AllergyIntolerance.Criticality(found.criticality)
            findings.append(
                Finding(
                    fingerprint(rule.kind, found.pk, statement.medication_id),
                    {
                        "summary": {
                            "drug": statement.medication.name,
                            "substance": concept_label(found.substance, found.substance.code),
                            "criticality": _label_of(criticality),
                            "reaction": found.reaction or "—",
                        },
                        "allergies": [_allergy_entry(found)],
                        "medications": [medication_entry(data, statement, None)],
                    },
                )
            )
    return findings


# ---------------------------------------------------------------------------------------------
# dose-range

CONDITION_TEXTS: dict[str, Callable[[str], str]] = {
    "age_at_least": lambda v: _("age %(value)s years or more") % {"value": v},
    "age_below": lambda v: _("age under %(value)s years") % {"value": v},
    "weight_below": lambda v: _("weight under %(value)s kg") % {"value": v},
    "weight_at_least": lambda v: _("weight %(value)s kg or more") % {"value": v},
    "egfr_below": lambda v: _("eGFR under %(value)s mL/min/1.73 m²") % {"value": v},
    "egfr_at_least": lambda v: _("eGFR %(value)s mL/min/1.73 m² or more") % {"value": v},
}


def _facts(rule: Rule, data: PatientData) -> dict[str, Any]:
    """Age, the latest weight and renal function (eGFR, or CKD-EPI from creatinine)."""
    p = rule.parameters
    since = data.now - dt.timedelta(days=p["data_max_age_days"])
    facts: dict[str, Any] = {"age": data.age(), "sex": data.patient.sex}
    weight = data.latest(p["weight_codes"], since)
    if weight is not None and weight.unit == "kg":
        facts["weight"] = {**observation_entry(weight), "kg": float(weight.value)}
    egfr = data.latest(p["egfr_codes"], since)
    creatinine = data.latest(p["creatinine_codes"], since)
    if creatinine is not None and (egfr is None or creatinine.effective_at > egfr.effective_at):
        factor = {"umol/L": 1.0, "µmol/L": 1.0, "mg/dL": 88.4}.get(creatinine.unit)
        value = (
            ckd_epi_2021(float(creatinine.value) * factor, data.age(), data.patient.sex)
            if factor
            else None
        )
        if value is not None:
            facts["egfr"] = {**observation_entry(creatinine), "egfr": value, "from": "creatinine"}
            return facts
    if egfr is not None:
        facts["egfr"] = {**observation_entry(egfr), "egfr": float(egfr.value), "from": "egfr"}
    return facts


def _holds(when: dict[str, float], facts: dict[str, Any]) -> bool:
    values = {
        "age": facts["age"],
        "weight": facts["weight"]["kg"] if "weight" in facts else None,
        "egfr": facts["egfr"]["egfr"] if "egfr" in facts else None,
    }
    for name, limit in when.items():
        subject, _sep, test = name.partition("_")
        value = values[subject]
        if value is None:
            return False  # unknown data: the stricter limit is not assumed
        if test == "below" and not value < limit:
            return False
        if test == "at_least" and not value >= limit:
            return False
    return True


def _mg(value: float | Decimal) -> str:
    return f"{float(value):g} mg"


def dose_range(rule: Rule, data: PatientData) -> list[Finding]:
    p = rule.parameters
    lines = data.running_lines(p["atc"])
    if not lines:
        return []
    daily = Decimal(0)
    used: list[MedicationRequest] = []
    for line in lines:
        mg = dose_mg(line.dose, line.medication.strength)
        if mg is not None:
            daily += mg * line.frequency
            used.append(line)
    if not used:
        return []  # no dose could be read: nothing to compare
    facts = _facts(rule, data)
    maximum = float(p["max_mg_per_day"])
    contraindicated = False
    applied = []
    for limit in p["limits"]:
        if not _holds(limit["when"], facts):
            continue
        applied.append(limit)
        contraindicated = contraindicated or limit["contraindicated"]
        if limit["max_mg_per_day"] is not None:
            maximum = min(maximum, limit["max_mg_per_day"])
        if limit["max_mg_per_kg_per_day"] is not None and "weight" in facts:
            maximum = min(maximum, limit["max_mg_per_kg_per_day"] * facts["weight"]["kg"])
    total = float(daily)
    minimum = p["min_mg_per_day"]
    if contraindicated:
        verdict = "contraindicated"
    elif total > maximum:
        verdict = "above"
    elif minimum is not None and total < minimum:
        verdict = "below"
    else:
        return []

    def conditions() -> str:
        if not applied:
            return _("usual adult range")
        return "; ".join(
            ", ".join(CONDITION_TEXTS[name](f"{value:g}") for name, value in lim["when"].items())
            for lim in applied
        )

    def limit_text() -> str:
        if verdict == "contraindicated":
            return _("contraindicated")
        if verdict == "below":
            return _("at least %(dose)s a day") % {"dose": _mg(minimum or 0)}
        return _("at most %(dose)s a day") % {"dose": _mg(round(maximum))}

    observations = [facts[k] for k in ("weight", "egfr") if k in facts]
    return [
        Finding(
            fingerprint(rule.kind, sorted(line.pk for line in used), verdict, round(maximum)),
            {
                "summary": {
                    "drug": _joined(sorted({line.medication.name for line in used})),
                    "daily": _mg(daily),
                    "limit": tri(limit_text),
                    "conditions": tri(conditions),
                },
                "verdict": verdict,
                "daily_mg": total,
                "max_mg": round(maximum, 1),
                "limits_applied": applied,
                "patient": facts,
                "observations": [
                    {
                        k: v
                        for k, v in o.items()
                        if k in ("id", "code", "label", "value", "unit", "at")
                    }
                    for o in observations
                ],
                "medications": [medication_entry(data, None, line) for line in used],
            },
        )
    ]


EVALUATORS: dict[str, Callable[[Rule, PatientData], list[Finding]]] = {
    Rule.Kind.SUSTAINED: sustained,
    Rule.Kind.DRIFT: drift,
    Rule.Kind.LAB_AFTER_DRUG: lab_after_drug,
    Rule.Kind.INTERACTION: interaction,
    Rule.Kind.ALLERGY: allergy,
    Rule.Kind.DOSE_RANGE: dose_range,
}
