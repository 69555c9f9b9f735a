"""Money in and the follow-up: payments recorded by hand, bank files imported (CSV and
camt.054) with their summary, unmatched payments assigned, the aging report and the bookings
export."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.billing.models import Invoice, Payment
from apps.records.models import Patient

from .pages_support import client_for, make_invoice


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def staff(billing_user: User, billing_profile: Any) -> Client:
    return client_for(billing_user)


@pytest.fixture
def invoice(record: Patient) -> Invoice:
    return make_invoice(record, amount_due=Decimal("45.50"))


def today() -> str:
    return timezone.localdate().isoformat()


def test_a_payment_with_the_invoices_reference_settles_it(staff: Client, invoice: Invoice) -> None:
    response = staff.post(
        "/billing/payments/",
        {"amount": "45.50", "received_on": today(), "reference": invoice.reference},
        follow=True,
    )
    assert f"Payment recorded on invoice {invoice.number}." in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID


def test_a_payment_for_a_named_invoice_is_put_on_it(staff: Client, invoice: Invoice) -> None:
    staff.post(
        "/billing/payments/",
        {"amount": "20.00", "received_on": today(), "invoice_number": invoice.number},
    )
    invoice.refresh_from_db()
    assert invoice.paid == Decimal("20.00")
    assert invoice.status == Invoice.Status.ISSUED


def test_a_payment_with_an_unknown_reference_waits_among_the_unmatched(
    staff: Client, invoice: Invoice
) -> None:
    response = staff.post(
        "/billing/payments/",
        {"amount": "45.50", "received_on": today(), "reference": "RF18539007547034"},
        follow=True,
    )
    page = response.content.decode()
    assert "no invoice has this reference" in page
    payment = Payment.objects.get()
    assert payment.invoice is None
    assert [row.pk for row in response.context["unmatched"]] == [payment.pk]


def test_a_payment_with_neither_reference_nor_invoice_is_refused_and_kept(
    staff: Client, invoice: Invoice
) -> None:
    response = staff.post("/billing/payments/", {"amount": "45.50", "received_on": today()})
    assert response.status_code == 400
    page = response.content.decode()
    assert "cannot be matched" in page
    assert 'value="45.50"' in page
    assert not Payment.objects.exists()


def test_an_unknown_invoice_number_is_a_field_error(staff: Client, invoice: Invoice) -> None:
    response = staff.post(
        "/billing/payments/",
        {"amount": "45.50", "received_on": today(), "invoice_number": "1999-000001"},
    )
    assert response.status_code == 400
    assert "No invoice of yours has this number." in response.content.decode()
    assert not Payment.objects.exists()


def csv_file(*lines: str) -> SimpleUploadedFile:
    content = "\n".join(["date;amount;reference;bank_id", *lines]).encode()
    return SimpleUploadedFile("bank.csv", content, content_type="text/csv")


def test_a_csv_import_reports_matched_unmatched_duplicates_and_errors(
    staff: Client, invoice: Invoice
) -> None:
    # given
    upload = csv_file(
        f"{today()};45.50;{invoice.reference};BANK-1",
        f"{today()};12.00;RF18539007547034;BANK-2",
        f"{today()};abc;RF18539007547034;BANK-3",
    )
    # when
    response = staff.post("/billing/payments/import/", {"file": upload})
    # then
    result = response.context["result"]
    assert (result.matched, result.unmatched, result.duplicates, len(result.errors)) == (1, 1, 0, 1)
    page = response.content.decode()
    assert "Import result" in page
    assert "line 4" in page
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    # Importing the same file again adds nothing.
    again = staff.post("/billing/payments/import/", {"file": csv_file(f"{today()};45.50;x;BANK-1")})
    assert again.context["result"].duplicates == 1
    assert Payment.objects.count() == 2


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
 <BkToCstmrDbtCdtNtfctn>
  <GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>{day}T08:00:00</CreDtTm></GrpHdr>
  <Ntfctn>
   <Id>NTF-1</Id>
   <Ntry>
    <Amt Ccy="CHF">45.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>ENTRY-1</AcctSvcrRef>
    <NtryDtls><TxDtls>
     <Refs><AcctSvcrRef>TX-1</AcctSvcrRef></Refs>
     <Amt Ccy="CHF">45.50</Amt><CdtDbtInd>CRDT</CdtDbtInd>
     <RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Prtry>QRR</Prtry></CdOrPrtry></Tp>
      <Ref>{reference}</Ref></CdtrRefInf></Strd></RmtInf>
    </TxDtls></NtryDtls>
   </Ntry>
  </Ntfctn>
 </BkToCstmrDbtCdtNtfctn>
</Document>
"""


def test_a_camt054_import_matches_by_qr_reference(staff: Client, invoice: Invoice) -> None:
    content = CAMT.format(day=today(), reference=invoice.reference).encode()
    upload = SimpleUploadedFile("camt054.xml", content, content_type="text/xml")
    response = staff.post("/billing/payments/import/", {"file": upload})
    assert response.status_code == 200
    assert response.context["result"].matched == 1
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID


def test_a_file_that_is_not_a_bank_file_is_a_form_error(staff: Client) -> None:
    upload = SimpleUploadedFile("notes.csv", b"hello;world\n", content_type="text/csv")
    response = staff.post("/billing/payments/import/", {"file": upload})
    assert response.status_code == 400
    assert "The first line of the CSV file must be" in response.content.decode()


def test_an_unmatched_payment_is_assigned_to_the_invoice_named(
    staff: Client, billing_user: User, invoice: Invoice
) -> None:
    # given
    payment = Payment.objects.create(
        amount=Decimal("45.50"),
        received_on=timezone.localdate(),
        reference="RF18539007547034",
        method=Payment.Method.IMPORT,
        bank_id="B-9",
        recorded_by=billing_user,
    )
    # a wrong number first: the error is next to the payment, the number typed kept
    wrong = staff.post(f"/billing/payments/{payment.pk}/assign/", {"invoice_number": "1999-1"})
    assert wrong.status_code == 400
    page = wrong.content.decode()
    assert "No invoice of yours has this number." in page
    assert 'value="1999-1"' in page
    # when
    staff.post(f"/billing/payments/{payment.pk}/assign/", {"invoice_number": invoice.number})
    # then
    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.invoice_id == invoice.pk
    assert invoice.status == Invoice.Status.PAID
    assert staff.get("/billing/payments/").context["unmatched"] == []


def test_the_aging_report_buckets_open_balances_and_lists_the_overdue(
    staff: Client, record: Patient
) -> None:
    # given invoices not due, 10 and 45 days overdue, and a paid one long overdue
    day = timezone.localdate()
    make_invoice(record, amount_due=Decimal("10.00"), pdf=False)
    late = make_invoice(
        record, amount_due=Decimal("20.00"), due_date=day - dt.timedelta(days=10), pdf=False
    )
    later = make_invoice(
        record, amount_due=Decimal("30.00"), due_date=day - dt.timedelta(days=45), pdf=False
    )
    make_invoice(
        record,
        amount_due=Decimal("40.00"),
        due_date=day - dt.timedelta(days=200),
        status=Invoice.Status.PAID,
        pdf=False,
    )
    # when
    response = staff.get("/billing/aging/")
    # then
    report = response.context["report"]
    totals = {bucket.key: bucket.total for bucket in report.buckets}
    assert totals == {
        "current": Decimal("10.00"),
        "1-30": Decimal("20.00"),
        "31-60": Decimal("30.00"),
        "61-90": Decimal("0"),
        "90+": Decimal("0"),
    }
    assert [invoice.pk for invoice in response.context["overdue"]] == [later.pk, late.pk]
    assert response.context["chart"]["totals"] == [10.0, 20.0, 30.0, 0.0, 0.0]
    page = response.content.decode()
    assert 'id="aging-data"' in page
    assert "chart.umd.min.js" in page
    assert "billing-aging.js" in page


def test_the_export_gives_the_bookings_of_the_period_as_csv(staff: Client, record: Patient) -> None:
    invoice = make_invoice(record, pdf=False)
    day = timezone.localdate()
    start, end = (day - dt.timedelta(days=1)).isoformat(), (day + dt.timedelta(days=1)).isoformat()
    response = staff.get(f"/billing/export.csv?start={start}&end={end}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Cache-Control"] == "private, no-store"
    body = response.content.decode()
    assert body.startswith("date;type;number;")
    assert invoice.number in body


def test_the_export_without_a_period_shows_the_form_and_a_reversed_one_an_error(
    staff: Client,
) -> None:
    form = staff.get("/billing/export.csv")
    assert form.status_code == 200
    assert "Download the CSV" in form.content.decode()
    reversed_period = staff.get("/billing/export.csv?start=2025-02-01&end=2025-01-01")
    assert reversed_period.status_code == 400
    assert "ends before it starts" in reversed_period.content.decode()
