"""Records cast: the patients of tests/conftest.py with their records and a care team."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.records.models import (
    CodeSystem,
    Concept,
    Medication,
    MedicationRequest,
    Observation,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.services.care_team import default_team, do_add_member


@pytest.fixture
def make_patient(db: None, organization: Organization) -> Callable[..., Patient]:
    counter = {"n": 0}

    def make(user: User | None = None, **fields: Any) -> Patient:
        counter["n"] += 1
        fields.setdefault("family_name", user.last_name if user else f"Patient{counter['n']}")
        fields.setdefault("given_names", user.first_name if user else "Test")
        fields.setdefault("birth_date", dt.date(1960, 3, counter["n"] % 28 + 1))
        fields.setdefault("sex", "female")
        fields.setdefault("organization", organization)
        return Patient.objects.create(user=user, **fields)

    return make


@pytest.fixture
def practitioner(clinician: User) -> Practitioner:
    return Practitioner.objects.create(
        user=clinician, registration_number="7601000123456", qualification="FMH médecine interne"
    )


@pytest.fixture
def record(make_patient: Callable[..., Patient], patient: User, clinician: User) -> Patient:
    """The record of `patient`; `clinician` is on its care team."""
    chart = make_patient(patient, ahv_number="756.1234.5678.97")
    do_add_member(default_team(chart), clinician)
    return chart


@pytest.fixture
def record2(make_patient: Callable[..., Patient], patient2: User, clinician: User) -> Patient:
    """The record of `patient2`; `clinician` is on its care team too."""
    chart = make_patient(patient2)
    do_add_member(default_team(chart), clinician)
    return chart


@pytest.fixture
def concept(db: None) -> Callable[..., Concept]:
    def make(code: str = "8867-4", system: str = CodeSystem.LOINC, **fields: Any) -> Concept:
        defaults = {"display": f"Code {code}", "category": "vital-signs", "unit": "/min"}
        defaults.update(fields)
        obj, _ = Concept.objects.get_or_create(system=system, code=code, defaults=defaults)
        return obj

    return make


@pytest.fixture
def heart_rate(concept: Callable[..., Concept]) -> Concept:
    return concept(
        "8867-4",
        display="Heart rate",
        display_fr="Fréquence cardiaque",
        unit="/min",
        low=Decimal(50),
        high=Decimal(100),
    )


@pytest.fixture
def make_observation(heart_rate: Concept) -> Callable[..., Observation]:
    def make(patient: Patient, value: Any = 72, **fields: Any) -> Observation:
        fields.setdefault("code", heart_rate)
        fields.setdefault("category", "vital-signs")
        fields.setdefault("unit", fields["code"].unit or "/min")
        fields.setdefault("ref_low", fields["code"].low)
        fields.setdefault("ref_high", fields["code"].high)
        fields.setdefault("effective_at", timezone.now())
        return Observation.objects.create(patient=patient, value=Decimal(str(value)), **fields)

    return make


@pytest.fixture
def medication(db: None) -> Callable[..., Medication]:
    def make(
        name: str = "Amoxicilline 500 mg", atc_code: str = "J01CA04", **fields: Any
    ) -> Medication:
        obj, _ = Medication.objects.get_or_create(
            name=name, defaults={"atc_code": atc_code, **fields}
        )
        return obj

    return make


@pytest.fixture
def make_draft(clinician: User) -> Callable[..., Prescription]:
    """A draft prescription as the FHIR API stores it, with one line per medication."""

    def make(patient: Patient, *medications: Medication, **line: Any) -> Prescription:
        draft = Prescription.objects.create(
            patient=patient,
            prescriber=clinician,
            recorded_by=clinician,
            status=Prescription.Status.DRAFT,
            number=f"DRAFT-{secrets.token_hex(6)}",
            verification_token=secrets.token_urlsafe(24),
        )
        for medication in medications:
            fields = {"dose": "1 cp", "frequency": 3, "duration_days": 7, "quantity": 2, **line}
            MedicationRequest.objects.create(
                patient=patient,
                prescription=draft,
                medication=medication,
                recorded_by=clinician,
                **fields,
            )
        return draft

    return make
