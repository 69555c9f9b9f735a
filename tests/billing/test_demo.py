"""The demo's month of billing: made once through the services, dated back consistently, and
visible to the right people."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from pypdf import PdfReader

from apps.accounts.demo import demo_email
from apps.accounts.models import User
from apps.billing.access import invoices_for_user
from apps.billing.demo import ELISE, JONAS, LUCA, MARIE
from apps.billing.models import (
    BillingProfile,
    BillingRun,
    ChargeItem,
    Claim,
    Coverage,
    CreditNote,
    Insurer,
    Invoice,
    Payment,
    TariffCode,
)
from apps.billing.services.invoices import open_invoice_pdf
from apps.billing.services.references import is_qr_iban
from apps.billing.services.review import charges_to_review
from apps.notifications.models import Notification


@pytest.fixture(autouse=True)
def _demo_settings(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = True
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.BILLING_CLAIM_DIR = tmp_path / "claims"


def _seed() -> None:
    call_command("seed_demo", stdout=io.StringIO())


def _counts() -> tuple[int, ...]:
    return (
        TariffCode.objects.count(),
        Insurer.objects.count(),
        Coverage.objects.count(),
        BillingProfile.objects.count(),
        ChargeItem.objects.count(),
        Invoice.objects.count(),
        Payment.objects.count(),
        CreditNote.objects.count(),
        Claim.objects.count(),
        BillingRun.objects.count(),
        Notification.objects.filter(kind="billing").count(),
    )


def _user(handle: str) -> User:
    return User.objects.get(email=demo_email(handle))


def _invoices(ahv: str) -> list[Invoice]:
    return list(Invoice.objects.filter(patient__ahv_number=ahv).order_by("issued_at", "pk"))


@pytest.mark.django_db
def test_seeding_twice_makes_the_month_once(
    tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # Run what waits for the commit (the claim's submission) as seed_demo's commit would.
    with django_capture_on_commit_callbacks(execute=True):
        _seed()
    first = _counts()
    _seed()

    assert _counts() == first
    codes, insurers, coverages, profiles, charges, invoices, payments, credits, claims, runs = (
        first[:10]
    )
    assert (codes, insurers, coverages, profiles) == (9, 4, 6, 1)
    assert invoices == 9 and runs == 1 and credits == 1 and claims == 1
    assert payments == 4 and charges >= 25
    # The claim went out as a file for the insurer that takes files.
    assert Claim.objects.get().status == Claim.Status.SUBMITTED
    assert [p.name for p in (tmp_path / "claims").rglob("*.json")] == [
        f"{_invoices(MARIE)[0].number}.json"
    ]


@pytest.mark.django_db
def test_the_month_has_every_state_of_billing() -> None:
    _seed()
    today = timezone.localdate()
    profile = BillingProfile.objects.get()
    assert is_qr_iban(profile.iban) and profile.canton == "VD"

    # An invoice issued six weeks ago, unpaid: overdue.
    overdue = Invoice.objects.filter(status=Invoice.Status.ISSUED, due_date__lt=today)
    assert [invoice.patient.ahv_number for invoice in overdue] == [ELISE]
    # The batch run made five invoices, each dated back to its day with a PDF that says so.
    run = BillingRun.objects.get()
    assert (run.status, run.done, run.failed) == (BillingRun.Status.DONE, 5, 0)
    for invoice in Invoice.objects.all():
        text = "".join(
            page.extract_text() for page in PdfReader(io.BytesIO(open_invoice_pdf(invoice))).pages
        )
        assert invoice.number in text
        assert timezone.localtime(invoice.issued_at).strftime("%d.%m.%Y") in text
        assert invoice.due_date == timezone.localdate(invoice.issued_at) + dt.timedelta(days=30)
        assert invoice.issued_at >= max(line.performed_at for line in invoice.lines.all())
    # Paid by hand, from the bank file, and after a partial credit note; one transfer unmatched.
    assert _invoices(MARIE)[0].status == Invoice.Status.PAID
    assert _invoices(LUCA)[0].status == Invoice.Status.PAID
    jonas = _invoices(JONAS)[0]
    assert jonas.status == Invoice.Status.PAID and jonas.credited > 0
    assert jonas.paid + jonas.credited == jonas.amount_due
    unmatched = Payment.objects.get(invoice__isnull=True)
    assert unmatched.method == Payment.Method.IMPORT
    # Tiers payant: the patient pays her share, the insurer receives the claim.
    marie = _invoices(MARIE)[0]
    assert marie.recipient == Invoice.Recipient.INSURER
    assert marie.amount_due == marie.patient_share < marie.total
    assert Claim.objects.get().invoice == marie
    # The written report was added by hand to one consultation, and invoiced.
    report = ChargeItem.objects.get(code__code="AA.15.0010")
    assert report.status == ChargeItem.Status.INVOICED and report.patient.ahv_number == ELISE
    # A monitoring period was billed by the day.
    assert (
        ChargeItem.objects.filter(device__isnull=False, code__code="TM.0010").get().quantity == 30
    )


@pytest.mark.django_db
def test_clinicians_billing_staff_and_patients_see_their_part() -> None:
    _seed()
    physician, billing, marie = _user("physician"), _user("billing"), _user("patient")

    # The latest consultations (and the teleconsultation demo's) wait for the physician.
    waiting = charges_to_review(physician)
    assert waiting.exists()
    assert all(c.status == ChargeItem.Status.PROPOSED for c in waiting)
    # Billing staff have confirmed charges to invoice next, and every invoice.
    confirmed = ChargeItem.objects.filter(status=ChargeItem.Status.CONFIRMED, invoice__isnull=True)
    assert {c.patient.ahv_number for c in confirmed} == {LUCA, JONAS}
    assert invoices_for_user(billing).count() == 9
    # Marie sees her own invoices only, and was told of them.
    mine = invoices_for_user(marie)
    assert mine.count() == 2 and all(i.patient.user == marie for i in mine)
    assert Notification.objects.filter(user=marie, kind="billing").count() == 2
