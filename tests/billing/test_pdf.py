"""The invoice PDF: every required field, the QR-bill payment part, sealed storage, access."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.http import Http404

from apps.accounts.models import Organization, Role, User
from apps.audit.models import Action, AuditEvent
from apps.billing.access import get_invoice_for_user
from apps.billing.models import BillingProfile, ChargeItem, Insurer, Invoice
from apps.billing.services.invoices import do_generate_invoice, open_invoice_pdf
from apps.billing.services.pdf import QR_SCALE, qr_png, render_invoice_pdf
from apps.billing.services.references import creditor_reference, format_reference
from apps.core import crypto
from apps.records.models import Patient
from apps.records.services.documents import storage_path
from tests.billing.invoices_support import (
    denials,
    pdf_pages,
    pdf_text,
    qr_payloads,
    spc_fields,
)

pytestmark = pytest.mark.usefixtures("billing_profile")


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    yield


@pytest.fixture
def invoice(billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]) -> Invoice:
    make_charge(record, "video_base", 1, "17.20", unit_points=Decimal("18.52"))
    make_charge(record, "video_more", 2, "16.05", unit_points=Decimal("17.26"))
    make_charge(record, "report", 1, "35.00")
    return do_generate_invoice(billing_user, record.pk)


def test_the_pdf_carries_every_required_field(invoice: Invoice, record: Patient) -> None:
    text = pdf_text(open_invoice_pdf(invoice))

    for expected in [
        # creditor
        "Hôpital de test",
        "Rue du Bugnon 21",
        "Z123456",
        "CHE-123.456.788 TVA",
        # patient
        record.full_name,
        "01.03.1960" if record.birth_date == dt.date(1960, 3, 1) else "",
        record.birth_date.strftime("%d.%m.%Y"),
        "756.1234.5678.97",
        "Rue du Bugnon 46",
        # insurer
        "Assura Test",
        "7601003000016",
        "80756000012345",
        # invoice
        invoice.number,
        invoice.issued_at.strftime("%d.%m.%Y"),
        invoice.due_date.strftime("%d.%m.%Y"),
        format_reference(invoice.reference),
        # lines
        "AA.00.0010",
        "AA.00.0020",
        "RP.01",
        "tardoc",
        "Consultation vidéo, 5 premières minutes",
        "18.52",
        "17.26",
        "32.10",
        "8.10",
        # totals
        "84.30",  # net
        "2.84",  # VAT
        "87.15",  # total: 87.14 rounded
        "8.70",  # patient share (10 % of 87.14)
        "78.45",  # insurer share
    ]:
        assert expected in text, expected
    assert invoice.amount_due == Decimal("8.70")


def test_the_qr_code_decodes_to_the_invoice_payment(
    invoice: Invoice, billing_profile: BillingProfile, record: Patient
) -> None:
    payloads = qr_payloads(open_invoice_pdf(invoice))

    assert len(payloads) == 1
    fields = spc_fields(payloads[0])
    assert (fields["qr_type"], fields["version"], fields["coding"]) == ("SPC", "0200", "1")
    assert fields["iban"] == billing_profile.iban
    assert fields["creditor_name"] == "Hôpital de test"
    assert fields["amount"] == invoice.amount_due == Decimal("8.70")
    assert fields["currency"] == "CHF"
    assert fields["reference_type"] == "QRR"
    assert fields["reference"] == invoice.reference
    assert fields["debtor_name"] == record.full_name
    assert invoice.number in fields["message"]
    assert fields["trailer"] == "EPD"


def test_the_qr_code_has_error_level_m_and_the_swiss_cross() -> None:
    import zxingcpp
    from PIL import Image

    payload = "\r\n".join(["SPC", "0200", "1", "CH4431999123000889012", "S", "Hôpital de test"])
    png, modules = qr_png(payload + "\r\n" * 20 + "QRR\r\n" + "0" * 27 + "\r\nInvoice\r\nEPD")
    image = Image.open(io.BytesIO(png)).convert("L")
    results = zxingcpp.read_barcodes(image)

    assert results[0].text.startswith("SPC")
    assert results[0].ec_level == "M"
    # The middle of the code is the Swiss cross (7 of the code's 46 mm): a white cross on a
    # black square with a thin white border.
    middle = image.size[0] // 2
    cross = modules * QR_SCALE * 7 / 46
    black_corner = round(middle - cross / 2 + cross * 0.12)
    assert image.getpixel((middle, middle)) == 255
    assert image.getpixel((black_corner, black_corner)) == 0
    assert image.getpixel((round(middle - cross / 2 + 1), middle)) == 255  # the white border


def test_a_plain_iban_gets_a_creditor_reference(
    billing_user: User,
    billing_profile: BillingProfile,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
) -> None:
    billing_profile.iban = "CH9300762011623852957"
    billing_profile.save()
    make_charge(record)

    invoice = do_generate_invoice(billing_user, record.pk)

    assert invoice.reference == creditor_reference(invoice.number)
    fields = spc_fields(qr_payloads(open_invoice_pdf(invoice))[0])
    assert fields["reference_type"] == "SCOR"
    assert fields["reference"] == invoice.reference
    assert fields["iban"] == "CH9300762011623852957"


def test_the_payment_part_speaks_the_patients_language(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    record.preferred_language = "de"
    record.save()
    make_charge(record)

    text = pdf_text(open_invoice_pdf(do_generate_invoice(billing_user, record.pk)))

    assert "Zahlteil" in text
    assert "Empfangsschein" in text
    assert "Annahmestelle" in text


def test_french_is_the_default_payment_part(invoice: Invoice) -> None:
    text = pdf_text(open_invoice_pdf(invoice))

    assert "Section paiement" in text
    assert "Récépissé" in text
    assert "Point de dépôt" in text


def test_a_long_invoice_moves_the_payment_part_to_its_last_page(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    for day in range(30):
        performed_at = dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC) + dt.timedelta(days=day)
        make_charge(record, performed_at=performed_at)

    content = open_invoice_pdf(do_generate_invoice(billing_user, record.pk))

    from pypdf import PdfReader

    pages = PdfReader(io.BytesIO(content)).pages
    assert len(pages) >= 2
    texts = [page.extract_text() for page in pages]
    assert "Section paiement" in texts[-1]
    assert not any("Section paiement" in text for text in texts[:-1])
    assert pdf_text(content).count("AA.00.0010") == 30
    assert len(qr_payloads(content)) == 1


def test_a_short_invoice_is_one_page(invoice: Invoice) -> None:
    assert pdf_pages(open_invoice_pdf(invoice)) == 1


def test_a_patient_without_address_gets_a_blank_payer_box(
    billing_user: User,
    make_patient: Callable[..., Patient],
    make_charge: Callable[..., ChargeItem],
) -> None:
    chart = make_patient(address_line="", postal_code="", city="")
    make_charge(chart)

    content = open_invoice_pdf(do_generate_invoice(billing_user, chart.pk))

    fields = spc_fields(qr_payloads(content)[0])
    assert fields["debtor_name"] == ""
    assert "Payable par (nom/adresse)" in pdf_text(content)


def test_nothing_to_pay_prints_no_payment_part(
    billing_user: User, record: Patient, insurer: Insurer, make_charge: Callable[..., ChargeItem]
) -> None:
    insurer.patient_share = Decimal("0")
    insurer.save()
    make_charge(record)

    invoice = do_generate_invoice(billing_user, record.pk)

    assert invoice.amount_due == Decimal("0.00")
    assert invoice.status == Invoice.Status.PAID
    assert qr_payloads(open_invoice_pdf(invoice)) == []


def test_the_pdf_is_stored_encrypted_and_checked_when_opened(invoice: Invoice) -> None:
    blob = storage_path(invoice.pdf_name).read_bytes()

    assert not blob.startswith(b"%PDF")
    assert open_invoice_pdf(invoice).startswith(b"%PDF")
    invoice.pdf_sha256 = "0" * 64
    with pytest.raises(crypto.DecryptionError):
        open_invoice_pdf(invoice)


def test_rendering_again_gives_the_same_document(invoice: Invoice) -> None:
    text = pdf_text(render_invoice_pdf(invoice))

    assert text == pdf_text(open_invoice_pdf(invoice))


# ---------------------------------------------------------------------------------------------
# Who may open it


def test_the_patient_opens_their_own_invoice(invoice: Invoice, patient: User) -> None:
    found, access = get_invoice_for_user(patient, invoice.pk, what="invoice-pdf")

    assert found == invoice
    assert open_invoice_pdf(found).startswith(b"%PDF")
    assert AuditEvent.objects.filter(
        actor_id=patient.pk, action=Action.READ, object_id=str(invoice.pk)
    ).exists()


@pytest.mark.parametrize("who", ["patient2", "clinician", "outsider", "other_billing"])
def test_others_are_denied_and_audited(
    who: str, invoice: Invoice, request: pytest.FixtureRequest, make_user: Callable[..., User]
) -> None:
    if who == "other_billing":
        other = Organization.objects.create(name="Autre clinique", gln="7601000000082")
        user = make_user(Role.BILLING, organization=other)
    else:
        user = request.getfixturevalue(who)

    with pytest.raises(Http404):
        get_invoice_for_user(user, invoice.pk, what="invoice-pdf")

    refusals = denials(user)
    assert len(refusals) == 1
    assert refusals[0].object_id == str(invoice.pk)
