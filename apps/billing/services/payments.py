"""Payments: recorded by hand or imported from the bank, matched to invoices by reference.

Bank files: ISO 20022 camt.054 (the debit/credit notification Swiss banks send for QR-bill
payments, any version: elements are matched by local name) and a simple CSV
`date;amount;reference;bank_id`. Every line stands on its own: a bad line is reported and the
good ones are kept; the bank's id of each line makes an import idempotent (a second import of
the same file adds nothing). Payments whose reference matches no invoice of the organisation
are kept unmatched (invoice empty) for billing staff to assign.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import xml.etree.ElementTree as ET  # noqa: S405 - DTDs are refused before parsing (see _parse_xml)
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import deny

from ..access import is_billing_staff
from ..models import Invoice, Payment
from ..money import to_cents
from . import BillingError
from .invoices import get_invoice_for_billing_staff
from .references import normalize_reference

MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_LINES = 20_000
CSV_COLUMNS = ("date", "amount", "reference", "bank_id")


@dataclass
class ImportResult:
    """What an import did: counts, and one message per line that was not taken."""

    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)

    @property
    def created(self) -> int:
        return self.matched + self.unmatched


@dataclass(frozen=True)
class Entry:
    """One incoming payment read from a file (`where` says where, for error messages)."""

    where: str
    bank_id: str
    amount: Decimal
    received_on: dt.date
    reference: str


class LineError(ValueError):
    """A line of a bank file that cannot be taken (the message names the problem)."""


# ---------------------------------------------------------------------------------------------
# Recording


def _require_billing_staff(user: User, request: HttpRequest | None, what: str) -> int:
    """The id of the user's organisation if they are billing staff, else Http404 (audited)."""
    if not is_billing_staff(user) or user.organization_id is None:
        raise deny(user, request=request, what=what, object_type="billing.payment")
    return user.organization_id


def parse_amount(text: Any) -> Decimal:
    """CHF from a form or a file: "1'234.50", "1234,50", "12.3"; must be positive."""
    raw = str(text or "").replace("'", "").replace("\u2019", "").replace(" ", "").strip()
    if "," in raw and "." not in raw:
        raw = raw.replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise LineError(_("the amount %(amount)s is not a number") % {"amount": text}) from None
    if not value.is_finite() or value <= 0:
        raise LineError(_("the amount must be greater than zero"))
    if value >= Decimal("1e10") or value != to_cents(value):
        raise LineError(_("the amount %(amount)s is not a CHF amount") % {"amount": text})
    return value


def parse_date(text: str) -> dt.date:
    text = (text or "").strip()[:10]
    for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            continue
    raise LineError(_("the date %(date)s is not a date (YYYY-MM-DD)") % {"date": text})


def _match(organization_id: int, reference: str) -> Invoice | None:
    """The invoice of the organisation that carries this reference."""
    if not reference:
        return None
    return Invoice.objects.filter(
        reference=reference, patient__organization_id=organization_id
    ).first()


def _apply(invoice: Invoice, amount: Decimal) -> Invoice:
    """Add a payment to an invoice (row locked) and settle it when nothing is left to pay."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    invoice.paid += amount
    if invoice.status == Invoice.Status.ISSUED and invoice.balance <= 0:
        invoice.status = Invoice.Status.PAID
    invoice.save(update_fields=["paid", "status"])
    return invoice


def _record(
    user: User,
    *,
    amount: Decimal,
    received_on: dt.date,
    reference: str,
    invoice: Invoice | None,
    method: str,
    bank_id: str = "",
    request: HttpRequest | None = None,
) -> Payment:
    with transaction.atomic():
        if invoice is not None:
            invoice = _apply(invoice, amount)
        payment = Payment.objects.create(
            invoice=invoice,
            amount=amount,
            received_on=received_on,
            reference=reference[:35],
            method=method,
            bank_id=bank_id[:64],
            recorded_by=user,
        )
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=payment,
            patient_id=str(invoice.patient_id) if invoice is not None else "",
            detail={
                "what": "payment",
                "amount": str(amount),
                "invoice": invoice.number if invoice is not None else "",
                "method": method,
            },
        )
    return payment


def do_record_payment(
    user: User,
    *,
    amount: Any,
    received_on: dt.date,
    reference: str = "",
    invoice_id: Any = None,
    invoice: Invoice | None = None,
    request: HttpRequest | None = None,
) -> Payment:
    """Record money received, matched by its reference or to the chosen invoice.

    The invoice may be given as `invoice_id` or as `invoice` (already fetched: access is checked
    again either way). With neither, or a reference that matches nothing, the payment is kept
    unmatched.
    """
    organization_id = _require_billing_staff(user, request, "payment")
    try:
        value = parse_amount(amount)
    except LineError as error:
        raise BillingError(str(error).capitalize() + ".") from None
    reference = normalize_reference(reference)
    if invoice is not None:
        invoice_id = invoice.pk
    invoice = None
    if invoice_id not in (None, ""):
        invoice, _access = get_invoice_for_billing_staff(
            user, invoice_id, request=request, what="payment"
        )
    matched = _match(organization_id, reference)
    if invoice is not None and matched is not None and matched.pk != invoice.pk:
        raise BillingError(
            _("This reference belongs to invoice %(number)s, not to the invoice chosen.")
            % {"number": matched.number}
        )
    return _record(
        user,
        amount=value,
        received_on=received_on,
        reference=reference,
        invoice=invoice or matched,
        method=Payment.Method.MANUAL,
        request=request,
    )


def unmatched_payments(user: User) -> Any:
    """Payments of the user's organisation waiting to be assigned to an invoice."""
    if not is_billing_staff(user) or user.organization_id is None:
        return Payment.objects.none()
    return Payment.objects.filter(
        invoice__isnull=True, recorded_by__organization_id=user.organization_id
    )


def do_assign_payment(
    user: User, payment_id: Any, invoice_id: Any, *, request: HttpRequest | None = None
) -> Payment:
    """Assign an unmatched payment of the organisation to one of its invoices.

    `payment_id` and `invoice_id` may be ids or the objects themselves.
    """
    _require_billing_staff(user, request, "payment")
    payment_id = getattr(payment_id, "pk", payment_id)
    invoice_id = getattr(invoice_id, "pk", invoice_id)
    payment = (
        unmatched_payments(user).filter(pk=payment_id).first()
        if str(payment_id).isdigit()
        else None
    )
    if payment is None:
        raise deny(
            user,
            request=request,
            what="payment",
            object_type="billing.payment",
            object_id=payment_id,
        )
    invoice, access = get_invoice_for_billing_staff(
        user, invoice_id, request=request, what="payment"
    )
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.invoice_id is not None:
            raise BillingError(_("This payment was assigned in the meantime."))
        invoice = _apply(invoice, payment.amount)
        payment.invoice = invoice
        payment.save(update_fields=["invoice"])
        audit(
            Action.UPDATE,
            request=request,
            actor=user,
            obj=payment,
            patient_id=str(invoice.patient_id),
            detail=access.audit_detail(
                what="payment assigned", invoice=invoice.number, amount=str(payment.amount)
            ),
        )
    return payment


# ---------------------------------------------------------------------------------------------
# Bank files


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element | None, *path: str) -> ET.Element | None:
    """The first descendant along `path` of local names (namespaces ignored)."""
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _text(element: ET.Element | None, *path: str) -> str:
    found = _child(element, *path)
    return (found.text or "").strip() if found is not None else ""


def _children(element: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in element if _local(c.tag) == name] if element is not None else []


def _parse_xml(content: bytes) -> ET.Element:
    # Bank files never carry a DTD: refusing one rules out entity expansion and external
    # entities without a hardened parser.
    if re.search(rb"<!(DOCTYPE|ENTITY)", content[:4096], re.IGNORECASE) or b"<!ENTITY" in content:
        raise BillingError(_("This XML file declares a DTD or entities: it is not a bank file."))
    try:
        return ET.fromstring(content)  # noqa: S314 - no DTD (checked above)
    except ET.ParseError as error:
        raise BillingError(
            _("This XML file cannot be read (%(error)s).") % {"error": error}
        ) from None


Parsed = Entry | LineError


def camt_entries(content: bytes, result: ImportResult) -> Iterator[Parsed]:
    """The incoming payments of a camt.054 (or camt.053) file, one per transaction."""
    root = _parse_xml(content)
    if _local(root.tag) != "Document":
        raise BillingError(_("This XML file is not an ISO 20022 camt document."))
    entries = [
        entry
        for notification in root.iter()
        if _local(notification.tag) in ("Ntfctn", "Stmt")
        for entry in _children(notification, "Ntry")
    ]
    if not entries:
        raise BillingError(_("This camt file contains no booked entries."))
    for number, entry in enumerate(entries, start=1):
        where = _("entry %(number)s") % {"number": number}
        # Only money coming in: debits and reversals are not payments of invoices.
        if _text(entry, "CdtDbtInd") != "CRDT" or _text(entry, "RvslInd").lower() == "true":
            result.skipped += 1
            continue
        entry_ref = _text(entry, "AcctSvcrRef") or _text(entry, "NtryRef")
        booked = (
            _text(entry, "BookgDt", "Dt")
            or _text(entry, "BookgDt", "DtTm")
            or _text(entry, "ValDt", "Dt")
            or _text(entry, "ValDt", "DtTm")
        )
        details = [
            tx for block in _children(entry, "NtryDtls") for tx in _children(block, "TxDtls")
        ]
        if not details:
            yield _camt_entry(where, entry, None, entry_ref, booked)
            continue
        for index, tx in enumerate(details, start=1):
            if _text(tx, "CdtDbtInd") == "DBIT":
                result.skipped += 1
                continue
            bank_id = _text(tx, "Refs", "AcctSvcrRef")
            if not bank_id and entry_ref:
                # A batch booking without per-transaction ids: the entry's id and the position.
                bank_id = f"{entry_ref}/{index}" if len(details) > 1 else entry_ref
            tx_where = f"{where}.{index}" if len(details) > 1 else where
            yield _camt_entry(tx_where, entry, tx, bank_id, booked)


def _camt_entry(
    where: str, entry: ET.Element, tx: ET.Element | None, bank_id: str, booked: str
) -> Parsed:
    amount_element = None
    if tx is not None:
        amount_element = _child(tx, "Amt")
        if amount_element is None:
            amount_element = _child(tx, "AmtDtls", "TxAmt", "Amt")
    if amount_element is None:
        amount_element = _child(entry, "Amt")
    if amount_element is None:
        return LineError(f"{where}: {_('no amount')}")
    if amount_element.get("Ccy", "CHF") != "CHF":
        return LineError(f"{where}: {_('the amount is not in CHF')}")
    if not bank_id:
        return LineError(f"{where}: {_('no bank reference (AcctSvcrRef)')}")
    reference = _text(tx, "RmtInf", "Strd", "CdtrRefInf", "Ref") if tx is not None else ""
    try:
        return Entry(
            where=where,
            bank_id=bank_id,
            amount=parse_amount(amount_element.text),
            received_on=parse_date(booked),
            reference=normalize_reference(reference),
        )
    except LineError as error:
        return LineError(f"{where}: {error}")


def csv_entries(content: bytes, result: ImportResult) -> Iterator[Parsed]:
    """The payments of a CSV file `date;amount;reference;bank_id` (header line first)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("latin-1")
    reader = csv.reader(io.StringIO(text), delimiter=";")
    try:
        header = [cell.strip().lower() for cell in next(reader, [])]
    except csv.Error:
        header = []
    if tuple(header[:4]) != CSV_COLUMNS:
        raise BillingError(
            _("The first line of the CSV file must be: %(columns)s")
            % {"columns": ";".join(CSV_COLUMNS)}
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield LineError(f"{_('line %(number)s') % {'number': reader.line_num}}: {error}")
            continue
        where = _("line %(number)s") % {"number": reader.line_num}
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(CSV_COLUMNS):
            yield LineError(f"{where}: {_('%(count)s columns instead of 4') % {'count': len(row)}}")
            continue
        date, amount, reference, bank_id = (cell.strip() for cell in row[:4])
        if not bank_id:
            yield LineError(f"{where}: {_('the bank id is missing')}")
            continue
        try:
            yield Entry(
                where,
                bank_id,
                parse_amount(amount),
                parse_date(date),
                normalize_reference(reference),
            )
        except LineError as error:
            yield LineError(f"{where}: {error}")


def import_payments(
    user: User,
    content: bytes | UploadedFile,
    filename: str = "",
    *,
    request: HttpRequest | None = None,
) -> ImportResult:
    """Record the incoming payments of a bank file (camt.054 XML or CSV), matched by reference.

    Raises BillingError when the file as a whole cannot be read; otherwise every line is either
    recorded (matched or not), recognised as already imported (same bank id), or reported in
    `errors` — the others are kept regardless.
    """
    organization_id = _require_billing_staff(user, request, "payment import")
    if isinstance(content, bytes):
        data = content
    else:
        filename = filename or content.name or ""
        data = bytes(content.read(MAX_IMPORT_BYTES + 1))
    if len(data) > MAX_IMPORT_BYTES:
        raise BillingError(_("The file is too large (5 MB at most)."))
    if not data.strip():
        raise BillingError(_("The file is empty."))
    result = ImportResult()
    is_xml = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
    source = camt_entries(data, result) if is_xml else csv_entries(data, result)
    seen: set[str] = set()
    for count, parsed in enumerate(source, start=1):
        if count > MAX_IMPORT_LINES:
            result.errors.append(
                _("Only the first %(count)s lines were read.") % {"count": MAX_IMPORT_LINES}
            )
            break
        if isinstance(parsed, LineError):
            result.errors.append(str(parsed))
            continue
        if parsed.bank_id in seen or Payment.objects.filter(bank_id=parsed.bank_id).exists():
            result.duplicates += 1
            continue
        seen.add(parsed.bank_id)
        invoice = _match(organization_id, parsed.reference)
        try:
            payment = _record(
                user,
                amount=parsed.amount,
                received_on=parsed.received_on,
                reference=parsed.reference,
                invoice=invoice,
                method=Payment.Method.IMPORT,
                bank_id=parsed.bank_id,
                request=request,
            )
        except IntegrityError:
            # The same file imported at the same moment by someone else.
            result.duplicates += 1
            continue
        result.payments.append(payment)
        if invoice is not None:
            result.matched += 1
        else:
            result.unmatched += 1
    audit(
        Action.CREATE,
        request=request,
        actor=user,
        object_type="billing.payment_import",
        detail={
            "what": "payment import",
            "file": (filename or "")[:120],
            "matched": result.matched,
            "unmatched": result.unmatched,
            "duplicates": result.duplicates,
            "errors": len(result.errors),
        },
    )
    return result
