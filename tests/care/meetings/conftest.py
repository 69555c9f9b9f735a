"""Meetings cast: a tumour board chaired by `clinician` with `nurse` and `coordinator`, the
record of `patient` with something in it to summarise, and signed-in clients."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.care.models import Meeting, MeetingCase
from apps.care.services.meetings import do_add_case, do_schedule_meeting
from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    Condition,
    DiagnosticReport,
    Medication,
    MedicationStatement,
    Observation,
    Patient,
)
from tests.care import helpers


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def tomorrow_at(hour: int) -> dt.datetime:
    day = timezone.localdate() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, 0)))


@pytest.fixture
def make_meeting(clinician: User, nurse: User, coordinator: User) -> Callable[..., Meeting]:
    def make(
        chair: User | None = None, participants: list[User] | None = None, **fields: Any
    ) -> Meeting:
        fields.setdefault("title", "RCP oncologie thoracique")
        fields.setdefault("kind", Meeting.Kind.TUMOUR_BOARD)
        fields.setdefault("starts_at", tomorrow_at(14))
        fields.setdefault("ends_at", tomorrow_at(15))
        people = participants if participants is not None else [nurse, coordinator]
        return do_schedule_meeting(
            chair or clinician, participant_ids=[p.pk for p in people], **fields
        )

    return make


@pytest.fixture
def meeting(make_meeting: Callable[..., Meeting]) -> Meeting:
    return make_meeting()


@pytest.fixture
def filled_record(record: Patient, clinician: User) -> Patient:
    """`record` with a problem, an allergy, a medication, measurements and a report."""

    def concept(code: str, display: str, **fields: Any) -> Concept:
        obj, _created = Concept.objects.get_or_create(
            system=fields.pop("system", CodeSystem.LOINC),
            code=code,
            defaults={"display": display, **fields},
        )
        return obj

    base = {"patient": record, "recorded_by": clinician}
    Condition.objects.create(
        **base,
        code=concept("254637007", "Non-small cell lung cancer", system=CodeSystem.SNOMED),
        onset_date=dt.date(2026, 9, 1),
    )
    AllergyIntolerance.objects.create(
        **base,
        substance=concept("764146007", "Penicillin", system=CodeSystem.SNOMED),
        category="medication",
        criticality="high",
        reaction="urticaire",
    )
    medication, _created = Medication.objects.get_or_create(
        name="Metformine", defaults={"atc_code": "A10BA02", "strength": "500 mg"}
    )
    MedicationStatement.objects.create(**base, medication=medication, dosage="1-0-1")
    weight = concept("29463-7", "Body weight", unit="kg")
    for days, value in ((20, "71.0"), (2, "68.5")):
        Observation.objects.create(
            **base,
            code=weight,
            category="vital-signs",
            value=Decimal(value),
            unit="kg",
            effective_at=timezone.now() - dt.timedelta(days=days),
        )
    DiagnosticReport.objects.create(
        **base,
        code=concept("24627-2", "Chest CT"),
        category="RAD",
        issued_at=timezone.now() - dt.timedelta(days=5),
        conclusion="Masse lobaire supérieure droite de 32 mm, sans adénopathie médiastinale.",
    )
    return record


@pytest.fixture
def case(meeting: Meeting, clinician: User, filled_record: Patient) -> MeetingCase:
    return do_add_case(
        clinician, meeting, filled_record.pk, "Chirurgie ou radiothérapie stéréotaxique ?"
    )


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    """Signed-in clients reading the pages in English."""
    return helpers.client_for
