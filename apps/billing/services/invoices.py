"""Invoices: gapless numbers, generation from confirmed charges (one patient or a batch run),
the sealed PDF, sending to the patient, and credit notes.

Numbers are `YYYY-NNNNNN` (credit notes `CN-YYYY-NNNNNN`), taken from the `InvoiceSequence`
row of the series and year, locked with SELECT … FOR UPDATE inside the transaction that creates
the invoice: a number is only used if the invoice commits, and a rolled-back invoice gives its
number back, so the sequence has no gaps even with many generators at once.

Issued invoices are never edited: payments and credit notes only move `paid`, `credited` and
the status; a full credit note cancels the invoice and frees its charges to be invoiced again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core import crypto
from apps.notifications.services import notify
from apps.records.access import PatientAccess, Via, deny
from apps.records.services.documents import new_storage_name, storage_path, write_atomically

from ..access import get_billing_patient_for_user, get_invoice_for_user, is_billing_staff
from ..models import (
    ZERO,
    BillingProfile,
    BillingRun,
    ChargeItem,
    Coverage,
    CreditNote,
    Insurer,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
)
from ..money import round_chf, to_cents
from . import BillingError
from .references import reference_for

logger = logging.getLogger(__name__)

INVOICE_SERIES = "IN"
CREDIT_NOTE_SERIES = "CN"
HUNDRED = Decimal(100)


# ---------------------------------------------------------------------------------------------
# Numbers


def format_number(series: str, year: int, sequence: int) -> str:
    if series == INVOICE_SERIES:
        return f"{year}-{sequence:06d}"
    return f"{series}-{year}-{sequence:06d}"


def next_number(series: str, year: int) -> tuple[str, int]:
    """The next number of the series and year, e.g. ("2026-000042", 42).

    Must run inside the transaction that uses the number: the sequence row stays locked until
    it commits (number used) or rolls back (number given back), which is what makes the
    numbering gapless under concurrency.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("next_number() must run inside the transaction that uses the number")
    locked = InvoiceSequence.objects.select_for_update()
    row = locked.filter(series=series, year=year).first()
    if row is None:
        # The first number of a year: two generators may both find no row. INSERT … ON CONFLICT
        # DO NOTHING lets both go on without an error (and without a savepoint), then both
        # queue on the row lock of the one row that exists.
        InvoiceSequence.objects.bulk_create(
            [InvoiceSequence(series=series, year=year)], ignore_conflicts=True
        )
        row = locked.get(series=series, year=year)
    row.last += 1
    row.save(update_fields=["last"])
    return format_number(series, year, row.last), row.last


# ---------------------------------------------------------------------------------------------
# Amounts


@dataclass(frozen=True)
class Totals:
    """An invoice's amounts, all in CHF."""

    net: Decimal
    vat: Decimal
    total: Decimal
    patient_share: Decimal
    insurer_share: Decimal
    amount_due: Decimal


def line_vat(line: InvoiceLine) -> Decimal:
    """The VAT of one line, rounded to the centime (printed on the line)."""
    return to_cents(line.amount * line.vat_rate / HUNDRED)


def compute_totals(lines: Sequence[InvoiceLine], insurer: Insurer | None, recipient: str) -> Totals:
    """Net, VAT, total (to 0.05), the patient's and the insurer's shares, and the amount due.

    VAT is computed per line so that the VAT printed on each line adds up to the total VAT.
    The patient pays `insurer.patient_share` % of the covered lines and all of the uncovered
    ones (VAT included); without an insurer, everything. The amount due on the QR-bill is the
    patient's share when the insurer pays the provider (tiers payant: the rest goes to the
    insurer as a claim), the total otherwise (tiers garant, or no insurance).
    """
    net = sum((line.amount for line in lines), ZERO)
    vat = sum((line_vat(line) for line in lines), ZERO)
    total = round_chf(net + vat)
    if insurer is None:
        patient_share = total
    else:
        covered = sum((line.amount + line_vat(line) for line in lines if line.covered), ZERO)
        uncovered = sum((line.amount + line_vat(line) for line in lines if not line.covered), ZERO)
        # Both shares are rounded from amounts no greater than net + VAT: never above the total.
        patient_share = round_chf(covered * insurer.patient_share / HUNDRED + uncovered)
    insurer_share = total - patient_share
    amount_due = patient_share if recipient == Invoice.Recipient.INSURER else total
    return Totals(net, vat, total, patient_share, insurer_share, amount_due)


def current_coverage(patient_id: int, on: Any) -> Coverage | None:
    """The patient's basic insurance valid on `on` (the latest one if several overlap)."""
    return (
        Coverage.objects.select_related("insurer")
        .filter(patient_id=patient_id, kind=Coverage.Kind.BASIC, valid_from__lte=on)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=on))
        .order_by("-valid_from", "-pk")
        .first()
    )


def _covered_code_ids(insurer: Insurer | None) -> set[int] | None:
    """The ids of the codes the insurer covers; None when it covers every code."""
    if insurer is None:
        return set()
    ids = set(insurer.covered_codes.values_list("pk", flat=True))
    return ids or None


def _lines_for(charges: Iterable[ChargeItem], insurer: Insurer | None) -> list[InvoiceLine]:
    covered_ids = _covered_code_ids(insurer)
    return [
        InvoiceLine(
            charge=charge,
            performed_at=charge.performed_at,
            tariff=charge.code.tariff.code,
            code=charge.code.code,
            label=charge.code.label,
            quantity=charge.quantity,
            unit_points=charge.unit_points,
            point_value=charge.point_value,
            unit_price=charge.unit_price,
            amount=charge.amount,
            vat_rate=charge.vat_rate,
            covered=insurer is not None and (covered_ids is None or charge.code_id in covered_ids),
        )
        for charge in charges
    ]


# ---------------------------------------------------------------------------------------------
# Access


def _billing_staff_access(
    user: User, patient_id: Any, *, request: HttpRequest | None, what: str
) -> PatientAccess:
    """Billing staff of the patient's organisation (the patient themself may only read)."""
    access = get_billing_patient_for_user(user, patient_id, request=request, what=what, action=None)
    if access.via != Via.BILLING:
        raise deny(user, request=request, what=what, object_id=patient_id, patient_id=patient_id)
    return access


def get_invoice_for_billing_staff(
    user: User, invoice_id: Any, *, request: HttpRequest | None = None, what: str = "invoice"
) -> tuple[Invoice, PatientAccess]:
    """An invoice that `user` may act on as billing staff, or Http404 (the denial audited)."""
    invoice, access = get_invoice_for_user(
        user, invoice_id, request=request, what=what, action=None
    )
    if access.via != Via.BILLING:
        raise deny(
            user,
            request=request,
            what=what,
            object_type="billing.invoice",
            object_id=invoice_id,
            patient_id=invoice.patient_id,
        )
    return invoice, access


def profile_for(organization_id: int | None) -> BillingProfile:
    profile = None
    if organization_id is not None:
        profile = BillingProfile.objects.filter(organization_id=organization_id).first()
    if profile is None:
        raise BillingError(
            _(
                "The organisation has no billing profile yet (creditor, bank account, canton): "
                "an administrator must fill it in before invoices can be issued."
            )
        )
    return profile


# ---------------------------------------------------------------------------------------------
# PDF storage


def _seal_pdf(content: bytes) -> str:
    """Encrypt and write a PDF under MEDIA_ROOT/records; returns its storage name."""
    name = new_storage_name()
    write_atomically(storage_path(name), crypto.seal(content, context=name.encode()))
    return name


def _open_sealed(name: str) -> bytes:
    if not name:
        raise FileNotFoundError("no PDF was stored")
    return crypto.open_sealed(storage_path(name).read_bytes(), context=name.encode())


def open_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's PDF. Raises FileNotFoundError or crypto.DecryptionError (altered file).

    The caller has checked access (`get_invoice_for_user`).
    """
    content = _open_sealed(invoice.pdf_name)
    if hashlib.sha256(content).hexdigest() != invoice.pdf_sha256:
        raise crypto.DecryptionError("the PDF does not match the recorded digest")
    return content


def open_credit_note_pdf(credit_note: CreditNote) -> bytes:
    """The credit note's PDF (the seal authenticates it: the storage name is its context)."""
    return _open_sealed(credit_note.pdf_name)


def _discard(name: str) -> None:
    if name:
        storage_path(name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Generation


def do_generate_invoice(
    user: User, patient_id: Any, *, request: HttpRequest | None = None
) -> Invoice:
    """Invoice every confirmed, uninvoiced charge of the patient (billing staff only).

    All or nothing: the invoice, its lines, the charges marked invoiced, the audit row and the
    sealed PDF commit together; if anything fails (the PDF included) nothing is left behind and
    the number is not used.
    """
    from .pdf import render_invoice_pdf

    access = _billing_staff_access(user, patient_id, request=request, what="invoice")
    patient = access.patient
    profile = profile_for(patient.organization_id)
    today = timezone.localdate()
    pdf_name = ""
    try:
        with transaction.atomic():
            # SKIP LOCKED: a charge another generation is invoicing right now is left to it
            # (it cannot be read twice), and a batch worker moves on instead of queueing.
            charges = list(
                ChargeItem.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("code__tariff")
                .filter(patient=patient, status=ChargeItem.Status.CONFIRMED, invoice__isnull=True)
                .order_by("performed_at", "pk")
            )
            if not charges:
                raise BillingError(_nothing_to_invoice(patient.pk))
            coverage = current_coverage(patient.pk, today)
            insurer = coverage.insurer if coverage is not None else None
            recipient = (
                Invoice.Recipient.INSURER
                if insurer is not None and insurer.payment_mode == Insurer.PaymentMode.INSURER_PAYS
                else Invoice.Recipient.PATIENT
            )
            lines = _lines_for(charges, insurer)
            totals = compute_totals(lines, insurer, recipient)
            # The sequence row is locked from here to the commit: keep what follows short.
            number, sequence = next_number(INVOICE_SERIES, today.year)
            invoice = Invoice(
                number=number,
                year=today.year,
                sequence=sequence,
                patient=patient,
                organization_id=profile.organization_id,
                coverage=coverage,
                insurer=insurer,
                recipient=recipient,
                # Nothing to pay (a fully covered invoice with no co-payment) is settled already.
                status=Invoice.Status.ISSUED if totals.amount_due > 0 else Invoice.Status.PAID,
                due_date=today + dt.timedelta(days=profile.payment_days),
                net=totals.net,
                vat=totals.vat,
                total=totals.total,
                patient_share=totals.patient_share,
                insurer_share=totals.insurer_share,
                amount_due=totals.amount_due,
                reference=reference_for(number, profile.iban),
                issued_by=user,
            )
            # Rendered before the rows are written (it needs none of them): one write less.
            content = render_invoice_pdf(invoice, lines=lines, profile=profile)
            pdf_name = _seal_pdf(content)
            invoice.pdf_name = pdf_name
            invoice.pdf_sha256 = hashlib.sha256(content).hexdigest()
            invoice.save(force_insert=True)
            for line in lines:
                line.invoice = invoice
            InvoiceLine.objects.bulk_create(lines)
            ChargeItem.objects.filter(pk__in=[charge.pk for charge in charges]).update(
                status=ChargeItem.Status.INVOICED, invoice=invoice, **_new_version()
            )
            # Last: the audit trail's lock is held until the commit, so not while rendering.
            audit(
                Action.CREATE,
                request=request,
                actor=user,
                obj=invoice,
                patient_id=str(patient.pk),
                detail=access.audit_detail(
                    what="invoice",
                    number=number,
                    charges=len(charges),
                    total=str(totals.total),
                    amount_due=str(totals.amount_due),
                ),
            )
    except BaseException:
        _discard(pdf_name)
        raise
    return invoice


def _new_version() -> dict[str, Any]:
    """What `FhirResource.save` does, for bulk updates (FHIR versionId and _lastUpdated)."""
    return {"version": F("version") + 1, "updated_at": timezone.now()}


def _nothing_to_invoice(patient_id: int) -> str:
    busy = ChargeItem.objects.filter(
        patient_id=patient_id, status=ChargeItem.Status.CONFIRMED, invoice__isnull=True
    ).exists()
    if busy:
        return _("These charges are being invoiced right now. Reload the page in a moment.")
    return _("This patient has no confirmed charges to invoice.")


def patients_to_invoice(organization_id: int, among: Sequence[int] = ()) -> list[int]:
    """The patients of the organisation (`among` them, when given) with confirmed charges not
    invoiced yet."""
    charges = ChargeItem.objects.filter(
        patient__organization_id=organization_id,
        status=ChargeItem.Status.CONFIRMED,
        invoice__isnull=True,
    )
    if among:
        charges = charges.filter(patient_id__in=list(among))
    return list(charges.order_by("patient_id").values_list("patient_id", flat=True).distinct())


def start_billing_run(
    user: User,
    *,
    patient_ids: Sequence[int] | None = None,
    request: HttpRequest | None = None,
) -> BillingRun:
    """Queue the generation of the invoices of the chosen patients (by default every patient of
    the organisation with confirmed charges).

    The Celery task starts once the run is committed; the run's page polls its progress.
    """
    if not is_billing_staff(user):
        raise deny(user, request=request, what="billing run", object_type="billing.billingrun")
    organization_id = profile_for(user.organization_id).organization_id
    chosen = sorted({int(pk) for pk in patient_ids}) if patient_ids else []
    pending = patients_to_invoice(organization_id, chosen)
    if not pending:
        raise BillingError(_("There are no confirmed charges to invoice."))
    with transaction.atomic():
        run = BillingRun.objects.create(
            organization_id=organization_id,
            started_by=user,
            total=len(pending),
            patient_ids=chosen,
        )
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=run,
            detail={"what": "billing run", "patients": len(pending)},
        )
        from ..tasks import run_billing as task

        task.delay_on_commit(run.pk)  # type: ignore[attr-defined]
    return run


def _invoice_one(run: BillingRun, patient_id: int) -> str | None:
    """Invoice one patient of a run; the reason it could not be done, or None."""
    try:
        do_generate_invoice(run.started_by, patient_id)
    except BillingError as error:
        return str(error)
    except Http404:
        return _("not allowed")
    except Exception:
        # One patient's failure (a PDF that cannot be rendered…) must not stop the run.
        logger.exception("billing run %s: patient %s failed", run.pk, patient_id)
        return _("unexpected error")
    return None


def run_billing(run_id: int) -> BillingRun:
    """Generate the run's invoices, one patient per transaction, recording progress as it goes.

    Safe to run again (a retried task, a worker that died): patients already invoiced have no
    confirmed charges left, so only the others are done, and the counts continue from where
    they were.
    """
    run = BillingRun.objects.select_related("started_by").get(pk=run_id)
    if run.status == BillingRun.Status.DONE:
        return run
    pending = patients_to_invoice(run.organization_id, run.patient_ids)
    errors: list[dict[str, Any]] = []
    BillingRun.objects.filter(pk=run.pk).update(
        status=BillingRun.Status.RUNNING, total=run.done + len(pending), failed=0, errors=[]
    )
    try:
        for patient_id in pending:
            error = _invoice_one(run, patient_id)
            if error is None:
                BillingRun.objects.filter(pk=run.pk).update(done=F("done") + 1)
            else:
                errors.append({"patient_id": patient_id, "error": error})
                BillingRun.objects.filter(pk=run.pk).update(failed=F("failed") + 1, errors=errors)
    except BaseException:
        # Something beyond one patient (the database went away…): say so, so the page that
        # follows the run stops waiting; a new run picks up whoever is left.
        BillingRun.objects.filter(pk=run.pk).update(
            status=BillingRun.Status.FAILED, finished_at=timezone.now()
        )
        raise
    BillingRun.objects.filter(pk=run.pk).update(
        status=BillingRun.Status.DONE, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


# ---------------------------------------------------------------------------------------------
# Sending


def do_send_to_patient(
    user: User, invoice: Invoice, *, request: HttpRequest | None = None
) -> Invoice:
    """Tell the patient in the portal (and by email if they chose to) that an invoice is there.

    The notification says nothing about amounts or care: emails are not confidential.
    """
    invoice, access = get_invoice_for_billing_staff(user, invoice.pk, request=request)
    owner = invoice.patient.user
    if owner is None or not owner.is_active:
        raise BillingError(
            _("This patient has no portal account: print the invoice and send it by post.")
        )
    if invoice.status == Invoice.Status.CANCELLED:
        raise BillingError(_("This invoice was cancelled by a credit note."))
    with transaction.atomic():
        with translation.override(invoice.patient.preferred_language or None):
            title = _("A new invoice is available")
        notify(
            owner,
            "billing",
            title,
            "",
            reverse("billing:my_invoice", args=[invoice.pk]),
            ref=f"billing.invoice:{invoice.pk}",
        )
        invoice.sent_to_patient_at = timezone.now()
        invoice.save(update_fields=["sent_to_patient_at"])
        audit(
            Action.UPDATE,
            request=request,
            actor=user,
            obj=invoice,
            patient_id=str(invoice.patient_id),
            detail=access.audit_detail(what="invoice sent to patient"),
        )
    return invoice


# ---------------------------------------------------------------------------------------------
# Credit notes


def _credit_amount(amount: Any) -> Decimal:
    try:
        value = to_cents(Decimal(str(amount).replace("'", "").strip()))
    except ArithmeticError:
        raise BillingError(_("Enter the amount in CHF, e.g. 12.50.")) from None
    if not value.is_finite() or value <= 0:
        raise BillingError(_("The amount must be greater than zero."))
    return value


def do_credit_note(
    user: User,
    invoice: Invoice,
    *,
    amount: Any,
    reason: str,
    request: HttpRequest | None = None,
) -> CreditNote:
    """Credit all or part of an invoice's amount due (billing staff of its organisation).

    The invoice itself is never edited: only its credited amount and status move. A full
    credit cancels it and puts its charges back to confirmed so they can be invoiced again,
    corrected if need be.
    """
    from .pdf import render_credit_note_pdf

    invoice, access = get_invoice_for_billing_staff(user, invoice.pk, request=request)
    value = _credit_amount(amount)
    reason = " ".join((reason or "").split())
    if not reason:
        raise BillingError(_("Give the reason for the credit note."))
    pdf_name = ""
    try:
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
            if invoice.status == Invoice.Status.CANCELLED:
                raise BillingError(_("This invoice is already cancelled."))
            available = invoice.amount_due - invoice.credited
            if value > available:
                raise BillingError(
                    _("At most CHF %(available)s can be credited on this invoice.")
                    % {"available": available}
                )
            today = timezone.localdate()
            number, _sequence = next_number(CREDIT_NOTE_SERIES, today.year)
            credit_note = CreditNote.objects.create(
                number=number,
                invoice=invoice,
                amount=value,
                reason=reason[:300],
                issued_by=user,
            )
            invoice.credited += value
            full = invoice.credited >= invoice.amount_due
            if full:
                invoice.status = Invoice.Status.CANCELLED
                _release_charges(invoice)
            elif invoice.paid + invoice.credited >= invoice.amount_due:
                invoice.status = Invoice.Status.PAID
            invoice.save(update_fields=["credited", "status"])
            pdf_name = _seal_pdf(render_credit_note_pdf(credit_note))
            credit_note.pdf_name = pdf_name
            credit_note.save(update_fields=["pdf_name"])
            audit(
                Action.CREATE,
                request=request,
                actor=user,
                obj=credit_note,
                patient_id=str(invoice.patient_id),
                detail=access.audit_detail(
                    what="credit note",
                    invoice=invoice.number,
                    amount=str(value),
                    cancels_invoice=full,
                ),
            )
    except BaseException:
        _discard(pdf_name)
        raise
    return credit_note


def _release_charges(invoice: Invoice) -> None:
    """Put a cancelled invoice's charges back to confirmed, ready for a corrected invoice."""
    charge_ids = list(invoice.charges.values_list("pk", flat=True))
    # The cancelled invoice's lines keep pointing at their charges: the next invoice adds its own.
    ChargeItem.objects.filter(pk__in=charge_ids).update(
        status=ChargeItem.Status.CONFIRMED, invoice=None, **_new_version()
    )
