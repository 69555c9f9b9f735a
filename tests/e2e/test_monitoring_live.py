"""The remote-monitoring dashboard updates live: a new reading, then an alert, then its handling.

Runs against a real daphne (tests/e2e/asgi_server.py): the readings are ingested by this test
process and reach the browser through Redis and the page's WebSocket, without a reload.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connections
from playwright.sync_api import Browser, BrowserContext, Page, expect

from apps.accounts.models import Organization, Role, User
from apps.core import presence
from apps.devices.models import Alert, ThresholdRule
from apps.devices.protocol import encode_reading
from apps.devices.services.ingest import RawMessage, ingest
from apps.devices.services.registry import do_register_device
from apps.records.models import Patient
from apps.records.reference import load_reference_data
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import verified_client
from tests.e2e.asgi_server import AsgiServer, asgi_server  # noqa: F401 - the fixture
from tests.e2e.conftest import PHONE, check_accessibility, share_session

pytestmark = pytest.mark.e2e

SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
LIVE = 10_000  # ms: generous for CI; an event normally shows within a second


@pytest.fixture
def context(browser: Browser, asgi_server: AsgiServer) -> Iterator[BrowserContext]:  # noqa: F811
    """The browser on the ASGI server (the WSGI live_server has no WebSockets)."""
    context = browser.new_context(
        base_url=asgi_server.url, viewport={"width": PHONE["width"], "height": PHONE["height"]}
    )
    context.set_default_timeout(10_000)
    yield context
    context.close()


def _wait_online(user: User) -> None:
    """The server counts the page's socket as present (set just after the socket opens)."""
    deadline = time.monotonic() + 10
    while user.pk not in presence.online([user.pk]):
        assert time.monotonic() < deadline, "the page's socket never registered"
        time.sleep(0.05)  # polling with a deadline


def _in_a_thread(work: Callable[[], object]) -> None:
    """Run `work` as the ingestor would, away from Playwright's event loop (in this thread).

    The live push is synchronous code that refuses to run inside a running event loop.
    """

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run).result(timeout=30)


def test_dashboard_shows_a_new_reading_then_an_alert_without_reload(
    page: Page,
    asgi_server: AsgiServer,  # noqa: F811
    make_user: Callable[..., User],
    organization: Organization,
) -> None:
    # given a physician whose patient has a blood-pressure monitor and a critical limit
    load_reference_data()
    physician = make_user(Role.PHYSICIAN, organization=organization, first_name="Anna")
    chart = Patient.objects.create(
        family_name="Monnier",
        given_names="Lise",
        birth_date=dt.date(1956, 4, 2),
        sex="female",
        organization=organization,
    )
    do_add_member(default_team(chart), physician)
    device, secret = do_register_device("blood_pressure", chart, None)
    ThresholdRule.objects.create(
        patient=chart, code=SYSTOLIC, kind="above", limit=Decimal(160), severity="critical"
    )
    client = verified_client(physician)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    share_session(page, client, asgi_server.url)
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": asgi_server.url}]
    )

    # when they open the dashboard
    page.goto("/clinic/monitoring/")
    card = page.locator(f'.monitor-patient[data-patient="{chart.pk}"]')
    expect(card).to_contain_text("Monnier")
    expect(card).to_contain_text("No reading yet")
    expect(page.locator("body")).to_have_attribute("data-monitoring", "ready")
    expect(page.locator("body")).to_have_attribute("data-realtime", "connected")
    _wait_online(physician)
    page.evaluate("window.__sameDocument = true")

    def send(systolic: int, diastolic: int) -> None:
        topic, payload = encode_reading(
            device.device_id,
            secret,
            [(SYSTOLIC, systolic, "mm[Hg]"), (DIASTOLIC, diastolic, "mm[Hg]")],
        )
        _in_a_thread(lambda: ingest([RawMessage(payload=payload, transport="mqtt", topic=topic)]))

    # and a normal reading arrives: it shows, labelled normal
    send(128, 82)
    systolic = card.locator(f'tr[data-code="{SYSTOLIC}"]')
    expect(systolic.locator("[data-value]")).to_have_text("128", timeout=LIVE)
    expect(systolic).to_have_class(re.compile(r"\bstatus-normal\b"))
    expect(systolic.locator("[data-status-label]")).to_have_text(re.compile("Normal"))
    expect(systolic.locator("[data-spark-line]")).to_have_attribute("points", re.compile(r"\d"))
    expect(page.locator("[data-alert-item], .alert-list [data-alert-id]")).to_have_count(0)

    # then an out-of-range reading: the value turns critical and the alert banner appears
    send(182, 95)
    expect(systolic.locator("[data-value]")).to_have_text("182", timeout=LIVE)
    expect(systolic).to_have_class(re.compile(r"\bstatus-critical\b"))
    announce = page.locator("[data-alert-banner] [role=alert]")
    expect(announce).to_contain_text("Lise Monnier", timeout=LIVE)
    expect(announce).to_contain_text("182")
    alert = Alert.objects.get(patient=chart)
    item = page.locator(f'.alert-list [data-alert-id="{alert.pk}"]')
    expect(item).to_be_visible()
    expect(item).to_have_attribute("data-state", "open")
    expect(card.locator("[data-alert-summary]")).to_contain_text("1 alert")
    check_accessibility(page)

    # when the physician acknowledges it with a note, from the banner
    item.locator("summary").click()
    item.locator("textarea[name=note]").fill("Called the patient: cuff too tight.")
    item.locator("button[type=submit]").click()

    # then the banner shows it handled (by them, as the live event confirms) and it is stored
    expect(item).to_have_attribute("data-state", "acknowledged")
    expect(item.locator("[data-alert-state]")).to_have_text("Acknowledged")
    expect(item.locator("[data-alert-by]")).to_contain_text(physician.get_full_name(), timeout=LIVE)
    expect(announce).to_be_empty()
    expect(card.locator("[data-alert-summary]")).to_contain_text("No open alert")
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED and alert.acknowledged_by == physician
    assert "cuff too tight" in alert.note
    assert page.evaluate("window.__sameDocument") is True  # never reloaded

    # and the patient's monitoring tab shows the charts, accessibly, at 360 px
    page.goto(f"/clinic/patients/{chart.pk}/monitoring/?period=24h")
    expect(page.locator(f'[data-chart="{SYSTOLIC}"] canvas')).to_be_visible()
    expect(page.locator(f'[data-alert-id="{alert.pk}"]')).to_have_attribute(
        "data-state", "acknowledged"
    )
    check_accessibility(page)

    # and a new reading is appended to its chart live
    expect(page.locator("body")).to_have_attribute("data-realtime", "connected")
    _wait_online(physician)
    send(150, 90)
    expect(page.locator(f'[data-chart="{SYSTOLIC}"]')).to_have_attribute(
        "data-last-value", "150", timeout=LIVE
    )
