"""What the rules read of one patient, loaded once per evaluation in a bounded number of queries.

Only data of the normal sensitivity category is read: proposals are shown to the whole care
team, and some of its members may not see the sensitive categories (the safety checks made when
a prescription is signed still read everything).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import formats, translation

from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    DrugInteraction,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
    Prescription,
    Sensitivity,
)

LANGUAGES = ("fr", "en", "de")
# Readings kept in a proposal's evidence (the newest); the daily summaries cover all of them.
EVIDENCE_READINGS = 60
# Statements that ended longer ago than this cannot matter to any rule's window.
HISTORY_DAYS = 400

Texts = dict[str, str]


def tri(make: Callable[[], Any]) -> Texts:
    """`make()` rendered in each language of the project (proposals are read in any of them)."""
    out = {}
    for language in LANGUAGES:
        with translation.override(language):
            out[language] = str(make())
    return out


def number(value: float, decimals: int = 1) -> Texts:
    """A number as each language writes it (7,6 in French, 7.6 in English)."""
    places = 0 if abs(value) >= 100 or float(value).is_integer() else decimals
    rounded = round(value, places)
    return tri(lambda: formats.number_format(rounded, decimal_pos=places))


def concept_label(concept: Concept | None, code: str) -> Texts:
    if concept is None:
        return dict.fromkeys(LANGUAGES, code)
    return {
        "fr": concept.display_fr or concept.display,
        "en": concept.display,
        "de": concept.display_de or concept.display,
    }


def fingerprint(*parts: Any) -> str:
    """Identifies a finding: the same data seen again gives the same fingerprint."""
    raw = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def atc_in(atc_code: str, classes: Iterable[str]) -> bool:
    code = (atc_code or "").upper()
    return any(code.startswith(prefix) for prefix in classes)


def _normal(text: str) -> str:
    return " ".join((text or "").lower().split())


# ---------------------------------------------------------------------------------------------
# Doses and renal function

_MASS = {"mg": Decimal(1), "g": Decimal(1000), "µg": Decimal("0.001"), "μg": Decimal("0.001")}
_MASS.update({"ug": _MASS["µg"], "mcg": _MASS["µg"]})
MASS_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(mg|g|µg|μg|ug|mcg)(?![a-z])", re.IGNORECASE)
# "1 cp", "2 comprimés", "½ cp", "1 caps", "1 tablet"…: units of the product's strength.
COUNT_RE = re.compile(
    r"^\s*(\d+(?:[.,]\d+)?|½|1/2)\s*(cp|comp|comprimés?|tabl?|tablets?|tabletten?|caps|"
    r"capsules?|gélules?|kapseln?|dragées?|sachets?)(?![a-z])",
    re.IGNORECASE,
)


def _mass_mg(text: str) -> Decimal | None:
    match = MASS_RE.search(text or "")
    if match is None:
        return None
    return Decimal(match.group(1).replace(",", ".")) * _MASS[match.group(2).lower()]


def dose_mg(dose: str, strength: str) -> Decimal | None:
    """The milligrams of one dose ("500 mg", "1 g", "2 cp" of a 500 mg product), or None."""
    dose = (dose or "").strip()
    count = COUNT_RE.match(dose)
    if count is not None:
        amount = count.group(1)
        units = Decimal("0.5") if amount in ("½", "1/2") else Decimal(amount.replace(",", "."))
        per_unit = _mass_mg(strength)
        return units * per_unit if per_unit is not None else None
    if MASS_RE.match(dose) is None:
        return None  # "1 bouffée", "10 UI": not a mass
    return _mass_mg(dose)


def ckd_epi_2021(creatinine_umol: float, age: int, sex: str) -> float | None:
    """eGFR (mL/min/1.73 m²) by the race-free CKD-EPI 2021 equation (Inker, NEJM 2021)."""
    if sex not in ("female", "male") or creatinine_umol <= 0 or age < 18:
        return None
    scr = creatinine_umol / 88.4  # µmol/L → mg/dL
    kappa, alpha = (0.7, -0.241) if sex == "female" else (0.9, -0.302)
    egfr = (
        142
        * min(scr / kappa, 1) ** alpha
        * max(scr / kappa, 1) ** -1.200
        * 0.9938**age
        * (1.012 if sex == "female" else 1)
    )
    return round(egfr, 1) if math.isfinite(egfr) else None


# ---------------------------------------------------------------------------------------------
# The snapshot


@dataclass(frozen=True)
class DayStat:
    day: dt.date
    n: int
    total: float
    low: float
    high: float

    @property
    def mean(self) -> float:
        return self.total / self.n


@dataclass
class PatientData:
    patient: Patient
    now: dt.datetime
    tz: ZoneInfo
    statements: list[MedicationStatement]
    lines: list[MedicationRequest]
    allergies: list[AllergyIntolerance]
    _memo: dict[Any, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, patient: Patient, now: dt.datetime) -> PatientData:
        """Three queries: medications (current and recent), their prescription lines, allergies."""
        tz = ZoneInfo(settings.TIME_ZONE)
        today = now.astimezone(tz).date()
        statements = list(
            MedicationStatement.objects.filter(patient=patient, sensitivity=Sensitivity.NORMAL)
            .exclude(status=MedicationStatement.Status.ON_HOLD)
            .filter(
                Q(ended_on__isnull=True) | Q(ended_on__gte=today - dt.timedelta(days=HISTORY_DAYS))
            )
            .select_related("medication")
            .order_by("pk")
        )
        prescriptions = {s.prescription_id for s in statements if s.prescription_id}
        lines = list(
            MedicationRequest.objects.filter(patient=patient, sensitivity=Sensitivity.NORMAL)
            .filter(
                Q(prescription_id__in=prescriptions)
                | Q(prescription__status=Prescription.Status.ACTIVE)
            )
            .exclude(prescription__status=Prescription.Status.DRAFT)
            .select_related("medication", "prescription")
            .order_by("pk")
        )
        allergies = list(
            AllergyIntolerance.objects.filter(
                patient=patient, clinical_status="active", sensitivity=Sensitivity.NORMAL
            )
            .select_related("substance")
            .order_by("pk")
        )
        return cls(patient, now, tz, statements, lines, allergies)

    # -- time --------------------------------------------------------------------------------

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.tz).date()

    def midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=self.tz)

    def age(self) -> int:
        return self.patient.age(self.today)

    # -- medications -------------------------------------------------------------------------

    def line_of(self, statement: MedicationStatement) -> MedicationRequest | None:
        """The prescription line a statement was written from (signing writes both)."""
        if not statement.prescription_id:
            return None
        for line in self.lines:
            if (
                line.prescription_id == statement.prescription_id
                and line.medication_id == statement.medication_id
            ):
                return line
        return None

    def dose_key(self, statement: MedicationStatement) -> str:
        """The dose of a statement, comparable across renewals (not the translated text)."""
        line = self.line_of(statement)
        if line is not None:
            return f"{_normal(line.dose)}×{line.frequency}{'/prn' if line.as_needed else ''}"
        return _normal(statement.dosage)

    @staticmethod
    def taken_on(statement: MedicationStatement, day: dt.date) -> bool:
        if statement.started_on is not None and statement.started_on > day:
            return False
        if statement.ended_on is None:
            # Stopped or completed without an end date: when is unknown, so not counted.
            return statement.status == MedicationStatement.Status.ACTIVE
        return statement.ended_on >= day

    def current(self, classes: Iterable[str] | None = None) -> list[MedicationStatement]:
        """Active statements taken today (of `classes` when given), one per medication."""
        seen: set[int] = set()
        out = []
        for statement in self.statements:
            if statement.status != MedicationStatement.Status.ACTIVE:
                continue
            if not self.taken_on(statement, self.today) or statement.medication_id in seen:
                continue
            if classes is not None and not atc_in(statement.medication.atc_code, classes):
                continue
            seen.add(statement.medication_id)
            out.append(statement)
        return out

    def treatment_by_day(
        self, classes: Iterable[str], first: dt.date, last: dt.date
    ) -> dict[dt.date, frozenset[tuple[int, str]]]:
        """For each day, the (medication, dose) pairs of `classes` taken that day."""
        classes = list(classes)
        relevant = [s for s in self.statements if atc_in(s.medication.atc_code, classes)]
        days = {}
        day = first
        while day <= last:
            days[day] = frozenset(
                (s.medication_id, self.dose_key(s)) for s in relevant if self.taken_on(s, day)
            )
            day += dt.timedelta(days=1)
        return days

    def running_lines(self, atc: str) -> list[MedicationRequest]:
        """Lines of valid prescriptions of `atc` whose treatment runs today."""
        out = []
        for line in self.lines:
            prescription = line.prescription
            if prescription.status != Prescription.Status.ACTIVE or not prescription.signed_at:
                continue
            if not atc_in(line.medication.atc_code, [atc]):
                continue
            start = prescription.signed_at.astimezone(self.tz).date()
            if start <= self.today < start + dt.timedelta(days=line.duration_days):
                out.append(line)
        return out

    def interactions(self, codes: set[str]) -> list[DrugInteraction]:
        from apps.records.services.prescriptions import _prefixes

        key = ("interactions", frozenset(codes))
        if key not in self._memo:
            prefixes = _prefixes(codes)
            self._memo[key] = list(
                DrugInteraction.objects.filter(atc_a__in=prefixes, atc_b__in=prefixes).order_by(
                    "pk"
                )
            )
        result: list[DrugInteraction] = self._memo[key]
        return result

    # -- observations ------------------------------------------------------------------------

    def _observations(self, codes: Iterable[str]) -> Any:
        return Observation.objects.filter(
            patient=self.patient,
            code__system=CodeSystem.LOINC,
            code__code__in=list(codes),
            sensitivity=Sensitivity.NORMAL,
            effective_at__lte=self.now,
        ).exclude(status__in=["cancelled", "entered-in-error"])

    def concepts(self, codes: Iterable[str]) -> dict[str, Concept]:
        wanted = frozenset(codes)
        key = ("concepts", wanted)
        if key not in self._memo:
            self._memo[key] = {
                c.code: c
                for c in Concept.objects.filter(system=CodeSystem.LOINC, code__in=list(wanted))
            }
        result: dict[str, Concept] = self._memo[key]
        return result

    def label(self, code: str) -> Texts:
        return concept_label(self.concepts([code]).get(code), code)

    def daily(self, codes: list[str], start: dt.datetime, end: dt.datetime) -> list[DayStat]:
        """Per local day in [start, end): count, sum, min and max (one aggregate query)."""
        rows = (
            self._observations(codes)
            .filter(effective_at__gte=start, effective_at__lt=end)
            .annotate(day=TruncDate("effective_at", tzinfo=self.tz))
            .values("day")
            .annotate(n=Count("id"), total=Sum("value"), low=Min("value"), high=Max("value"))
            .order_by("day")
        )
        return [
            DayStat(r["day"], r["n"], float(r["total"]), float(r["low"]), float(r["high"]))
            for r in rows
        ]

    def readings(self, codes: list[str], start: dt.datetime, end: dt.datetime) -> list[Any]:
        """The newest readings in [start, end), at most EVIDENCE_READINGS."""
        rows = (
            self._observations(codes)
            .filter(effective_at__gte=start, effective_at__lt=end)
            .select_related("code")
            .order_by("-effective_at", "-pk")[:EVIDENCE_READINGS]
        )
        return list(rows)

    def latest(self, codes: list[str], since: dt.datetime | None = None) -> Observation | None:
        key = ("latest", tuple(codes), since)
        if key not in self._memo:
            rows = self._observations(codes)
            if since is not None:
                rows = rows.filter(effective_at__gte=since)
            self._memo[key] = rows.select_related("code").order_by("-effective_at", "-pk").first()
        result: Observation | None = self._memo[key]
        return result

    def results_since(self, codes: list[str], since: dt.datetime) -> list[Observation]:
        """Results of `codes` since `since`, oldest first (labs: a handful)."""
        key = ("since", tuple(codes), since)
        if key not in self._memo:
            self._memo[key] = list(
                self._observations(codes)
                .filter(effective_at__gte=since)
                .select_related("code")
                .order_by("effective_at", "pk")
            )
        result: list[Observation] = self._memo[key]
        return result


# ---------------------------------------------------------------------------------------------
# Evidence entries


def observation_entry(obs: Observation) -> dict[str, Any]:
    return {
        "id": obs.pk,
        "code": obs.code.code,
        "label": concept_label(obs.code, obs.code.code),
        "value": float(obs.value),
        "unit": obs.unit,
        "at": obs.effective_at.isoformat(),
    }


def medication_entry(
    data: PatientData, statement: MedicationStatement | None, line: MedicationRequest | None
) -> dict[str, Any]:
    """A drug as a proposal shows it: from a current-medication statement, its line, or both."""
    medication: Medication = (statement or line).medication  # type: ignore[union-attr]
    if statement is not None and line is None:
        line = data.line_of(statement)
    since = None
    if statement is not None and statement.started_on:
        since = statement.started_on.isoformat()
    elif line is not None and line.prescription.signed_at:
        since = line.prescription.signed_at.astimezone(data.tz).date().isoformat()
    return {
        "id": statement.pk if statement is not None else None,
        "line": line.pk if line is not None else None,
        "name": medication.name,
        "atc": medication.atc_code,
        # A prescription line: its dose and times a day; a statement alone: its dosage text.
        "dose": line.dose if line is not None else (statement.dosage if statement else ""),
        "per_day": line.frequency if line is not None else None,
        "as_needed": bool(line.as_needed) if line is not None else False,
        "since": since,
    }
