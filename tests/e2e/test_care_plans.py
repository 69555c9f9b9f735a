"""Care plans in the browser: a coordinator builds a plan from the heart-failure template in the
patient's chart and sees its goals, activities and tasks; a physician's open plan list and the
patient's open My care show the new plan, and a nurse's open plan page the coordinator's
change, without a reload; the patient reads the plan in plain words. Every page
passes axe-core and fits a 360 px screen.

Runs against a real daphne (tests/e2e/asgi_server.py) so that the WebSockets work.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts.models import Organization, Role, User
from apps.care.models import Activity, CarePlan, Task
from apps.care.reference import load_care_reference
from apps.records.models import Patient
from apps.records.reference import load_reference_data
from apps.records.services.care_team import default_team, do_add_member
from tests.e2e.asgi_server import asgi_server  # noqa: F401 - the fixture
from tests.e2e.conftest import Browsers, check_accessibility

pytestmark = pytest.mark.e2e

LIVE = 10_000  # ms: generous for CI; an event normally shows within a second


def test_a_coordinator_builds_a_plan_and_the_nurse_sees_changes_live(
    browsers: Browsers, make_user: Callable[..., User], organization: Organization
) -> None:
    # given a patient whose care team has a coordinator, a nurse and a physician
    load_reference_data()
    load_care_reference()
    coordinator = make_user(
        Role.COORDINATOR, organization=organization, first_name="Camille", last_name="Rochat"
    )
    nurse = make_user(Role.NURSE, organization=organization, first_name="Sophie", last_name="Meier")
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    patient = make_user(Role.PATIENT, first_name="Élise", last_name="Rochat")
    chart = Patient.objects.create(
        user=patient,
        family_name="Rochat",
        given_names="Élise",
        birth_date=dt.date(1949, 1, 3),
        sex="female",
        organization=organization,
    )
    team = default_team(chart)
    do_add_member(team, physician, is_lead=True)
    do_add_member(team, nurse)
    do_add_member(team, coordinator)
    start = timezone.localdate() - dt.timedelta(days=5)

    # when the coordinator opens the chart's care-plan tab and starts a new plan
    desk = browsers.page_for(coordinator)
    desk.goto(f"/clinic/patients/{chart.pk}/care-plans/")
    expect(desk.get_by_text("No care plan yet.")).to_be_visible()
    check_accessibility(desk)
    desk.get_by_role("button", name="New care plan").click()
    expect(desk).to_have_url(re.compile(r"/care-plans/new/$"))
    check_accessibility(desk)

    # and looks at what the heart-failure pathway will create before choosing it
    choice = desk.locator('[data-pathway="heart-failure"]')
    choice.locator("summary").click()
    expect(choice).to_contain_text("Stable weight: no gain of more than 2 kg in 3 days")
    expect(choice).to_contain_text("rises by more than 2 kg within 3 days")
    check_accessibility(desk)
    desk.get_by_label("Heart failure").check()
    desk.get_by_label(re.compile(r"^Start:?$")).fill(start.isoformat())
    desk.get_by_label("Coordinator").select_option(str(coordinator.pk))
    # (meanwhile the physician has the chart's plan list open, and the patient My care)
    colleague = browsers.page_for(physician)
    colleague.goto(f"/clinic/patients/{chart.pk}/care-plans/")
    own = browsers.page_for(patient)
    own.goto("/care/")
    expect(own.get_by_text("You have no care plan at the moment.")).to_be_visible()
    for page in (colleague, own):
        expect(page.locator("body")).to_have_attribute("data-realtime", "connected")
        expect(page.locator("[data-live-page]")).to_have_attribute("data-live", "ready")
        page.evaluate("window.__sameDocument = true")
    desk.get_by_role("button", name="Create the plan").click()

    # then the plan page shows its goals, activities and tasks
    plan = CarePlan.objects.get(patient=chart)
    expect(desk).to_have_url(re.compile(rf"/care/plans/{plan.pk}/$"))
    # and the physician's list and the patient's My care show the new plan without a reload
    for page in (colleague, own):
        expect(page.get_by_role("link", name=plan.title)).to_be_visible(timeout=LIVE)
        assert page.evaluate("window.__sameDocument") is True
    expect(colleague.locator(f"#progress-{plan.pk}")).to_have_attribute("value", "0")
    check_accessibility(colleague)
    check_accessibility(own)
    expect(desk.locator("#goals")).to_contain_text("Systolic blood pressure between 100 and 130")
    activities = desk.locator("#activities")
    expect(activities).to_contain_text("Nurse follow-up call")
    expect(activities).to_contain_text("Medication review")
    tasks = desk.locator("#plan-tasks tbody tr")
    expect(tasks).to_have_count(4)
    expect(desk.locator("#plan-tasks")).to_contain_text("Education: salt and fluids")
    check_accessibility(desk)

    # and the nurse has the same plan open
    ward = browsers.page_for(nurse)
    ward.goto(f"/care/plans/{plan.pk}/")
    expect(ward.locator("body")).to_have_attribute("data-realtime", "connected")
    expect(ward.locator("[data-care-plan]")).to_have_attribute("data-live", "ready")
    ward.evaluate("window.__sameDocument = true")
    education = plan.activities.get(kind=Activity.Kind.EDUCATION)
    row = ward.locator(f"#activity-{education.pk}")
    expect(row).to_have_attribute("data-status", "not-started")
    expect(row.locator("[data-overdue]")).to_be_visible()  # due 3 days after the start
    expect(ward.locator("[data-progress]")).to_have_text("0 %")

    # when the coordinator marks the education done
    desk.locator(f"#activity-{education.pk}").get_by_role(
        "button", name=re.compile("^Done")
    ).click()
    expect(desk.locator(".message-success")).to_contain_text("The activity is updated.")

    # then the nurse's page shows it without a reload
    expect(ward.locator(f"#activity-{education.pk}")).to_have_attribute(
        "data-status", "completed", timeout=LIVE
    )
    expect(ward.locator("[data-progress]")).to_have_text("17 %")
    assert ward.evaluate("window.__sameDocument") is True
    # so does the progress in the physician's list
    expect(colleague.locator(f"#progress-{plan.pk}")).to_have_attribute("value", "17", timeout=LIVE)
    check_accessibility(ward)
    assert Activity.objects.get(pk=education.pk).status == Activity.Status.COMPLETED
    assert Task.objects.filter(plan=plan).count() == 4

    # and the patient reads the plan in plain words, without the team's instructions
    home = browsers.page_for(patient)
    home.goto(f"/care/plans/{plan.pk}/")
    expect(home.locator("#goals")).to_contain_text("Stable weight")
    expect(home.get_by_role("heading", name="What is planned")).to_be_visible()
    expect(home.get_by_text(re.compile("Your next follow-up"))).to_be_visible()
    expect(home.locator("button[name=status]")).to_have_count(0)
    expect(home.locator("a[href^='/clinic/tasks/']")).to_have_count(0)
    check_accessibility(home)
