"""A multidisciplinary meeting in the browser, at 360 px: the chair schedules it, puts a
patient on the agenda, starts it, ticks who is present, writes the decision with a follow-up
action (a row added by the page's script), and signs; the signed decision shows read-only with
the link to its PDF in the record. Every page passes axe-core and fits a phone's screen.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from apps.accounts.models import User
from apps.care.models import Meeting, MeetingDecision, Origin, Task
from apps.records.models import DocumentReference, Patient
from tests.care.conftest import *  # noqa: F403 - the care cast (nurse, coordinator, record)
from tests.conftest import verified_client
from tests.e2e.asgi_server import AsgiServer, asgi_server  # noqa: F401 - the fixture
from tests.e2e.conftest import PHONE, check_accessibility, share_session

pytestmark = pytest.mark.e2e

LIVE = 10_000  # ms: generous for CI; an event normally shows within a second


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def test_chair_runs_a_meeting_to_a_signed_decision(
    page: Page, live_server: Any, clinician: User, nurse: User, coordinator: User, record: Patient
) -> None:
    share_session(page, verified_client(clinician), live_server.url)
    # English labels (the source strings) whatever translations exist.
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": live_server.url}]
    )

    page.goto("/clinic/meetings/")
    expect(page.get_by_role("heading", name="Multidisciplinary meetings")).to_be_visible()
    check_accessibility(page)
    page.get_by_role("button", name="Schedule a meeting").click()
    check_accessibility(page)
    start = timezone.localtime(timezone.now() + dt.timedelta(days=1)).replace(
        hour=14, minute=0, second=0, microsecond=0
    )
    page.get_by_label("Title").fill("RCP oncologie thoracique")
    page.get_by_label("Kind").select_option("tumour-board")
    page.get_by_label("Starts").fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends").fill((start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label(re.compile(nurse.get_full_name())).check()
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("heading", name="RCP oncologie thoracique")).to_be_visible()
    meeting = Meeting.objects.get(title="RCP oncologie thoracique")

    # A case: one of my patients, with the question; the summary is prepared.
    page.get_by_label("Patient (one of yours)").select_option(str(record.pk))
    page.get_by_label("Question for the meeting").last.fill("Chirurgie ou radiothérapie ?")
    page.get_by_role("button", name="Add to the agenda").click()
    expect(page.locator("[data-case]")).to_have_count(1)
    expect(page.get_by_label("Case summary")).to_be_visible()
    check_accessibility(page)

    page.get_by_role("button", name="Start the meeting").click()
    expect(page.locator("[data-meeting-status]")).to_have_text(re.compile("progress", re.I))
    page.get_by_label(re.compile(clinician.get_full_name())).check()
    page.get_by_label(re.compile(nurse.get_full_name())).check()
    page.get_by_role("button", name="Record attendance").click()
    expect(page.get_by_text("Attendance is recorded.")).to_be_visible()

    case = page.locator("[data-case]").first
    case.get_by_label("Decision").fill("Lobectomie supérieure droite par vidéothoracoscopie.")
    rows = case.locator("fieldset.action-row")
    expect(rows).to_have_count(2)
    case.get_by_role("button", name="Add a follow-up action").click()
    expect(rows).to_have_count(3)
    first = rows.nth(0)
    first.get_by_label("What").fill("Appeler la patiente")
    first.get_by_label("Kind").select_option("call")
    first.get_by_label("Who (care team)").select_option(str(nurse.pk))
    first.get_by_label("Within (days)").fill("2")
    third = rows.nth(2)
    third.get_by_label("What").fill("Consultation chirurgicale")
    third.get_by_label("Kind").select_option("visit")
    third.get_by_label("or profession").select_option("coordinator")
    third.get_by_label("Within (days)").fill("7")
    check_accessibility(page)
    case.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_text("The decision is recorded.")).to_be_visible()

    page.get_by_role("button", name="Sign the decision").click()
    expect(page.get_by_text("The decision is signed")).to_be_visible()
    link = page.locator("[data-decision-pdf]")
    expect(link).to_be_visible()
    expect(page.locator("[data-decision-text]")).to_have_text(re.compile("Lobectomie"))
    expect(page.get_by_role("button", name="Sign the decision")).to_have_count(0)
    check_accessibility(page)

    decision = MeetingDecision.objects.get(case__meeting=meeting)
    assert decision.is_signed and len(decision.actions) == 2
    assert link.get_attribute("href") == f"/documents/{decision.document_id}/download/"
    assert DocumentReference.objects.filter(pk=decision.document_id, patient=record).exists()
    assert Task.objects.filter(patient=record, origin=Origin.MEETING).count() == 2
    pdf = page.request.get(link.get_attribute("href") or "")
    assert pdf.ok and pdf.body().startswith(b"%PDF-")


def test_a_participants_open_page_follows_the_meeting_live(
    browser: Browser,
    asgi_server: AsgiServer,  # noqa: F811
    clinician: User,
    nurse: User,
    coordinator: User,
    record: Patient,
) -> None:
    from apps.care.services.meeting_decisions import do_record_decision
    from apps.care.services.meetings import do_add_case, do_schedule_meeting, do_start_meeting

    start = timezone.now() + dt.timedelta(days=1)
    meeting = do_schedule_meeting(
        clinician,
        title="Colloque du jeudi",
        kind="multidisciplinary",
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        participant_ids=[nurse.pk],
    )
    context = browser.new_context(base_url=asgi_server.url, viewport=PHONE)  # type: ignore[arg-type]
    context.set_default_timeout(LIVE)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    share_session(page, verified_client(nurse), asgi_server.url)
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": asgi_server.url}]
    )
    page.goto(f"/clinic/meetings/{meeting.pk}/")
    expect(page.locator("body")).to_have_attribute("data-realtime", "connected")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("[data-case]")).to_have_count(0)

    # The chair puts a case on the agenda: it appears on the nurse's open page.
    case = do_add_case(clinician, meeting, record.pk, "Question posée au colloque")
    expect(page.locator(f'[data-case="{case.pk}"]')).to_contain_text("Question posée au colloque")
    # The meeting starts (the page reloads for its new buttons) and a decision is drafted:
    # the case alone is refreshed in place.
    do_start_meeting(clinician, meeting)
    expect(page.locator("[data-meeting-status]")).to_have_text(re.compile("progress", re.I))
    expect(page.locator("body")).to_have_attribute("data-realtime", "connected")
    page.evaluate("window.__sameDocument = true")
    do_record_decision(clinician, case, "Surveillance rapprochée", [])
    expect(page.locator(f'[data-case="{case.pk}"]')).to_contain_text("Surveillance rapprochée")
    assert page.evaluate("window.__sameDocument") is True
    check_accessibility(page)
    context.close()
    assert not errors, errors
