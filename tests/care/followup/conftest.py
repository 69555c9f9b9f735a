"""Follow-up cast: signed prescriptions for `record` (the patient of tests/care/conftest.py),
backdated to the moment a test needs, and the reference questionnaires."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from apps.accounts.models import User
from apps.care.models import CarePreferences, Questionnaire
from apps.care.services.questionnaires import load_reference_questionnaires
from apps.records.models import Medication, MedicationRequest, Patient, Practitioner, Prescription
from apps.records.services.prescriptions import do_sign_prescription
from tests.care.conftest import access_as

ZURICH = ZoneInfo("Europe/Zurich")
UTC = dt.UTC


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, zone: Any = UTC
) -> dt.datetime:
    """An aware moment, by default in UTC."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone)


@pytest.fixture(autouse=True)
def _followup_settings(settings: Any) -> None:
    settings.CARE_DOSE_TIMES = ["08:00", "12:00", "18:00", "22:00"]
    settings.CARE_QUIET_HOURS = ["22:30", "07:00"]
    settings.CARE_DOSE_ANSWER_HOURS = 12
    settings.CARE_DOSE_HORIZON_HOURS = 36
    settings.CARE_SATISFACTION_SURVEY = "satisfaction-consultation"
    settings.TIME_ZONE = "Europe/Zurich"


@pytest.fixture
def practitioner(clinician: User) -> Practitioner:
    return Practitioner.objects.create(
        user=clinician, registration_number="7601000123456", qualification="FMH médecine interne"
    )


@pytest.fixture
def prescribe(
    record: Patient, clinician: User, practitioner: Practitioner
) -> Callable[..., MedicationRequest]:
    """Sign a one-line prescription through the records service, signed at `signed_at`."""
    counter = {"n": 0}

    def make(
        signed_at: dt.datetime,
        *,
        chart: Patient | None = None,
        frequency: int = 2,
        duration_days: int = 10,
        as_needed: bool = False,
        name: str = "",
        valid_days: int = 90,
    ) -> MedicationRequest:
        counter["n"] += 1
        medication, _ = Medication.objects.get_or_create(
            name=name or f"Metformine {counter['n']}00 mg", defaults={"atc_code": "A10BA02"}
        )
        prescription = do_sign_prescription(
            access_as(clinician, chart or record),
            clinician,
            [
                {
                    "medication": medication,
                    "dose": "1 comprimé",
                    "route": "oral",
                    "frequency": frequency,
                    "as_needed": as_needed,
                    "duration_days": duration_days,
                    "quantity": 1,
                }
            ],
            valid_days=valid_days,
            override_reason="Traitement connu",
        )
        # The service signs "now"; the tests live on the dates of the daylight-saving changes.
        Prescription.objects.filter(pk=prescription.pk).update(
            signed_at=signed_at,
            valid_until=signed_at.astimezone(ZURICH).date() + dt.timedelta(days=valid_days),
        )
        return MedicationRequest.objects.get(prescription=prescription)

    return make


@pytest.fixture
def preferences(record: Patient) -> Callable[..., CarePreferences]:
    def make(chart: Patient | None = None, **fields: Any) -> CarePreferences:
        prefs, _ = CarePreferences.objects.update_or_create(
            patient=chart or record, defaults=fields
        )
        return prefs

    return make


@pytest.fixture
def questionnaires(db: None) -> dict[str, Questionnaire]:
    load_reference_questionnaires()
    return {q.code: q for q in Questionnaire.objects.all()}
