"""The patient's "taken"/"skipped" answers, once each, make the adherence record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import DoseReminder
from apps.care.services import CareError
from apps.care.services.reminders import adherence, do_answer_dose, mark_missed, plan_doses
from apps.records.models import MedicationRequest, Patient

from .conftest import at


def doses_of(line: MedicationRequest) -> list[DoseReminder]:
    return list(DoseReminder.objects.filter(line=line).order_by("scheduled_for"))


def test_adherence_is_computed_from_the_answers(
    prescribe: Callable[..., MedicationRequest], patient: User, record: Patient, settings: Any
) -> None:
    # given: two lines over two days (2 + 1 doses a day), answered or not.
    settings.CARE_DOSE_HORIZON_HOURS = 48
    twice = prescribe(at(2026, 3, 20, 5), frequency=2, name="Metformine 500 mg")
    once = prescribe(at(2026, 3, 20, 5), frequency=1, name="Lisinopril 10 mg")
    plan_doses(at(2026, 3, 21, 5))
    t1, t2, t3, t4 = doses_of(twice)[:4]
    o1, o2 = doses_of(once)[:2]
    for dose in (t1, t2, t3, o1):
        do_answer_dose(patient, dose, True, now=dose.scheduled_for + dt.timedelta(minutes=10))
    do_answer_dose(patient, o2, False, "Oublié à la maison", now=o2.scheduled_for)
    # t4 (22 March 18:00 local) gets no answer and is missed the next morning.
    mark_missed(at(2026, 3, 23, 6))

    # when
    result = adherence(record, 30, now=at(2026, 3, 23, 8))

    # then: 4 taken of 6 counted; per line 3/4 and 1/2.
    assert (result.taken, result.counted, result.percent) == (4, 6, 67)
    by_name = {row.line.medication.name: row for row in result.lines}
    assert (by_name["Metformine 500 mg"].taken, by_name["Metformine 500 mg"].missed) == (3, 1)
    assert by_name["Metformine 500 mg"].percent == 75
    assert (by_name["Lisinopril 10 mg"].skipped, by_name["Lisinopril 10 mg"].percent) == (1, 50)
    days = {point["date"]: point for point in result.series}
    assert len(result.series) == 30
    assert days["2026-03-21"] == {"date": "2026-03-21", "taken": 3, "counted": 3, "percent": 100}
    assert days["2026-03-22"]["percent"] == 33
    assert days["2026-03-20"]["percent"] is None
    assert DoseReminder.objects.get(pk=o2.pk).skip_reason == "Oublié à la maison"


def test_a_dose_is_answered_once_by_its_patient_only(
    prescribe: Callable[..., MedicationRequest],
    patient: User,
    patient2: User,
    clinician: User,
    record2: Patient,
) -> None:
    line = prescribe(at(2026, 3, 20, 5), frequency=1)
    plan_doses(at(2026, 3, 21, 5))
    dose = doses_of(line)[0]
    moment = dose.scheduled_for

    for intruder in (patient2, clinician):
        with pytest.raises(CareError):
            do_answer_dose(intruder, dose, True, now=moment)
    with pytest.raises(CareError, match="not due"):
        do_answer_dose(patient, dose, True, now=moment - dt.timedelta(hours=3))

    do_answer_dose(patient, dose, True, now=moment)
    with pytest.raises(CareError, match="already"):
        do_answer_dose(patient, dose, False, now=moment)

    dose.refresh_from_db()
    assert dose.status == DoseReminder.Status.TAKEN
    assert dose.answered_at == moment
    assert (
        AuditEvent.objects.filter(
            action=Action.UPDATE,
            actor_id=patient.pk,
            object_type="care.dosereminder",
            object_id=str(dose.pk),
            patient_id=str(dose.patient_id),
        ).count()
        == 1
    )


def test_a_missed_dose_can_no_longer_be_answered(
    prescribe: Callable[..., MedicationRequest], patient: User
) -> None:
    line = prescribe(at(2026, 3, 20, 5), frequency=1)
    plan_doses(at(2026, 3, 21, 5))
    dose = doses_of(line)[0]
    mark_missed(dose.send_at + dt.timedelta(hours=13))

    with pytest.raises(CareError, match="passed"):
        do_answer_dose(patient, dose, True, now=dose.send_at + dt.timedelta(hours=13))


def test_an_overlong_reason_is_refused(
    prescribe: Callable[..., MedicationRequest], patient: User
) -> None:
    line = prescribe(at(2026, 3, 20, 5), frequency=1)
    plan_doses(at(2026, 3, 21, 5))
    dose = doses_of(line)[0]

    with pytest.raises(CareError, match="too long"):
        do_answer_dose(patient, dose, False, "x" * 201, now=dose.scheduled_for)
