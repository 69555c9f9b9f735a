"""Case-management tasks in two browsers at once, on phones: the physician writes a task for
the nurse from the patient's chart and keeps "My tasks — Created by me" open; the nurse finds
it in her list, opens it and completes it with a report; the physician's open list shows it
done without a reload, with the counts updated. Every page passes axe-core at 360 px.

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
from apps.care.models import Task
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from tests.e2e.asgi_server import asgi_server  # noqa: F401 - the fixture
from tests.e2e.conftest import Browsers, check_accessibility

pytestmark = pytest.mark.e2e

LIVE = 10_000  # ms: generous for CI; an event normally shows within a second


def test_a_nurse_completes_a_task_and_the_physician_sees_it_done_live(
    browsers: Browsers, make_user: Callable[..., User], organization: Organization
) -> None:
    # given a patient whose care team is a physician and a nurse
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    nurse = make_user(Role.NURSE, organization=organization, first_name="Sophie", last_name="Meier")
    chart = Patient.objects.create(
        organization=organization,
        family_name="Dubois",
        given_names="Marie",
        birth_date=dt.date(1958, 4, 12),
        sex="female",
    )
    do_add_member(default_team(chart), physician, is_lead=True)
    do_add_member(default_team(chart), nurse)

    # when the physician writes a task for the nurse from the chart's "Tasks" tab
    doctor = browsers.page_for(physician)
    doctor.goto(f"/clinic/patients/{chart.pk}/tasks/")
    expect(doctor.locator("[data-task-list] [data-empty]")).to_be_visible()
    check_accessibility(doctor)
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    doctor.get_by_label("Kind").select_option("wound-care")
    doctor.get_by_label("Title").fill("Refaire le pansement du pied gauche")
    doctor.get_by_label("For", exact=True).select_option(f"user:{nurse.pk}")
    doctor.get_by_label("Priority").select_option("urgent")
    doctor.get_by_label("Due on").fill(tomorrow.isoformat())
    doctor.get_by_label("at", exact=True).fill("10:30")
    doctor.get_by_label("Instructions").fill("Pansement hydrocolloïde ; surveiller la rougeur.")
    doctor.get_by_role("button", name="Write the task").click()

    # then the task's page shows it, waiting for the nurse
    expect(doctor).to_have_url(re.compile(r"/clinic/tasks/\d+/$"))
    task = Task.objects.get(patient=chart)
    expect(doctor.locator("[data-task-status]")).to_have_text("To do")
    expect(doctor.locator("[data-task-assignee]")).to_contain_text("Sophie Meier")
    check_accessibility(doctor)

    # and stays open in one tab, while another tab shows their "Created by me" list
    task_tab = doctor.context.new_page()
    task_tab.on("pageerror", lambda error: browsers.errors.append(f"{task_tab.url}: {error}"))
    task_tab.goto(f"/clinic/tasks/{task.pk}/")
    expect(task_tab.locator("body")).to_have_attribute("data-realtime", "connected")
    doctor.goto("/clinic/tasks/?tab=created")
    row = doctor.locator(f"#task-{task.pk}")
    expect(row).to_contain_text("Refaire le pansement du pied gauche")
    expect(row.locator("[data-task-status]")).to_have_text("To do")
    expect(doctor.locator("body")).to_have_attribute("data-realtime", "connected")
    doctor.evaluate("window.__sameDocument = true")
    check_accessibility(doctor)

    # when the nurse opens "My tasks", finds it and opens it
    ward = browsers.page_for(nurse)
    ward.goto("/clinic/tasks/")
    expect(ward.locator('[data-tab-key="mine"] .tab-count')).to_have_text("(1)")
    mine = ward.locator(f"#task-{task.pk}")
    expect(mine).to_contain_text("Marie Dubois")
    expect(mine).to_contain_text("Urgent")
    check_accessibility(ward)
    mine.get_by_role("link").click()
    expect(ward).to_have_url(re.compile(rf"/clinic/tasks/{task.pk}/$"))
    expect(ward.locator("main")).to_contain_text("surveiller la rougeur")
    check_accessibility(ward)

    # and completes it with her report
    ward.get_by_label("Report").fill("Plaie propre, pansement refait ; contrôle dans 3 jours.")
    ward.get_by_role("button", name="Mark as done").click()

    # then her page says so, with the report and the history
    expect(ward.locator(".message-success")).to_contain_text("The task is done.")
    expect(ward.locator("[data-task-status]")).to_have_text("Done")
    expect(ward.locator("[data-task-report]")).to_contain_text("contrôle dans 3 jours")
    expect(ward.locator("[data-task-actions]")).to_have_count(0)
    check_accessibility(ward)

    # and the physician's open list shows it done, live, with its counts
    expect(row.locator("[data-task-status]")).to_have_text("Done", timeout=LIVE)
    expect(row).to_contain_text("Done on")
    assert doctor.evaluate("window.__sameDocument") is True
    task.refresh_from_db()
    assert (task.status, task.completed_by_id) == (Task.Status.COMPLETED, nurse.pk)
    check_accessibility(doctor)

    # and their open task page shows the new status, the report, and no more actions
    expect(task_tab.locator("[data-task-status]")).to_have_text("Done", timeout=LIVE)
    expect(task_tab.locator("[data-task-report]")).to_contain_text("Plaie propre")
    expect(task_tab.locator("[data-task-actions]")).to_be_hidden()
    check_accessibility(task_tab)
