"""Payments: by hand, matched by reference or to a chosen invoice; bank files (camt.054 and CSV)
matched by reference, idempotent, bad lines reported while the good ones are kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from django.utils import translation

from apps.accounts.models import Organization, Role, User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import ChargeItem, Invoice, Payment
from apps.billing.services import BillingError
from apps.billing.services.invoices import do_generate_invoice
from apps.billing.services.payments import (
    do_assign_payment,
    do_record_payment,
    import_payments,
    unmatched_payments,
)
from apps.billing.services.references import format_reference
from apps.records.models import Patient
from tests.billing.invoices_support import denials

pytestmark = pytest.mark.usefixtures("billing_profile")

TODAY = dt.date(2026, 3, 2)


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    # The messages checked below are the English ones (French is the default language).
    with translation.override("en"):
        yield


@pytest.fixture
def invoice(
    billing_user: User, record2: Patient, make_charge: Callable[..., ChargeItem]
) -> Invoice:
    """CHF 50.00 due by the patient (no insurance)."""
    make_charge(record2, "video_base", 1, "50.00")
    return do_generate_invoice(billing_user, record2.pk)


@pytest.fixture
def other_billing(make_user: Callable[..., User]) -> User:
    other = Organization.objects.create(name="Autre clinique", gln="7601000000082")
    return make_user(Role.BILLING, organization=other)


def camt054(*transactions: dict[str, str]) -> bytes:
    """A camt.054.001.08 notification with one booked entry per transaction."""
    entries = []
    for index, tx in enumerate(transactions, start=1):
        reference = (
            f"<RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Prtry>QRR</Prtry></CdOrPrtry></Tp>"
            f"<Ref>{tx['reference']}</Ref></CdtrRefInf></Strd></RmtInf>"
            if tx.get("reference")
            else ""
        )
        entries.append(
            f"""<Ntry>
      <Amt Ccy="{tx.get("currency", "CHF")}">{tx["amount"]}</Amt>
      <CdtDbtInd>{tx.get("direction", "CRDT")}</CdtDbtInd>
      <Sts><Cd>BOOK</Cd></Sts>
      <BookgDt><Dt>{tx.get("date", "2026-03-02")}</Dt></BookgDt>
      <ValDt><Dt>{tx.get("date", "2026-03-02")}</Dt></ValDt>
      <AcctSvcrRef>ENTRY-{index}</AcctSvcrRef>
      <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>VCOM</SubFmlyCd></Fmly></Domn></BkTxCd>
      <NtryDtls><TxDtls>
        <Refs><AcctSvcrRef>{tx["bank_id"]}</AcctSvcrRef></Refs>
        <Amt Ccy="{tx.get("currency", "CHF")}">{tx["amount"]}</Amt>
        <CdtDbtInd>{tx.get("direction", "CRDT")}</CdtDbtInd>
        {reference}
      </TxDtls></NtryDtls>
    </Ntry>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>2026-03-02T18:00:00</CreDtTm></GrpHdr>
    <Ntfctn>
      <Id>NTF-1</Id>
      <Acct><Id><IBAN>CH4431999123000889012</IBAN></Id></Acct>
      {"".join(entries)}
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>""".encode()


# ---------------------------------------------------------------------------------------------
# By hand


def test_a_payment_with_the_reference_settles_the_invoice(
    billing_user: User, invoice: Invoice
) -> None:
    payment = do_record_payment(
        billing_user,
        amount="50.00",
        received_on=TODAY,
        reference=format_reference(invoice.reference),
    )

    assert payment.invoice == invoice
    assert payment.method == Payment.Method.MANUAL
    assert payment.recorded_by == billing_user
    invoice.refresh_from_db()
    assert invoice.paid == Decimal("50.00")
    assert invoice.status == Invoice.Status.PAID
    event = AuditEvent.objects.get(object_type="billing.payment", action=Action.CREATE)
    assert event.patient_id == str(invoice.patient_id)


def test_a_partial_payment_leaves_the_invoice_open(billing_user: User, invoice: Invoice) -> None:
    do_record_payment(billing_user, amount="20", received_on=TODAY, invoice_id=invoice.pk)

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.ISSUED
    assert invoice.balance == Decimal("30.00")

    do_record_payment(billing_user, amount="30.00", received_on=TODAY, invoice=invoice)

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert invoice.balance == Decimal("0.00")


def test_an_unknown_reference_is_kept_unmatched_then_assigned(
    billing_user: User, invoice: Invoice
) -> None:
    payment = do_record_payment(
        billing_user, amount="50.00", received_on=TODAY, reference="RF18539007547034"
    )

    assert payment.invoice is None
    assert list(unmatched_payments(billing_user)) == [payment]

    do_assign_payment(billing_user, payment.pk, invoice.pk)

    payment.refresh_from_db()
    invoice.refresh_from_db()
    assert payment.invoice == invoice
    assert invoice.status == Invoice.Status.PAID
    assert not unmatched_payments(billing_user).exists()
    with pytest.raises(Http404):
        do_assign_payment(billing_user, payment.pk, invoice.pk)


def test_a_reference_of_another_invoice_than_the_chosen_one_is_refused(
    billing_user: User,
    invoice: Invoice,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
) -> None:
    make_charge(record)
    other = do_generate_invoice(billing_user, record.pk)

    with pytest.raises(BillingError, match=invoice.number):
        do_record_payment(
            billing_user,
            amount="5",
            received_on=TODAY,
            reference=invoice.reference,
            invoice_id=other.pk,
        )

    assert not Payment.objects.exists()


@pytest.mark.parametrize("amount", ["0", "-5", "abc", "1.234", "", "NaN", "1e40"])
def test_impossible_amounts_are_refused(billing_user: User, invoice: Invoice, amount: str) -> None:
    with pytest.raises(BillingError):
        do_record_payment(billing_user, amount=amount, received_on=TODAY, invoice_id=invoice.pk)

    assert not Payment.objects.exists()


def test_a_reference_of_another_organisation_does_not_match(
    other_billing: User, invoice: Invoice
) -> None:
    payment = do_record_payment(
        other_billing, amount="50.00", received_on=TODAY, reference=invoice.reference
    )

    assert payment.invoice is None
    invoice.refresh_from_db()
    assert invoice.paid == Decimal("0.00")


@pytest.mark.parametrize("who", ["clinician", "patient2", "other_billing"])
def test_others_cannot_record_a_payment_on_the_invoice(
    who: str, invoice: Invoice, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(who)

    with pytest.raises(Http404):
        do_record_payment(user, amount="50", received_on=TODAY, invoice_id=invoice.pk)

    assert len(denials(user)) == 1
    assert not Payment.objects.exists()


def test_billing_staff_of_another_organisation_cannot_assign_to_our_invoice(
    billing_user: User, other_billing: User, invoice: Invoice
) -> None:
    theirs = do_record_payment(other_billing, amount="50", received_on=TODAY)
    ours = do_record_payment(billing_user, amount="50", received_on=TODAY)

    with pytest.raises(Http404):
        do_assign_payment(other_billing, theirs.pk, invoice.pk)
    with pytest.raises(Http404):
        do_assign_payment(billing_user, theirs.pk, invoice.pk)
    assert list(unmatched_payments(other_billing)) == [theirs]
    assert list(unmatched_payments(billing_user)) == [ours]
    invoice.refresh_from_db()
    assert invoice.paid == Decimal("0.00")


# ---------------------------------------------------------------------------------------------
# Bank files


def test_camt054_payments_are_matched_by_reference(
    billing_user: User, invoice: Invoice, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(record, "video_base", 1, "100.00")
    second = do_generate_invoice(billing_user, record.pk)  # 10.00 due (tiers payant)
    content = camt054(
        {"bank_id": "TX-1", "amount": "50.00", "reference": invoice.reference},
        {"bank_id": "TX-2", "amount": "10.00", "reference": second.reference},
        {"bank_id": "TX-3", "amount": "12.00", "reference": "RF18539007547034"},
    )

    result = import_payments(billing_user, content, "camt054.xml")

    assert (result.matched, result.unmatched, result.duplicates, result.errors) == (2, 1, 0, [])
    invoice.refresh_from_db()
    second.refresh_from_db()
    assert invoice.status == second.status == Invoice.Status.PAID
    payment = Payment.objects.get(bank_id="TX-1")
    assert payment.received_on == dt.date(2026, 3, 2)
    assert payment.method == Payment.Method.IMPORT
    assert Payment.objects.get(bank_id="TX-3").invoice is None


def test_importing_the_same_file_twice_adds_nothing(billing_user: User, invoice: Invoice) -> None:
    content = camt054({"bank_id": "TX-1", "amount": "20.00", "reference": invoice.reference})
    import_payments(billing_user, content, "camt054.xml")

    again = import_payments(billing_user, content, "camt054.xml")

    assert (again.matched, again.unmatched, again.duplicates) == (0, 0, 1)
    assert Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.paid == Decimal("20.00")


def test_bad_camt_entries_are_reported_and_good_ones_kept(
    billing_user: User, invoice: Invoice
) -> None:
    content = camt054(
        {"bank_id": "TX-1", "amount": "12.00", "reference": invoice.reference, "currency": "EUR"},
        {"bank_id": "TX-2", "amount": "50.00", "reference": invoice.reference},
        {"bank_id": "TX-3", "amount": "7.00", "direction": "DBIT"},
        {"bank_id": "TX-4", "amount": "abc"},
        {"bank_id": "TX-5", "amount": "5.00", "date": "yesterday"},
    )

    result = import_payments(billing_user, content, "camt054.xml")

    assert result.matched == 1
    assert result.skipped == 1
    assert len(result.errors) == 3
    assert "entry 1" in result.errors[0] and "CHF" in result.errors[0]
    assert "entry 4" in result.errors[1]
    assert "entry 5" in result.errors[2]
    assert list(Payment.objects.values_list("bank_id", flat=True)) == ["TX-2"]


def test_csv_payments_with_a_bad_line(billing_user: User, invoice: Invoice) -> None:
    content = (
        "date;amount;reference;bank_id\r\n"
        f"2026-03-02;30.00;{format_reference(invoice.reference)};B-1\r\n"
        "2026-03-02;not money;;B-2\r\n"
        "02.03.2026;20,00;;B-3\r\n"
        "2026-03-02;5.00;;\r\n"
        "\r\n"
        f"2026-03-03;1'000.00;{invoice.reference};B-1\r\n"
    ).encode()

    result = import_payments(billing_user, content, "payments.csv")

    assert (result.matched, result.unmatched, result.duplicates) == (1, 1, 1)
    assert len(result.errors) == 2
    assert result.errors[0].startswith("line 3")
    assert result.errors[1].startswith("line 5")
    assert Payment.objects.get(bank_id="B-3").amount == Decimal("20.00")
    invoice.refresh_from_db()
    assert invoice.paid == Decimal("30.00")


def test_an_uploaded_file_is_read_too(billing_user: User, invoice: Invoice) -> None:
    upload = SimpleUploadedFile(
        "payments.csv",
        f"date;amount;reference;bank_id\n2026-03-02;50;{invoice.reference};U-1\n".encode(),
    )

    result = import_payments(billing_user, upload)

    assert result.matched == 1
    assert AuditEvent.objects.get(object_type="billing.payment_import").detail["file"] == (
        "payments.csv"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"when;how much\n2026-01-01;5\n", "first line"),
        (b"<Document><broken>", "cannot be read"),
        (b"<root/>", "not an ISO 20022"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Document>&a;</Document>',
            "DTD",
        ),
    ],
)
def test_unreadable_files_are_refused_as_a_whole(
    billing_user: User, content: bytes, message: str
) -> None:
    with pytest.raises(BillingError, match=message):
        import_payments(billing_user, content, "file")

    assert not Payment.objects.exists()


def test_only_billing_staff_import(clinician: User, invoice: Invoice) -> None:
    content = camt054({"bank_id": "TX-1", "amount": "50.00", "reference": invoice.reference})

    with pytest.raises(Http404):
        import_payments(clinician, content, "camt054.xml")

    assert len(denials(clinician)) == 1
    assert not Payment.objects.exists()
