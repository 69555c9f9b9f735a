"""Follow-up: overdue invoices, the aging report's buckets, and the bookings export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.billing.models import BillingProfile, ChargeItem, Invoice
from apps.billing.services.invoices import do_credit_note, do_generate_invoice
from apps.billing.services.payments import do_record_payment
from apps.billing.services.reports import (
    CSV_HEADER,
    aging,
    bookings_csv,
    bucket_for,
    overdue_invoices,
)
from apps.records.models import Patient

pytestmark = pytest.mark.usefixtures("billing_profile")

ON = dt.date(2026, 6, 30)


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    yield


@pytest.fixture
def make_invoice(
    billing_user: User,
    make_patient: Callable[..., Patient],
    make_charge: Callable[..., ChargeItem],
) -> Callable[..., Invoice]:
    """An invoice of CHF `amount` due by a new patient (no insurance), due `days` after ON."""

    def make(days: int, amount: str = "100.00", user: User | None = None) -> Invoice:
        issuer = user or billing_user
        chart = make_patient(organization=issuer.organization)
        make_charge(chart, "video_base", 1, amount)
        invoice = do_generate_invoice(issuer, chart.pk)
        # Invoices issued earlier: only the due date matters here.
        Invoice.objects.filter(pk=invoice.pk).update(due_date=ON + dt.timedelta(days=days))
        invoice.refresh_from_db()
        return invoice

    return make


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"), (61, "61-90"),
     (90, "61-90"), (91, "90+"), (400, "90+")],
)  # fmt: skip
def test_buckets(days: int, bucket: str) -> None:
    assert bucket_for(days) == bucket


def test_aging_puts_each_open_balance_in_its_bucket(
    billing_user: User, organization: Organization, make_invoice: Callable[..., Invoice]
) -> None:
    # given
    not_due = make_invoice(5)
    due_today = make_invoice(0)
    late_1 = make_invoice(-1)
    late_30 = make_invoice(-30, "40.00")
    late_31 = make_invoice(-31)
    late_75 = make_invoice(-75)
    late_91 = make_invoice(-91, "55.00")
    paid = make_invoice(-45)
    do_record_payment(billing_user, amount="100", received_on=ON, invoice=paid)
    part_paid = make_invoice(-45)
    do_record_payment(billing_user, amount="60", received_on=ON, invoice=part_paid)
    cancelled = make_invoice(-10)
    do_credit_note(billing_user, cancelled, amount="100", reason="Cancelled")

    # when
    report = aging(organization, ON)

    # then
    rows = {row.invoice.pk: row for row in report.rows}
    assert paid.pk not in rows and cancelled.pk not in rows
    assert {pk: row.bucket for pk, row in rows.items()} == {
        not_due.pk: "current",
        due_today.pk: "current",
        late_1.pk: "1-30",
        late_30.pk: "1-30",
        late_31.pk: "31-60",
        part_paid.pk: "31-60",
        late_75.pk: "61-90",
        late_91.pk: "90+",
    }
    assert rows[late_91.pk].days_overdue == 91
    assert rows[part_paid.pk].balance == Decimal("40.00")
    totals = {bucket.key: (bucket.count, bucket.total) for bucket in report.buckets}
    assert totals == {
        "current": (2, Decimal("200.00")),
        "1-30": (2, Decimal("140.00")),
        "31-60": (2, Decimal("140.00")),
        "61-90": (1, Decimal("100.00")),
        "90+": (1, Decimal("55.00")),
    }
    assert report.total == Decimal("635.00")
    assert report.count == 8


def test_overdue_invoices_most_overdue_first(
    billing_user: User, organization: Organization, make_invoice: Callable[..., Invoice]
) -> None:
    make_invoice(3)
    make_invoice(0)
    late_10 = make_invoice(-10)
    late_100 = make_invoice(-100)
    settled = make_invoice(-20)
    do_record_payment(billing_user, amount="100", received_on=ON, invoice=settled)

    assert list(overdue_invoices(organization, ON)) == [late_100, late_10]


def test_reports_stay_within_the_organisation(
    organization: Organization,
    make_user: Callable[..., User],
    make_invoice: Callable[..., Invoice],
) -> None:
    other = Organization.objects.create(name="Autre clinique", gln="7601000000082")
    BillingProfile.objects.create(
        organization=other,
        creditor_name="Autre",
        street="Rue 1",
        postal_code="1200",
        city="Genève",
        canton="GE",
        iban="CH9300762011623852957",
    )
    theirs = make_invoice(-40, user=make_user(Role.BILLING, organization=other))
    ours = make_invoice(-40)

    assert [row.invoice for row in aging(organization, ON).rows] == [ours]
    assert list(overdue_invoices(organization, ON)) == [ours]
    assert [row.invoice for row in aging(other, ON).rows] == [theirs]
    assert theirs.number not in bookings_csv(organization, ON - dt.timedelta(days=400), ON)


# ---------------------------------------------------------------------------------------------
# Bookings


def test_bookings_balance_and_name_no_patient(
    billing_user: User,
    organization: Organization,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
) -> None:
    # given: an invoice with VAT, a partial credit note, a payment and an unassigned payment
    make_charge(record, "report", 1, "35.00")
    make_charge(record, "video_base", 1, "17.20")
    invoice = do_generate_invoice(billing_user, record.pk)
    note = do_credit_note(billing_user, invoice, amount="2.00", reason="Goodwill")
    today = timezone.localdate()
    payment = do_record_payment(billing_user, amount="3.50", received_on=today, invoice=invoice)
    loose = do_record_payment(billing_user, amount="9.90", received_on=today)

    # when
    content = bookings_csv(organization, today - dt.timedelta(days=1), today)

    # then
    rows = list(csv.reader(io.StringIO(content), delimiter=";"))
    assert tuple(rows[0]) == CSV_HEADER
    body = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    by_document: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in body:
        by_document[row["number"]].append(row)

    def amount(text: str) -> Decimal:
        return Decimal(text) if text else Decimal(0)

    for number, movements in by_document.items():
        debit = sum(amount(row["debit"]) for row in movements)
        credit = sum(amount(row["credit"]) for row in movements)
        assert debit == credit, number
    invoice_rows = {row["account"]: row for row in by_document[invoice.number]}
    assert invoice_rows["1100"]["debit"] == "55.05"
    assert invoice_rows["2200"]["credit"] == "2.84"
    assert invoice_rows["3400"]["credit"] == "52.21"
    assert {row["account"] for row in by_document[note.number]} == {"3400", "2200", "1100"}
    assert all(row["invoice"] == invoice.number for row in by_document[note.number])
    paid_rows = {row["account"]: row for row in by_document[f"P-{payment.pk:08d}"]}
    assert paid_rows["1020"]["debit"] == "3.50" and paid_rows["1100"]["credit"] == "3.50"
    loose_rows = {row["account"]: row for row in by_document[f"P-{loose.pk:08d}"]}
    assert loose_rows["2030"]["credit"] == "9.90"
    assert {row["patient"] for row in body} <= {str(record.pk), ""}
    assert record.family_name not in content
    assert [row["date"] for row in body] == sorted(row["date"] for row in body)


def test_bookings_outside_the_period_are_left_out(
    billing_user: User,
    organization: Organization,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
) -> None:
    make_charge(record)
    do_generate_invoice(billing_user, record.pk)
    yesterday = timezone.localdate() - dt.timedelta(days=1)

    content = bookings_csv(organization, yesterday - dt.timedelta(days=30), yesterday)

    assert content.splitlines() == [";".join(CSV_HEADER)]
