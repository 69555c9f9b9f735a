"""A physician sets a patient's alert thresholds on a phone: adds a rule, applies defaults."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, Role, User
from apps.devices.models import ThresholdRule
from apps.records.models import CodeSystem, Concept, Condition, Patient
from apps.records.reference import load_reference_data
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import verified_client
from tests.e2e.conftest import check_accessibility, share_session

pytestmark = pytest.mark.e2e


@pytest.fixture
def chart(make_user: Callable[..., User], organization: Organization) -> dict[str, Any]:
    """A patient with diabetes, and a physician on the care team."""
    load_reference_data()
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    patient = Patient.objects.create(
        organization=organization,
        family_name="Dubois",
        given_names="Marie",
        birth_date=dt.date(1958, 4, 12),
        sex="female",
    )
    do_add_member(default_team(patient), physician)
    diabetes, _ = Concept.objects.get_or_create(
        system=CodeSystem.ICD10, code="E11.9", defaults={"display": "Type 2 diabetes"}
    )
    Condition.objects.create(patient=patient, code=diabetes)
    return {"physician": physician, "patient": patient}


def test_physician_adds_a_rule_and_applies_defaults_on_a_phone(
    page: Page, live_server: Any, chart: dict[str, Any]
) -> None:
    patient: Patient = chart["patient"]
    share_session(page, verified_client(chart["physician"]), live_server.url)
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": live_server.url}]
    )
    page.goto(f"/clinic/patients/{patient.pk}/thresholds/")
    expect(page.locator("main")).to_contain_text("No threshold set for this patient")
    expect(page.locator("[data-template=diabetes]")).to_have_attribute("data-suggested", "")
    check_accessibility(page)

    # when the physician adds "SpO2 below 92 %, 2 of the last 3 readings"
    form = page.locator("#add-rule")
    form.get_by_label("Measurement").select_option("59408-5")
    form.get_by_label("Rule:", exact=True).select_option("below")
    form.get_by_label("Limit").fill("92")
    form.get_by_label("Readings out of range (N)").fill("2")
    form.get_by_label("Among the last (M) readings").fill("3")
    form.get_by_label("Hysteresis").fill("2")
    form.get_by_label("Severity").select_option("critical")
    form.get_by_role("button", name="Add the rule").click()

    # then it is listed, and the page is still accessible
    expect(page.locator(".messages")).to_contain_text("The rule was added.")
    row = page.locator("tr[data-rule]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("below 92 %")
    expect(row).to_contain_text("2 of the last 3")
    check_accessibility(page)

    # when they apply the defaults suggested for diabetes
    page.get_by_role("button", name="Apply “Diabetes”").click()

    # then its three rules join the list
    expect(page.locator(".messages")).to_contain_text("3 rules added.")
    expect(page.locator("tr[data-rule]")).to_have_count(4)
    assert ThresholdRule.objects.filter(patient=patient, template="diabetes").count() == 3
    check_accessibility(page)

    # and the edit page is accessible at 360 px too
    page.locator("tr[data-rule]").first.get_by_role("button", name="Edit").click()
    expect(page.get_by_role("button", name="Save the rule")).to_be_visible()
    check_accessibility(page)
