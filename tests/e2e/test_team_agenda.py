"""The team agenda in a real browser: a coordinator books a joint appointment on a phone."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, Role, User
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.models import (
    Appointment,
    AppointmentType,
    AvailabilityRule,
    Location,
    Schedule,
)
from apps.scheduling.services.slots import clinic_zone
from tests.conftest import verified_client
from tests.e2e.conftest import check_accessibility, share_session

pytestmark = pytest.mark.e2e


@pytest.fixture
def team(make_user: Callable[..., User], organization: Organization) -> dict[str, Any]:
    """A physician and a nurse with weekday mornings at the policlinic, a coordinator, a patient."""
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    nurse = make_user(Role.NURSE, organization=organization, first_name="Sophie", last_name="Meier")
    coordinator = make_user(
        Role.COORDINATOR, organization=organization, first_name="Camille", last_name="Rochat"
    )
    patient = Patient.objects.create(
        organization=organization,
        family_name="Dubois",
        given_names="Marie",
        birth_date=dt.date(1958, 4, 12),
        sex="female",
    )
    for member in (physician, nurse, coordinator):
        do_add_member(default_team(patient), member)
    place = Location.objects.create(organization=organization, name="Policlinique, cabinet 2")
    joint = AppointmentType.objects.create(
        code="joint",
        name="Consultation conjointe",
        name_en="Joint visit",
        minutes=45,
        mode="in_person",
        professions=[Role.PHYSICIAN, Role.NURSE],
        patient_bookable=False,
    )
    for clinician in (physician, nurse):
        schedule = Schedule.objects.create(clinician=clinician)
        schedule.appointment_types.add(joint)
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
    return {
        "physician": physician,
        "nurse": nurse,
        "coordinator": coordinator,
        "patient": patient,
        "joint": joint,
    }


def test_a_coordinator_books_a_joint_appointment_from_the_team_agenda(
    page: Page, live_server: Any, team: dict[str, Any]
) -> None:
    share_session(page, verified_client(team["coordinator"]), live_server.url)
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": live_server.url}]
    )
    today = dt.datetime.now(clinic_zone()).date()
    tuesday = today + dt.timedelta(days=(1 - today.weekday()) % 7 + 7)

    # the coordinator opens the team agenda on a phone: it passes axe-core and fits
    page.goto("/clinic/agenda/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Team agenda")
    check_accessibility(page)

    # they go to the booking form and choose the patient, the kind, both professionals, a day
    page.get_by_role("button", name="Book an appointment").click()
    check_accessibility(page)
    page.get_by_role("combobox", name="Patient").select_option(label="Dubois Marie (12.04.1958)")
    page.get_by_label("Kind of appointment").select_option(label="Joint visit")
    page.get_by_label("Jean Favre").check()
    page.get_by_label("Sophie Meier").check()
    page.get_by_label(re.compile(r"^Date")).fill(tuesday.isoformat())
    page.get_by_role("button", name="Show common free times").click()

    # they see the common free times and choose the first one (08:00)
    suggestions = page.locator("[data-suggestions]")
    expect(suggestions).to_be_visible()
    check_accessibility(page)
    suggestions.get_by_role("button", name="08:00").first.click()

    # the agenda of that day shows the appointment in both columns, marked as joint
    expect(page.get_by_role("heading", level=1)).to_have_text("Team agenda")
    entries = page.locator("[data-agenda-entry].is-joint")
    expect(entries).to_have_count(2)
    for clinician in (team["physician"], team["nurse"]):
        cell = page.locator(f"td[data-clinician='{clinician.pk}'] [data-agenda-entry]")
        expect(cell).to_contain_text("Dubois Marie")
    check_accessibility(page)
    appointment = Appointment.objects.get(patient=team["patient"])
    assert appointment.starts_at.astimezone(clinic_zone()) == dt.datetime.combine(
        tuesday, dt.time(8), tzinfo=clinic_zone()
    )
    assert set(appointment.participants.values_list("user_id", flat=True)) == {
        team["physician"].pk,
        team["nurse"].pk,
    }

    # the week view and the availability pages pass too
    page.goto(f"/clinic/agenda/?view=week&date={tuesday.isoformat()}")
    expect(page.locator("[data-agenda-entry].is-joint")).to_have_count(2)
    check_accessibility(page)
    page.goto("/clinic/availability/")
    page.get_by_role("link", name="Jean Favre").click()
    expect(page.locator("tr[data-rule]")).to_have_count(5)
    check_accessibility(page)
