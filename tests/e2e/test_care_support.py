"""Decision support in the browser: a physician opens the chart's "Decision support" tab, reads
each proposal's reason and the data it used (table and chart), sees a new proposal appear live,
accepts one for a nurse and finds the created task linked. Every state passes axe-core and fits
a 360 px screen.

Runs against a real daphne (tests/e2e/asgi_server.py) so that the live events reach the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect

from apps.accounts.models import Organization, Role, User
from apps.care.models import Proposal, Task
from apps.care.services.support.engine import evaluate_patient
from apps.care.services.support.rules import load_reference_rules
from apps.records.models import (
    CodeSystem,
    Concept,
    Medication,
    MedicationStatement,
    Observation,
    Patient,
)
from apps.records.reference import load_reference_data
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import verified_client
from tests.e2e.asgi_server import AsgiServer, asgi_server  # noqa: F401 - the fixture
from tests.e2e.conftest import PHONE, check_accessibility, share_session

pytestmark = pytest.mark.e2e

LIVE = 10_000  # ms: generous for CI; an event normally shows within a second


@pytest.fixture
def open_page(browser: Browser, asgi_server: AsgiServer) -> Iterator[Callable[[User], Page]]:  # noqa: F811
    contexts = []
    errors: list[str] = []

    def open_for(user: User) -> Page:
        context = browser.new_context(
            base_url=asgi_server.url,
            viewport=ViewportSize(width=PHONE["width"], height=PHONE["height"]),
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        share_session(page, verified_client(user), asgi_server.url)
        context.add_cookies(
            [{"name": django_settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": asgi_server.url}]
        )
        return page

    yield open_for
    for context in contexts:
        context.close()
    assert not errors, f"uncaught JavaScript errors: {errors}"


def take(chart: Patient, name: str, **fields: Any) -> MedicationStatement:
    return MedicationStatement.objects.create(
        patient=chart, medication=Medication.objects.get(name=name), **fields
    )


@pytest.fixture
def chart(make_user: Callable[..., User], organization: Organization) -> dict[str, Any]:
    """Marie Dubois on amlodipine with a high week of home blood pressure, and ramipril added
    ten days ago without a potassium since; Dr Favre leads her team with nurse Meier."""
    load_reference_data()
    load_reference_rules()
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    nurse = make_user(Role.NURSE, organization=organization, first_name="Sophie", last_name="Meier")
    patient = Patient.objects.create(
        family_name="Dubois",
        given_names="Marie",
        birth_date=dt.date(1958, 4, 12),
        sex="female",
        organization=organization,
    )
    team = default_team(patient)
    do_add_member(team, physician, is_lead=True)
    do_add_member(team, nurse)
    zone = ZoneInfo(django_settings.TIME_ZONE)
    today = timezone.localdate()
    take(
        patient,
        "Amlodipine 5 mg cp",
        dosage="5 mg le matin",
        started_on=today - dt.timedelta(days=300),
    )
    take(
        patient, "Ramipril 5 mg cp", dosage="5 mg le soir", started_on=today - dt.timedelta(days=10)
    )
    systolic = Concept.objects.get(system=CodeSystem.LOINC, code="8480-6")
    for offset in range(7, 0, -1):
        for hour, value in ((7, 144 + offset), (19, 139 + offset)):
            Observation.objects.create(
                patient=patient,
                code=systolic,
                category="vital-signs",
                value=Decimal(value),
                unit=systolic.unit,
                effective_at=dt.datetime.combine(
                    today - dt.timedelta(days=offset), dt.time(hour), zone
                ),
            )
    made = {p.rule_code: p for p in evaluate_patient(patient)}
    # Ramipril started before the 7-day window: the treatment (amlodipine and ramipril) is
    # unchanged over the week, so the dosage review fires; ramipril's follow-up labs are due.
    assert set(made) == {"bp-above-target-on-treatment", "potassium-creatinine-after-raas"}
    return {"physician": physician, "nurse": nurse, "patient": patient, "proposals": made}


def test_physician_reads_a_proposal_sees_a_new_one_live_and_accepts_it(
    open_page: Callable[[User], Page], chart: dict[str, Any]
) -> None:
    patient: Patient = chart["patient"]
    bp: Proposal = chart["proposals"]["bp-above-target-on-treatment"]
    lab: Proposal = chart["proposals"]["potassium-creatinine-after-raas"]

    # the physician opens the chart's decision-support tab
    page = open_page(chart["physician"])
    page.goto(f"/clinic/patients/{patient.pk}/")
    page.get_by_role("link", name="Decision support").click()
    expect(page.get_by_role("heading", name="Decision support", level=2)).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-realtime", "connected")

    # each proposal shows its reason and the data it used
    bp_card = page.locator(f"#proposal-{bp.pk}")
    expect(bp_card).to_contain_text("daily mean above 135 mm[Hg] on each of the last 7 days")
    expect(
        bp_card.get_by_role("region", name="Measurements used").locator("tbody tr")
    ).to_have_count(14)
    expect(bp_card.locator("canvas[data-proposal-chart]")).to_be_visible()
    expect(bp_card).to_contain_text("Amlodipine 5 mg cp")
    lab_card = page.locator(f"#proposal-{lab.pk}")
    expect(lab_card).to_contain_text("Ramipril 5 mg cp started on")
    expect(lab_card).to_contain_text("Potassium")
    check_accessibility(page)

    # a new finding appears without a reload (warfarin and ibuprofen, from another team member)
    page.evaluate("window.__sameDocument = true")
    take(patient, "Warfarine 5 mg cp", dosage="selon INR", started_on=timezone.localdate())
    take(patient, "Ibuprofène 400 mg cp", dosage="400 mg 3×/j", started_on=timezone.localdate())
    [interaction] = evaluate_patient(patient)
    live = page.locator(f"#proposal-{interaction.pk}")
    expect(live).to_contain_text("Drug interaction to assess", timeout=LIVE)
    assert page.evaluate("window.__sameDocument") is True
    check_accessibility(page)

    # the physician accepts the lab proposal for the nurse
    lab_card.get_by_label("Task for").select_option(label="Sophie Meier · Nurse")
    lab_card.get_by_role("button", name="Accept and create the task").click()
    expect(page.locator(".message-success")).to_contain_text("the task is created")
    task = Task.objects.get()
    assert task.assignee == chart["nurse"] and task.origin == "decision-support"
    decided = page.locator(f"#proposal-{lab.pk}")
    expect(decided).to_contain_text("Accepted by Jean Favre")
    link = decided.get_by_role("link", name=f"Task: {task.title}")
    expect(link).to_have_attribute("href", f"/clinic/tasks/{task.pk}/")
    check_accessibility(page)
    lab.refresh_from_db()
    assert lab.status == Proposal.Status.ACCEPTED and lab.task == task
