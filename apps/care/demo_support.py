"""Demo decision support (seed_demo, after the records and devices demos; idempotent): data that
makes each kind of rule fire for the demo patients, then the engine run over them.

- Marie Dubois: home blood pressure above 135 mmHg for the last 8 days on her unchanged
  lisinopril (dosage review), and amoxicillin started despite her penicillin allergy;
- Paul Girard (a patient added here: the records demo gives everyone a recent HbA1c): capillary
  glucose drifting up over four weeks, last HbA1c seven months ago (HbA1c proposed);
- Élise Rochat: spironolactone started 10 days ago, no potassium or creatinine since;
- Luca Bernasconi: ibuprofen added to his apixaban (major interaction);
- Hans Müller (86): a second paracetamol prescription on top of the first, 4 g a day where
  3 g is the limit from 75 (dose range).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from apps.accounts.models import User
from apps.records.access import get_patient_for_user
from apps.records.models import (
    CodeSystem,
    Concept,
    Condition,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
    Prescription,
    interpret,
)
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.prescriptions import do_sign_prescription

from .services.support.engine import evaluate_patient
from .services.support.rules import load_reference_rules

MARIE, LUCA, ELISE, HANS = (
    "756.9217.0769.85",
    "756.3047.5009.62",
    "756.5588.2213.41",
    "756.4410.6672.19",
)
PAUL = "756.6123.4560.09"
SYSTOLIC, GLUCOSE, HBA1C = "8480-6", "15074-8", "4548-4"


def seed(context: dict[str, Any]) -> None:
    load_reference_rules()
    users: dict[str, User] = context["users"]
    physician = users["physician"]
    now = timezone.now()
    rng = random.Random(2610)  # noqa: S311 - synthetic demo data, not security
    patients = {
        p.ahv_number: p for p in Patient.objects.filter(ahv_number__in=[MARIE, LUCA, ELISE, HANS])
    }
    paul = _paul(context)
    if MARIE in patients:
        marie = patients[MARIE]
        _readings(marie, SYSTOLIC, now, days=8, times=(7, 12, 19), low=146, high=158, rng=rng)
        _taking(marie, "J01CA04", "1 cp 3×/j", now.date() - dt.timedelta(days=2), physician)
    _glucose_drift(paul, now, rng)
    if ELISE in patients:
        _taking(
            patients[ELISE],
            "C03DA01",
            "25 mg le matin",
            now.date() - dt.timedelta(days=10),
            physician,
        )
    if LUCA in patients:
        _taking(
            patients[LUCA], "M01AE01", "400 mg 3×/j", now.date() - dt.timedelta(days=3), physician
        )
    if HANS in patients:
        _paracetamol(patients[HANS], physician)
    for patient in [*patients.values(), paul]:
        evaluate_patient(patient, now=now)


def _concept(code: str) -> Concept:
    return Concept.objects.get(system=CodeSystem.LOINC, code=code)


def _readings(
    patient: Patient,
    code: str,
    now: dt.datetime,
    *,
    days: int,
    times: tuple[int, ...],
    low: float,
    high: float,
    rng: random.Random,
    first_day: int = 0,
) -> None:
    """Home readings on each of the `days` days before today (the missing ones only)."""
    concept = _concept(code)
    zone = ZoneInfo(settings.TIME_ZONE)
    today = now.astimezone(zone).date()
    wanted = []
    for offset in range(first_day + days, first_day, -1):
        for hour in times:
            wanted.append(
                dt.datetime.combine(today - dt.timedelta(days=offset), dt.time(hour, 10), zone)
            )
    have = set(
        Observation.objects.filter(
            patient=patient, code=concept, effective_at__in=wanted
        ).values_list("effective_at", flat=True)
    )
    decimals = 0 if concept.unit == "mm[Hg]" else 1
    rows = []
    for at in wanted:
        if at in have:
            continue
        value = Decimal(str(round(rng.uniform(low, high), decimals)))
        rows.append(
            Observation(
                patient=patient,
                code=concept,
                category=concept.category or "vital-signs",
                value=value,
                unit=concept.unit,
                ref_low=concept.low,
                ref_high=concept.high,
                interpretation=interpret(value, concept.low, concept.high),
                effective_at=at,
                recorded_at=at,
            )
        )
    Observation.objects.bulk_create(rows)


def _taking(
    patient: Patient, atc: str, dosage: str, since: dt.date, physician: User
) -> MedicationStatement | None:
    """A current medication of `atc` from `since`, once."""
    medication = Medication.objects.filter(atc_code=atc).order_by("name").first()
    if medication is None:
        return None
    existing = MedicationStatement.objects.filter(patient=patient, medication=medication).first()
    if existing is not None:
        return existing
    return MedicationStatement.objects.create(
        patient=patient,
        medication=medication,
        dosage=dosage,
        started_on=since,
        recorded_by=physician,
    )


def _paul(context: dict[str, Any]) -> Patient:
    """A type 2 diabetic patient followed at home, on the demo care team."""
    users: dict[str, User] = context["users"]
    paul, _created = Patient.objects.update_or_create(
        ahv_number=PAUL,
        defaults={
            "organization": context["organization"],
            "family_name": "Girard",
            "given_names": "Paul",
            "birth_date": dt.date(1961, 7, 14),
            "sex": "male",
            "city": "Neuchâtel",
            "country": "CH",
            "preferred_language": "fr",
        },
    )
    team = default_team(paul)
    for handle in ("physician", "nurse", "coordinator"):
        do_add_member(team, users[handle], is_lead=handle == "physician")
    diabetes = Concept.objects.filter(system=CodeSystem.ICD10, code="E11.9").first()
    if diabetes and not Condition.objects.filter(patient=paul, code=diabetes).exists():
        Condition.objects.create(patient=paul, code=diabetes, recorded_by=users["physician"])
    _taking(paul, "A10BA02", "1000 mg 2×/j", dt.date(2021, 3, 1), users["physician"])
    return paul


def _glucose_drift(paul: Patient, now: dt.datetime, rng: random.Random) -> None:
    # Two weeks around 7.3 mmol/L, then two weeks around 8.9 (today's readings not needed).
    _readings(paul, GLUCOSE, now, days=14, times=(7, 19), low=6.6, high=8.0, rng=rng, first_day=14)
    _readings(paul, GLUCOSE, now, days=14, times=(7, 19), low=8.2, high=9.6, rng=rng)
    hba1c = _concept(HBA1C)
    if not Observation.objects.filter(patient=paul, code=hba1c).exists():
        at = now - dt.timedelta(days=210)
        Observation.objects.create(
            patient=paul,
            code=hba1c,
            category="laboratory",
            value=Decimal("7.2"),
            unit=hba1c.unit,
            ref_low=hba1c.low,
            ref_high=hba1c.high,
            effective_at=at,
            source="lab",
            recorded_at=at,
        )


def _paracetamol(hans: Patient, physician: User) -> None:
    """A second paracetamol line on top of the records demo's 1 g three times a day: 4 g/day at
    86, where 3 g is the limit (the classic duplicate across two prescriptions)."""
    medication = Medication.objects.filter(name="Paracétamol 500 mg cp").first()
    if (
        medication is None
        or MedicationRequest.objects.filter(
            patient=hans, medication=medication, prescription__status=Prescription.Status.ACTIVE
        ).exists()
    ):
        return
    access = get_patient_for_user(physician, hans.pk, action=None)
    do_sign_prescription(
        access,
        physician,
        [
            {
                "medication": medication,
                "dose": "1 cp",
                "route": "oral",
                "frequency": 2,
                "as_needed": False,
                "duration_days": 30,
                "quantity": 2,
                "instructions": "Matin et soir, pour les douleurs arthrosiques",
            }
        ],
    )
