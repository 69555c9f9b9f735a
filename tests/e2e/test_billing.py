"""Billing in a real browser: a teleconsultation ends, its charges are proposed; the physician
confirms them; billing staff generate the invoice from the workspace and download its PDF; the
patient finds it in the portal and downloads it. A batch run's progress bar follows the run
without a reload. Every billing page passes axe-core and fits a 360 px screen."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, User
from apps.billing.models import BillingRun, ChargeItem, Invoice, Payment
from apps.billing.services.capture import propose_for_encounter
from apps.records.models import Encounter, Patient
from tests.billing.conftest import (  # noqa: F401 - the billing cast's fixtures, by name
    billing_profile,
    codes,
    flat_rates,
    insurer,
    make_encounter,
    make_patient,
    record,
    tardoc,
)
from tests.conftest import verified_client
from tests.e2e.conftest import check_accessibility, share_session

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@dataclass(frozen=True)
class Cast:
    """The billing cast (tests/billing/conftest.py): a patient's record insured by Assura with
    the physician on its care team, the organisation's billing profile and the tariff codes."""

    record: Patient
    make_encounter: Callable[..., Encounter]


@pytest.fixture
def cast(request: pytest.FixtureRequest) -> Cast:
    request.getfixturevalue("billing_profile")
    request.getfixturevalue("codes")
    return Cast(request.getfixturevalue("record"), request.getfixturevalue("make_encounter"))


def sign_in(page: Page, user: User, server_url: str) -> None:
    """The browser takes the session of `user` (second factor passed), reading in English."""
    page.context.clear_cookies()
    share_session(page, verified_client(user), server_url)
    page.context.add_cookies(
        [{"name": django_settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": server_url}]
    )


def pdf_text(path: Path | str) -> str:
    from pypdf import PdfReader

    with open(path, "rb") as stream:
        content = stream.read()
    assert content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(content))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def test_an_invoice_from_a_finished_teleconsultation_reaches_the_patient(
    page: Page,
    live_server: Any,
    cast: Cast,
    patient: User,
    clinician: User,
    billing_user: User,
) -> None:
    # given a video consultation of 17 minutes that ended, its charges proposed
    encounter = cast.make_encounter(cast.record, minutes=17, reason="Contrôle tension")
    assert len(propose_for_encounter(encounter)) == 2

    # the physician reviews and confirms them
    sign_in(page, clinician, live_server.url)
    page.goto("/clinic/charges/")
    check_accessibility(page)
    page.get_by_role("button", name=re.compile(r"^Review")).click()
    expect(page).to_have_url(re.compile(rf"/clinic/charges/encounter/{encounter.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(cast.record.full_name)
    check_accessibility(page)
    page.get_by_role("button", name="Confirm the charges").click()
    expect(page.locator(".message-success")).to_contain_text("2 charges confirmed")
    assert set(ChargeItem.objects.filter(encounter=encounter).values_list("status", flat=True)) == {
        ChargeItem.Status.CONFIRMED
    }

    # billing staff generate the invoice from the workspace and download it
    sign_in(page, billing_user, live_server.url)
    page.goto("/billing/")
    row = page.locator("tbody tr", has_text=cast.record.family_name)
    expect(row).to_contain_text("Assura Test")
    check_accessibility(page)
    row.get_by_role("button", name=re.compile("Generate invoice")).click()
    invoice = Invoice.objects.get(patient=cast.record)
    expect(page).to_have_url(re.compile(rf"/billing/invoices/{invoice.pk}/$"))
    expect(page.locator(".message-success")).to_contain_text(invoice.number)
    check_accessibility(page)
    with page.expect_download() as staff_download:
        page.get_by_role("button", name="Download the PDF").click()
    assert staff_download.value.suggested_filename == f"{invoice.number}.pdf"
    text = pdf_text(staff_download.value.path())
    assert cast.record.family_name in text
    assert invoice.number in text
    page.get_by_role("button", name="Send to the patient").click()
    expect(page.locator(".message-success")).to_contain_text("told")

    # the patient sees it in the portal and downloads it
    sign_in(page, patient, live_server.url)
    page.goto("/")
    page.get_by_role("link", name="My invoices", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/invoices/$"))
    invoice_row = page.locator("tbody tr", has_text=invoice.number)
    expect(invoice_row).to_contain_text(f"{invoice.amount_due:.2f}")
    expect(invoice_row.locator(".invoice-status")).to_have_text("open")
    check_accessibility(page)
    invoice_row.get_by_role("link", name=invoice.number, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(invoice.number)
    check_accessibility(page)
    with page.expect_download() as patient_download:
        page.get_by_role("button", name="Download the PDF").click()
    assert cast.record.family_name in pdf_text(patient_download.value.path())


def test_the_run_page_follows_the_batch_until_it_is_done(
    page: Page,
    live_server: Any,
    cast: Cast,
    billing_user: User,
) -> None:
    # given a run that has just started
    run = BillingRun.objects.create(
        organization_id=billing_user.organization_id,
        started_by=billing_user,
        status=BillingRun.Status.RUNNING,
        total=3,
    )
    sign_in(page, billing_user, live_server.url)
    page.goto(f"/billing/runs/{run.pk}/")
    bar = page.locator("progress[data-run-bar]")
    expect(bar).to_have_attribute("value", "0")
    check_accessibility(page)
    # when the worker moves on, then finishes with a failure
    BillingRun.objects.filter(pk=run.pk).update(done=1)
    expect(bar).to_have_attribute("value", "1")
    BillingRun.objects.filter(pk=run.pk).update(
        done=2,
        failed=1,
        status=BillingRun.Status.DONE,
        finished_at=timezone.now(),
        errors=[{"patient_id": cast.record.pk, "error": "No billing profile."}],
    )
    # then the page shows it without a reload
    expect(bar).to_have_attribute("value", "3")
    expect(page.locator("[data-run-errors]")).to_contain_text("No billing profile.")
    expect(page.locator("[data-run-errors]")).to_contain_text(cast.record.family_name)
    expect(page.locator("[data-run-done-links]")).to_be_visible()
    check_accessibility(page)


def test_every_billing_page_is_accessible_on_a_phone(
    page: Page,
    live_server: Any,
    cast: Cast,
    patient: User,
    clinician: User,
    billing_user: User,
    make_user: Callable[..., User],
    organization: Organization,
) -> None:
    # given an invoice long overdue, another open one, an unmatched payment, charges to review
    from apps.billing.services.invoices import do_generate_invoice
    from apps.billing.services.review import do_confirm_charges

    for minutes in (17, 9):
        encounter = cast.make_encounter(cast.record, minutes=minutes)
        charges = propose_for_encounter(encounter)
        do_confirm_charges(clinician, [charge.pk for charge in charges])
        do_generate_invoice(billing_user, cast.record.pk)
    invoice = Invoice.objects.order_by("pk").first()
    assert invoice is not None
    Invoice.objects.filter(pk=invoice.pk).update(
        due_date=timezone.localdate() - dt.timedelta(days=45)
    )
    Payment.objects.create(
        amount=Decimal("12.00"),
        received_on=timezone.localdate(),
        reference="RF18539007547034",
        method=Payment.Method.MANUAL,
        recorded_by=billing_user,
    )
    pending = cast.make_encounter(cast.record, minutes=23)
    propose_for_encounter(pending)

    sign_in(page, billing_user, live_server.url)
    for path in (
        "/billing/",
        "/billing/invoices/",
        "/billing/invoices/?status=overdue",
        f"/billing/invoices/{invoice.pk}/",
        "/billing/payments/",
        "/billing/aging/",
        "/billing/export.csv",
        "/clinic/charges/",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        check_accessibility(page)
    # the aging chart is drawn
    page.goto("/billing/aging/")
    expect(page.locator("canvas[data-aging-chart]")).to_have_attribute("width", re.compile(r"\d+"))

    # the forms with errors, as billing staff see them
    page.goto(f"/billing/invoices/{invoice.pk}/")
    page.get_by_text("Issue a credit note").click()
    page.locator("#id_amount").last.fill("9999")
    page.locator("#id_reason").fill("Trop")
    page.get_by_role("button", name="Issue the credit note").click()
    expect(page.locator("[role=alert]")).to_contain_text("can be credited")
    expect(page.locator("#id_reason")).to_have_value("Trop")
    check_accessibility(page)

    sign_in(page, clinician, live_server.url)
    page.goto(f"/clinic/charges/encounter/{pending.pk}/")
    quantity = page.locator(".quantity-form input[type=number]").last
    quantity.fill("9")
    quantity.locator("xpath=..").get_by_role("button", name=re.compile("^Change")).click()
    expect(page.locator("#review-errors")).to_contain_text("Not accepted")
    check_accessibility(page)

    sign_in(page, patient, live_server.url)
    for path in ("/invoices/", f"/invoices/{invoice.pk}/", "/", "/record/timeline/"):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        check_accessibility(page)
    expect(page.get_by_text(f"Invoice {invoice.number}")).to_be_visible()


def test_the_outsider_gets_a_404_page_that_is_accessible(
    page: Page,
    live_server: Any,
    cast: Cast,
    outsider: User,
    billing_user: User,
) -> None:
    sign_in(page, outsider, live_server.url)
    response = page.goto("/billing/")
    assert response is not None and response.status == 404
    check_accessibility(page)
