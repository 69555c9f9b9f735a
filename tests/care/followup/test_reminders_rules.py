"""Which doses get reminded, when (quiet hours), by what notification, and when they count as
missed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apps.accounts.models import User
from apps.care.models import CarePlan, CarePreferences, DoseReminder, Pathway
from apps.care.services.reminders import (
    mark_missed,
    plan_doses,
    run_reminders,
    send_due_reminders,
)
from apps.notifications.models import Notification
from apps.records.models import (
    Medication,
    MedicationRequest,
    MedicationStatement,
    Patient,
    Prescription,
)

from .conftest import ZURICH, at


def test_a_dose_in_the_quiet_hours_is_reminded_at_their_end(
    prescribe: Callable[..., MedicationRequest], preferences: Callable[..., CarePreferences]
) -> None:
    # given: the 4th dose at 23:15, quiet from 22:30 to 07:00 (the defaults).
    preferences(dose_times=["08:00", "12:00", "18:00", "23:15"])
    line = prescribe(at(2026, 3, 20, 6), frequency=4)

    plan_doses(at(2026, 3, 21, 6))

    late = DoseReminder.objects.get(line=line, local_time="23:15", scheduled_for__date="2026-03-21")
    assert late.scheduled_for.astimezone(ZURICH).strftime("%d %H:%M") == "21 23:15"
    assert late.send_at.astimezone(ZURICH).strftime("%d %H:%M") == "22 07:00"
    noon = DoseReminder.objects.get(line=line, local_time="12:00", scheduled_for__date="2026-03-21")
    assert noon.send_at == noon.scheduled_for


def test_quiet_hours_of_the_patient_not_spanning_midnight(
    prescribe: Callable[..., MedicationRequest], preferences: Callable[..., CarePreferences]
) -> None:
    preferences(quiet_start=dt.time(11, 30), quiet_end=dt.time(13, 45))
    line = prescribe(at(2026, 3, 20, 6), frequency=3)

    plan_doses(at(2026, 3, 21, 6))

    noon = DoseReminder.objects.filter(line=line, local_time="12:00").first()
    assert noon is not None
    assert noon.send_at.astimezone(ZURICH).strftime("%H:%M") == "13:45"


def test_no_reminders_for_as_needed_lines_or_patients_without_an_account(
    prescribe: Callable[..., MedicationRequest],
    make_patient: Callable[..., Patient],
    clinician: User,
) -> None:
    from apps.records.services.care_team import default_team, do_add_member

    offline = make_patient(None, family_name="SansCompte")
    do_add_member(default_team(offline), clinician, is_lead=True)
    as_needed = prescribe(at(2026, 3, 20, 6), frequency=3, as_needed=True)
    no_account = prescribe(at(2026, 3, 20, 6), frequency=3, chart=offline)

    plan_doses(at(2026, 3, 21, 6))

    assert not DoseReminder.objects.filter(line__in=[as_needed, no_account]).exists()


def test_reminders_turned_off_by_the_patient_or_the_pathway(
    prescribe: Callable[..., MedicationRequest],
    preferences: Callable[..., CarePreferences],
    record: Patient,
    coordinator: User,
) -> None:
    line = prescribe(at(2026, 3, 20, 6), frequency=2)
    plan_doses(at(2026, 3, 21, 6))
    assert DoseReminder.objects.filter(line=line, status="planned").exists()

    # when: the patient turns them off, the planned (not yet sent) doses go.
    prefs = preferences(medication_reminders=False)
    plan_doses(at(2026, 3, 21, 6, 5))
    assert not DoseReminder.objects.filter(line=line, status="planned").exists()

    # and a pathway without reminders stops them although the patient wants them.
    prefs.medication_reminders = True
    prefs.save()
    pathway = Pathway.objects.create(
        code="palliative", name="Palliatif", medication_reminders=False
    )
    CarePlan.objects.create(
        patient=record,
        pathway=pathway,
        title="Soins",
        created_by=coordinator,
        coordinator=coordinator,
    )
    assert plan_doses(at(2026, 3, 21, 6, 10)) == 0


def test_doses_follow_the_prescription_period(
    prescribe: Callable[..., MedicationRequest], settings: Any
) -> None:
    # given: signed on 20 March at 15:00 local for 3 days, twice a day.
    settings.CARE_DOSE_HORIZON_HOURS = 24 * 7
    line = prescribe(at(2026, 3, 20, 14), frequency=2, duration_days=3)

    plan_doses(at(2026, 3, 20, 14, 30))

    days = [
        d.astimezone(ZURICH).strftime("%d %H:%M")
        for d in DoseReminder.objects.filter(line=line)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    ]
    # Not the morning dose before signing; nothing after the third day.
    assert days == ["20 18:00", "21 08:00", "21 18:00", "22 08:00", "22 18:00"]


def test_a_cancelled_prescription_stops_its_planned_doses(
    prescribe: Callable[..., MedicationRequest],
) -> None:
    line = prescribe(at(2026, 3, 20, 6), frequency=2)
    plan_doses(at(2026, 3, 21, 6))
    Prescription.objects.filter(pk=line.prescription_id).update(status="cancelled")

    plan_doses(at(2026, 3, 21, 7))

    assert not DoseReminder.objects.filter(line=line, send_at__gt=at(2026, 3, 21, 7)).exists()


def test_a_medication_ended_in_the_chart_stops_its_planned_doses(
    prescribe: Callable[..., MedicationRequest],
) -> None:
    # given two lines of one prescription, each a current medication
    line = prescribe(at(2026, 3, 20, 6), frequency=2, name="Bisoprolol 5 mg")
    other = MedicationRequest.objects.create(
        patient=line.patient,
        prescription=line.prescription,
        medication=Medication.objects.create(name="Metformine 500 mg", atc_code="A10BA02"),
        dose="1 cp",
        frequency=1,
        duration_days=30,
        quantity=1,
    )
    for each in (line, other):
        MedicationStatement.objects.create(
            patient=each.patient, medication=each.medication, prescription=each.prescription
        )
    plan_doses(at(2026, 3, 21, 6))

    # when bisoprolol is ended (stopped, or replaced by a new dose)
    MedicationStatement.objects.filter(medication=line.medication).update(status="completed")
    plan_doses(at(2026, 3, 21, 7))

    # then its planned doses are gone, and metformin's stay
    assert not DoseReminder.objects.filter(line=line, send_at__gt=at(2026, 3, 21, 7)).exists()
    assert DoseReminder.objects.filter(line=other, send_at__gt=at(2026, 3, 21, 7)).exists()


def test_the_reminder_names_no_medicine_and_links_to_the_dose(
    prescribe: Callable[..., MedicationRequest], patient: User
) -> None:
    line = prescribe(at(2026, 3, 20, 6), frequency=2, name="Bisoprolol 5 mg")
    plan_doses(at(2026, 3, 21, 6))

    sent = send_due_reminders(at(2026, 3, 21, 7, 1))  # 08:01 in Zurich

    assert sent == 1
    dose = DoseReminder.objects.get(line=line, status="sent")
    note = Notification.objects.get(user=patient, kind="care.reminder")
    assert "08:00" in note.title
    assert "Bisoprolol" not in note.title + note.body
    assert note.link == f"/care/doses/{dose.pk}/"
    assert send_due_reminders(at(2026, 3, 21, 7, 2)) == 0


def test_doses_due_together_make_one_notification(
    prescribe: Callable[..., MedicationRequest], patient: User
) -> None:
    prescribe(at(2026, 3, 20, 6), frequency=2)
    prescribe(at(2026, 3, 20, 6), frequency=1)
    plan_doses(at(2026, 3, 21, 6))

    assert send_due_reminders(at(2026, 3, 21, 7, 1)) == 2

    note = Notification.objects.get(user=patient, kind="care.reminder")
    assert note.link == "/care/"


def test_unanswered_doses_are_missed_after_the_answer_window(
    prescribe: Callable[..., MedicationRequest],
) -> None:
    line = prescribe(at(2026, 3, 20, 6), frequency=2)
    run_reminders(at(2026, 3, 21, 7, 1))
    dose = DoseReminder.objects.get(line=line, status="sent")

    assert mark_missed(at(2026, 3, 21, 18, 59)) == 0  # 11 h 58 after the reminder
    assert mark_missed(at(2026, 3, 21, 19, 0)) == 1
    dose.refresh_from_db()
    assert dose.status == DoseReminder.Status.MISSED


def test_a_reminder_too_late_to_send_is_not_sent_but_missed(
    prescribe: Callable[..., MedicationRequest], patient: User
) -> None:
    # given: planned, then the workers were down for a whole day.
    line = prescribe(at(2026, 3, 20, 6), frequency=1)
    plan_doses(at(2026, 3, 21, 6))

    run_reminders(at(2026, 3, 22, 6, 30))

    first = DoseReminder.objects.get(line=line, scheduled_for=at(2026, 3, 21, 7))
    assert first.status == DoseReminder.Status.MISSED
    assert not Notification.objects.filter(user=patient, kind="care.reminder").exists()
