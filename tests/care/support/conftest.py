"""Decision-support cast on top of tests/care/conftest.py: the records reference data (real
LOINC, ATC and interaction codes), the reference rules, a fixed "now", and small factories for
readings, current medications and signed prescriptions."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from apps.accounts.models import User
from apps.care.models import Rule
from apps.care.services.support.rules import do_save_rule_version, load_reference_rules
from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.reference import load_reference_data

ZURICH = ZoneInfo("Europe/Zurich")
# A Wednesday morning in March, away from the DST change (29 March 2026).
NOW = dt.datetime(2026, 3, 18, 10, 0, tzinfo=ZURICH)
TODAY = NOW.date()

SYSTOLIC, GLUCOSE, HBA1C = "8480-6", "15074-8", "4548-4"
POTASSIUM, CREATININE, EGFR, WEIGHT = "2823-3", "14682-9", "62238-1", "29463-7"


def day(offset: int, hour: int = 8, minute: int = 0) -> dt.datetime:
    """A time `offset` days from TODAY (negative: before), local."""
    return dt.datetime.combine(TODAY + dt.timedelta(days=offset), dt.time(hour, minute), ZURICH)


@pytest.fixture
def reference(db: None) -> None:
    load_reference_data()


@pytest.fixture
def rules(reference: None) -> dict[str, Rule]:
    load_reference_rules()
    return {rule.code: rule for rule in Rule.objects.filter(active=True)}


@pytest.fixture
def only_rule(rules: dict[str, Rule]) -> Callable[[str], Rule]:
    """Keep one reference rule active (the others withdrawn), so a test sees only its kind."""

    def keep(code: str) -> Rule:
        Rule.objects.exclude(code=code).update(active=False)
        return Rule.objects.get(code=code, active=True)

    return keep


@pytest.fixture
def make_rule(reference: None, admin_user: User) -> Callable[..., Rule]:
    def make(code: str, kind: str, parameters: dict[str, Any], **fields: Any) -> Rule:
        data = {
            "code": code,
            "kind": kind,
            "title": f"Règle {code}",
            "rationale": "Raison de test.",
            "parameters": parameters,
            **fields,
        }
        return do_save_rule_version(data, admin_user)

    return make


@pytest.fixture
def observe(reference: None) -> Callable[..., Observation]:
    def make(
        chart: Patient, code: str, value: float, at: dt.datetime, **fields: Any
    ) -> Observation:
        concept = Concept.objects.get(system=CodeSystem.LOINC, code=code)
        fields.setdefault("category", concept.category or "vital-signs")
        return Observation.objects.create(
            patient=chart,
            code=concept,
            value=Decimal(str(value)),
            unit=concept.unit,
            ref_low=concept.low,
            ref_high=concept.high,
            effective_at=at,
            **fields,
        )

    return make


@pytest.fixture
def daily_readings(observe: Callable[..., Observation]) -> Callable[..., list[Observation]]:
    """Readings of `code` on the days before TODAY: `per_day[i]` are the values of day -(n-i)."""

    def make(chart: Patient, code: str, per_day: list[list[float]]) -> list[Observation]:
        made = []
        for index, values in enumerate(per_day):
            offset = index - len(per_day)
            for n, value in enumerate(values):
                made.append(observe(chart, code, value, day(offset, 7 + 11 * (n % 2), n)))
        return made

    return make


def medication(name: str) -> Medication:
    return Medication.objects.get(name=name)


@pytest.fixture
def take(reference: None) -> Callable[..., MedicationStatement]:
    """A current medication (as entered in the chart), by product name."""

    def make(chart: Patient, name: str, **fields: Any) -> MedicationStatement:
        fields.setdefault("dosage", "1 cp le matin")
        fields.setdefault("started_on", TODAY - dt.timedelta(days=200))
        return MedicationStatement.objects.create(
            patient=chart, medication=medication(name), **fields
        )

    return make


@pytest.fixture
def practitioner(clinician: User) -> Practitioner:
    return Practitioner.objects.create(user=clinician, registration_number="7601000123456")


@pytest.fixture
def prescribe(reference: None, clinician: User) -> Callable[..., Prescription]:
    """A prescription signed on `signed` with its lines and current medications, as signing
    writes them (`lines`: (product name, dose, times a day))."""

    def make(
        chart: Patient,
        lines: list[tuple[str, str, int]],
        *,
        signed: dt.datetime | None = None,
        duration_days: int = 90,
    ) -> Prescription:
        signed = signed or day(-30)
        rx = Prescription.objects.create(
            patient=chart,
            prescriber=clinician,
            status=Prescription.Status.ACTIVE,
            number=f"RX-T-{secrets.token_hex(4)}",
            verification_token=secrets.token_urlsafe(12),
            signed_at=signed,
        )
        for name, dose, frequency in lines:
            med = medication(name)
            MedicationRequest.objects.create(
                patient=chart,
                prescription=rx,
                medication=med,
                dose=dose,
                frequency=frequency,
                duration_days=duration_days,
                quantity=1,
            )
            MedicationStatement.objects.create(
                patient=chart,
                medication=med,
                dosage=f"{dose}, {frequency}×/j",
                started_on=signed.astimezone(ZURICH).date(),
                ended_on=signed.astimezone(ZURICH).date() + dt.timedelta(days=duration_days),
                prescription=rx,
            )
        return rx

    return make


@pytest.fixture
def allergic(reference: None) -> Callable[..., AllergyIntolerance]:
    def make(chart: Patient, snomed: str, **fields: Any) -> AllergyIntolerance:
        fields.setdefault("category", "medication")
        fields.setdefault("criticality", "high")
        return AllergyIntolerance.objects.create(
            patient=chart,
            substance=Concept.objects.get(system=CodeSystem.SNOMED, code=snomed),
            **fields,
        )

    return make
