"""Printable invoices and credit notes (WeasyPrint), with the Swiss QR-bill payment part.

The payment part follows the Swiss Payment Standards' style guide: receipt (62 mm) and payment
part (148 mm), 105 mm high at the bottom of an A4 page, Liberation Sans (one of the allowed
sans-serif fonts), headings and values in the prescribed sizes, the QR code 46 × 46 mm with the
Swiss cross (7 × 7 mm) in its middle, error correction level M. `qrbill` validates the data
(IBAN, addresses, reference, amount) and builds the payload (`QRBill.qr_data()`); the code is
drawn as a PNG image so that anyone can extract it from the PDF and decode it.

The payment part is a CSS footnote (`float: footnote`): WeasyPrint puts it at the bottom of
the page where the invoice ends, and moves it to a new page when the lines leave no room.

Rendering is on the hot path of batch runs: the stylesheet and fonts are parsed once per
thread (WeasyPrint's font objects are not shared across threads), the template is cached by
Django's loader, and nothing is ever fetched (only the inline QR code is allowed).
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import segno
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from ..models import BillingProfile, CreditNote, Invoice, InvoiceLine
from . import BillingError
from .references import format_reference

CSS_PATH = Path(settings.BASE_DIR) / "static" / "css" / "billing_pdf.css"
QR_LANGUAGES = ("fr", "de", "it", "en")
QR_CODE_MM = Decimal(46)
SWISS_CROSS_MM = Decimal(7)
# Pixels per QR module: enough for a crisp print at 46 mm, small as a 1-bit PNG.
QR_SCALE = 4
QR_QUIET_MODULES = 4

_local = threading.local()


def _weasy() -> tuple[Any, Any]:
    """The parsed stylesheet and its font configuration, made once per thread."""
    cached = getattr(_local, "weasy", None)
    if cached is None:
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        font_config = FontConfiguration()
        css = CSS(string=CSS_PATH.read_text(encoding="utf-8"), font_config=font_config)
        cached = _local.weasy = (css, font_config)
    return cached


def _write_pdf(html: str) -> bytes:
    from weasyprint import HTML, URLFetcher

    css, font_config = _weasy()
    fetcher = URLFetcher(allowed_protocols={"data"})
    document = HTML(string=html, url_fetcher=fetcher, base_url=str(CSS_PATH.parent))
    return bytes(document.write_pdf(stylesheets=[css], font_config=font_config))


# ---------------------------------------------------------------------------------------------
# Formatting


def chf(amount: Decimal | None) -> str:
    """Swiss notation: 1'234.50."""
    if amount is None:
        return ""
    return f"{amount:,.2f}".replace(",", "'")


def qr_amount(amount: Decimal) -> str:
    """The QR-bill notation: a space between thousands, two decimals (1 234.50)."""
    return f"{amount:,.2f}".replace(",", " ")


def grouped_iban(iban: str) -> str:
    compact = "".join(iban.split()).upper()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _plain(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return ""
    return f"{value:.{places}f}"


# ---------------------------------------------------------------------------------------------
# QR code


def qr_png(payload: str) -> tuple[bytes, int]:
    """The QR-bill code as a 1-bit PNG (quiet zone included) and its size in modules.

    Error level M exactly (no boost: the standard fixes it), UTF-8 as the payload's coding
    type 1 says, and the Swiss cross over the middle.
    """
    from PIL import Image, ImageDraw

    code = segno.make(payload, error="m", boost_error=False, micro=False, encoding="utf-8")
    modules = int(code.symbol_size(border=0)[0])
    side = (modules + 2 * QR_QUIET_MODULES) * QR_SCALE
    image = Image.new("1", (side, side), 1)
    draw = ImageDraw.Draw(image)
    offset = QR_QUIET_MODULES * QR_SCALE
    for y, row in enumerate(code.matrix):
        for x, dark in enumerate(row):
            if dark:
                left, top = offset + x * QR_SCALE, offset + y * QR_SCALE
                draw.rectangle((left, top, left + QR_SCALE - 1, top + QR_SCALE - 1), fill=0)
    _draw_swiss_cross(draw, center=side / 2, size=modules * QR_SCALE * SWISS_CROSS_MM / QR_CODE_MM)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue(), modules


def _draw_swiss_cross(draw: Any, *, center: float, size: Decimal) -> None:
    """A black square with a white cross and a thin white border, `size` pixels wide."""
    half = float(size) / 2
    border = float(size) * 0.07
    draw.rectangle((center - half, center - half, center + half, center + half), fill=1)
    inner = half - border
    draw.rectangle((center - inner, center - inner, center + inner, center + inner), fill=0)
    # Arms: 18 % wide, 60 % long of the black square (the cross of the federal coat of arms).
    arm_long = inner * 0.60
    arm_wide = inner * 0.18
    draw.rectangle(
        (center - arm_wide, center - arm_long, center + arm_wide, center + arm_long), fill=1
    )
    draw.rectangle(
        (center - arm_long, center - arm_wide, center + arm_long, center + arm_wide), fill=1
    )


# ---------------------------------------------------------------------------------------------
# The QR-bill


@dataclass(frozen=True)
class Slip:
    """What the receipt and the payment part print."""

    labels: dict[str, str]
    account: str
    creditor: list[str]
    reference: str
    additional_information: str
    debtor: list[str]
    currency: str
    amount: str
    qr_data_uri: str
    qr_width_mm: str
    qr_left_mm: str
    qr_top_mm: str
    payload: str


def _qr_language(language: str) -> str:
    language = (language or "").split("-")[0].lower()
    return language if language in QR_LANGUAGES else "fr"


def _debtor(invoice: Invoice) -> dict[str, str] | None:
    patient = invoice.patient
    if not (patient.postal_code and patient.city):
        # An incomplete address leaves the box blank for the payer to fill in.
        return None
    return {
        "name": patient.full_name[:70],
        "street": patient.address_line[:70],
        "pcode": patient.postal_code[:16],
        "city": patient.city[:35],
        "country": patient.country or "CH",
    }


def build_slip(invoice: Invoice, profile: BillingProfile, language: str) -> Slip:
    """Validate the QR-bill data with `qrbill` and lay out its two parts."""
    from qrbill import QRBill

    try:
        bill = QRBill(
            account=profile.iban,
            creditor={
                "name": profile.creditor_name,
                "street": profile.street,
                "pcode": profile.postal_code,
                "city": profile.city,
                "country": profile.country,
            },
            debtor=_debtor(invoice),
            amount=f"{invoice.amount_due:.2f}",
            currency="CHF",
            reference_number=invoice.reference,
            additional_information=(_("Invoice %(number)s") % {"number": invoice.number})[:140],
            language=_qr_language(language),
        )
    except ValueError as error:
        raise BillingError(
            _("The QR-bill cannot be printed: %(error)s. Check the billing profile.")
            % {"error": error}
        ) from None
    payload = bill.qr_data()
    png, modules = qr_png(payload)
    # The image carries a quiet zone: size it so that the code itself measures 46 mm.
    width = QR_CODE_MM * (modules + 2 * QR_QUIET_MODULES) / modules
    offset = QR_CODE_MM * QR_QUIET_MODULES / modules
    labels = {
        "receipt": "Receipt",
        "payment_part": "Payment part",
        "account": "Account / Payable to",
        "reference": "Reference",
        "additional_information": "Additional information",
        "payable_by": "Payable by",
        "payable_by_blank": "Payable by (name/address)",
        "currency": "Currency",
        "amount": "Amount",
        "acceptance_point": "Acceptance point",
    }
    return Slip(
        labels={key: bill.label(text) for key, text in labels.items()},
        account=grouped_iban(bill.account),
        creditor=list(bill.creditor.as_paragraph()),
        reference=format_reference(invoice.reference),
        additional_information=bill.additional_information,
        debtor=list(bill.debtor.as_paragraph()) if bill.debtor else [],
        currency=bill.currency,
        amount=qr_amount(invoice.amount_due),
        qr_data_uri="data:image/png;base64," + base64.b64encode(png).decode(),
        qr_width_mm=f"{width:.3f}",
        # The code itself at 5 mm from the payment part's left edge and 17 mm from its top (the
        # title section, then the QR-code section's 5 mm margin).
        qr_left_mm=f"{5 - offset:.3f}",
        qr_top_mm=f"{17 - offset:.3f}",
        payload=payload,
    )


# ---------------------------------------------------------------------------------------------
# Documents


def _line_rows(lines: list[InvoiceLine]) -> list[dict[str, Any]]:
    from .invoices import line_vat

    return [
        {
            "date": line.performed_at,
            "tariff": line.tariff,
            "code": line.code,
            "label": line.label,
            "quantity": _plain(line.quantity),
            "points": _plain(line.unit_points),
            "point_value": _plain(line.point_value, 4),
            "unit_price": chf(line.unit_price),
            "amount": chf(line.amount),
            "vat_rate": _plain(line.vat_rate),
            "vat": chf(line_vat(line)),
            "covered": line.covered,
        }
        for line in lines
    ]


def invoice_context(
    invoice: Invoice,
    *,
    lines: list[InvoiceLine] | None = None,
    profile: BillingProfile | None = None,
) -> dict[str, Any]:
    """Everything the invoice template prints (language: the patient's)."""
    lines = lines if lines is not None else list(invoice.lines.order_by("performed_at", "pk"))
    profile = profile or BillingProfile.objects.get(organization_id=invoice.organization_id)
    language = invoice.patient.preferred_language or settings.LANGUAGE_CODE
    dates = [line.performed_at for line in lines]
    return {
        "invoice": invoice,
        "profile": profile,
        "organization": invoice.organization,
        "patient": invoice.patient,
        "coverage": invoice.coverage,
        "insurer": invoice.insurer,
        "tiers_payant": invoice.recipient == Invoice.Recipient.INSURER,
        "rows": _line_rows(lines),
        "period_start": min(dates) if dates else None,
        "period_end": max(dates) if dates else None,
        "reference": format_reference(invoice.reference),
        "amounts": {
            name: chf(getattr(invoice, name))
            for name in ("net", "vat", "total", "patient_share", "insurer_share", "amount_due")
        },
        "slip": build_slip(invoice, profile, language) if invoice.amount_due > 0 else None,
        "language": language,
    }


def render_invoice_pdf(
    invoice: Invoice,
    *,
    lines: list[InvoiceLine] | None = None,
    profile: BillingProfile | None = None,
) -> bytes:
    """The invoice as a PDF, in the patient's language, with its QR-bill payment part."""
    context = invoice_context(invoice, lines=lines, profile=profile)
    with translation.override(context["language"]):
        html = render_to_string("billing/invoice_pdf.html", context)
    return _write_pdf(html)


render_pdf = render_invoice_pdf


def render_credit_note_pdf(credit_note: CreditNote) -> bytes:
    """The credit note as a PDF (no payment part: nothing is to be paid)."""
    invoice = credit_note.invoice
    profile = BillingProfile.objects.get(organization_id=invoice.organization_id)
    language = invoice.patient.preferred_language or settings.LANGUAGE_CODE
    context = {
        "credit_note": credit_note,
        "invoice": invoice,
        "profile": profile,
        "organization": invoice.organization,
        "patient": invoice.patient,
        "insurer": invoice.insurer,
        "coverage": invoice.coverage,
        "amount": chf(credit_note.amount),
        "invoice_total": chf(invoice.total),
        "invoice_amount_due": chf(invoice.amount_due),
        "credited": chf(invoice.credited),
        "balance": chf(max(invoice.balance, Decimal(0))),
        "cancels_invoice": invoice.status == Invoice.Status.CANCELLED,
        "language": language,
    }
    with translation.override(language):
        html = render_to_string("billing/credit_note_pdf.html", context)
    return _write_pdf(html)
