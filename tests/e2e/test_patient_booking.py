"""A patient on a phone books, moves and cancels an appointment; the pages pass axe-core."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, Role, User
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.forms_patient import SlotChoice
from apps.scheduling.models import (
    Appointment,
    AppointmentType,
    AvailabilityRule,
    Location,
    Schedule,
)
from tests.e2e.conftest import check_accessibility, sign_in_with_password

pytestmark = pytest.mark.e2e

APPOINTMENT_PAGE = re.compile(r"/appointments/(\d+)/$")


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    from apps.scheduling.services.slots import clinic_zone

    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=clinic_zone())


def next_monday() -> dt.date:
    from tests.scheduling.conftest import next_weekday

    return next_weekday(0)


@pytest.fixture
def agenda(make_user: Callable[..., User], organization: Organization) -> dict[str, object]:
    """A physician's weekday mornings at the policlinic; a patient on their care team."""
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    kind = AppointmentType.objects.create(
        code="follow-up",
        name="Consultation de suivi",
        name_en="Follow-up visit",
        minutes=30,
        mode="in_person",
        professions=[Role.PHYSICIAN],
    )
    place = Location.objects.create(organization=organization, name="Policlinique, salle 3")
    schedule = Schedule.objects.create(clinician=physician, specialty="Médecine interne")
    schedule.appointment_types.add(kind)
    for weekday in range(5):
        AvailabilityRule.objects.create(
            schedule=schedule,
            weekday=weekday,
            starts=dt.time(8),
            ends=dt.time(12),
            mode="in_person",
            location=place,
            valid_from=dt.date(2020, 1, 1),
        )
    patient_user = make_user(Role.PATIENT, first_name="Marie", last_name="Dubois")
    record = Patient.objects.create(
        user=patient_user,
        organization=organization,
        family_name="Dubois",
        given_names="Marie",
        birth_date=dt.date(1958, 4, 12),
        sex="female",
    )
    do_add_member(default_team(record), physician)
    return {"patient": patient_user, "record": record, "schedule": schedule, "type": kind}


def slot_button(kind: AppointmentType, schedule: Schedule, when: dt.datetime) -> str:
    return f'button[name=slot][value="{SlotChoice(kind.pk, schedule.pk, when).token}"]'


def test_a_patient_books_moves_and_cancels_on_a_phone(
    page: Page, agenda: dict[str, object]
) -> None:
    patient, record = agenda["patient"], agenda["record"]
    schedule, kind = agenda["schedule"], agenda["type"]
    assert isinstance(patient, User) and isinstance(record, Patient)
    assert isinstance(schedule, Schedule) and isinstance(kind, AppointmentType)
    monday = next_monday()
    sign_in_with_password(page, patient.email)

    # the portal menu leads to the appointments, and from there to booking
    page.goto("/")
    page.locator("nav a[href='/appointments/']").click()
    expect(page).to_have_url(re.compile(r"/appointments/$"))
    check_accessibility(page)
    page.locator("main a[href='/appointments/book/']").first.click()
    check_accessibility(page)

    # search: the kind of visit, from next Monday
    page.locator("select[name=type]").select_option(str(kind.pk))
    page.locator("input[name=date]").fill(monday.isoformat())
    page.locator("form[role=search] button[type=submit]").click()
    expect(page.locator(slot_button(kind, schedule, at(monday, 9)))).to_be_visible()
    check_accessibility(page)

    # pick 09:00, confirm with a reason
    page.locator(slot_button(kind, schedule, at(monday, 9))).click()
    expect(page.locator("textarea[name=reason]")).to_be_visible()
    check_accessibility(page)
    page.locator("textarea[name=reason]").fill("Contrôle de tension")
    page.locator("main form[method=post] button[type=submit]").click()
    expect(page).to_have_url(APPOINTMENT_PAGE)
    expect(page.locator(".message-success")).to_be_visible()
    check_accessibility(page)
    booked = Appointment.objects.get(patient=record, status="booked")
    assert (booked.starts_at, booked.reason) == (at(monday, 9), "Contrôle de tension")

    # move it to 10:30 the same day
    page.locator(f"main a[href='/appointments/{booked.pk}/move/']").click()
    page.locator("input[name=date]").fill(monday.isoformat())
    page.locator("main form.filters button[type=submit]").click()
    check_accessibility(page)
    page.locator(slot_button(kind, schedule, at(monday, 10, 30))).click()
    expect(page).not_to_have_url(re.compile(rf"/appointments/{booked.pk}/"))
    expect(page).to_have_url(APPOINTMENT_PAGE)
    moved = Appointment.objects.get(patient=record, status="booked")
    assert moved.starts_at == at(monday, 10, 30)
    assert moved.rescheduled_from_id == booked.pk

    # cancel it, giving a reason
    page.locator("details summary").click()
    page.locator("input[name=cancel-reason]").fill("Empêchée")
    page.locator("input[name=cancel-confirm]").check()
    page.locator("details form button[type=submit]").click()
    expect(page.locator(".message-success")).to_be_visible()
    moved.refresh_from_db()
    assert (moved.status, moved.cancel_reason) == ("cancelled", "Empêchée")
    expect(page.locator("details summary")).to_have_count(0)

    # the list shows both under past and cancelled; the waiting list page is usable too
    page.goto("/appointments/")
    expect(page.locator(f"main a[href='/appointments/{moved.pk}/']")).to_be_visible()
    check_accessibility(page)
    page.goto("/appointments/waiting-list/")
    check_accessibility(page)
