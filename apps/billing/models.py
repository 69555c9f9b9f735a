"""Billing: the tariff catalogue and insurers, patients' coverages, charge items captured from
care, invoices with their Swiss QR-bill, payments, credit notes and insurer claims.

Money is `Decimal` in CHF. Invoice totals are rounded to 0.05 (the smallest coin); issued
invoices are never edited or deleted: a credit note cancels all or part of one.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.core.models import FhirResource

ZERO = Decimal("0.00")


def money(verbose_name: Any = None, **kwargs: Any) -> Any:
    """An amount in CHF, to the centime."""
    return models.DecimalField(verbose_name, max_digits=12, decimal_places=2, **kwargs)


class Context(models.TextChoices):
    """Where an act was performed: which tariff codes may apply."""

    VIDEO = "video", _("video consultation")
    IN_PERSON = "in_person", _("in-person consultation")
    MONITORING = "monitoring", _("remote monitoring")


class Tariff(models.Model):
    """A tariff catalogue (e.g. TARDOC, a flat-rate catalogue, the hospital's own prices)."""

    class Kind(models.TextChoices):
        POINTS = "points", _("tax points × point value")
        PRICE = "price", _("fixed prices in CHF")

    code = models.SlugField(_("code"), max_length=30, unique=True)
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)

    class Meta:
        verbose_name = _("tariff")
        verbose_name_plural = _("tariffs")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class TariffCode(models.Model):
    """One billable act of a tariff, with the rules that decide when and how often it applies."""

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="codes")
    code = models.CharField(_("code"), max_length=20)
    label = models.CharField(_("label"), max_length=200)
    # Points for a points tariff, CHF for a price tariff.
    tax_points = models.DecimalField(
        _("tax points"), max_digits=10, decimal_places=2, null=True, blank=True
    )
    price = money(_("price (CHF)"), null=True, blank=True)
    # Time-based codes: one unit per started period of this many minutes ("per 5 minutes");
    # empty for one unit per act.
    unit_minutes = models.PositiveIntegerField(_("minutes per unit"), null=True, blank=True)
    # The minimum length for the code to apply at all (a "first 5 minutes" code needs some).
    min_minutes = models.PositiveIntegerField(_("minimum minutes"), default=0)
    max_quantity = models.PositiveIntegerField(_("maximum quantity per act"), null=True, blank=True)
    for_video = models.BooleanField(_("video consultations"), default=False)
    for_in_person = models.BooleanField(_("in-person consultations"), default=False)
    for_monitoring = models.BooleanField(_("remote monitoring"), default=False)
    # Proposed automatically when an act of a matching context ends.
    automatic = models.BooleanField(_("proposed automatically"), default=True)
    vat_rate = models.DecimalField(_("VAT rate (%)"), max_digits=5, decimal_places=2, default=ZERO)
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    incompatible_with = models.ManyToManyField(
        "self", blank=True, symmetrical=True, verbose_name=_("cannot be billed with")
    )

    class Meta:
        verbose_name = _("tariff code")
        verbose_name_plural = _("tariff codes")
        ordering = ["tariff", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["tariff", "code", "valid_from"], name="tariffcode_unique"
            ),
            models.CheckConstraint(
                condition=Q(tax_points__isnull=False) | Q(price__isnull=False),
                name="tariffcode_has_value",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.label}"

    def applies_to(self, context: str) -> bool:
        flags: dict[str, bool] = {
            Context.VIDEO: self.for_video,
            Context.IN_PERSON: self.for_in_person,
            Context.MONITORING: self.for_monitoring,
        }
        return flags.get(context, False)


class PointValue(models.Model):
    """The CHF value of one tax point of a tariff, per canton and optionally per insurer."""

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="point_values")
    canton = models.CharField(_("canton"), max_length=2)
    insurer = models.ForeignKey(
        "Insurer", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    value = models.DecimalField(_("CHF per point"), max_digits=8, decimal_places=4)
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"), null=True, blank=True)

    class Meta:
        verbose_name = _("point value")
        verbose_name_plural = _("point values")
        ordering = ["tariff", "canton", "-valid_from"]

    def __str__(self) -> str:
        return f"{self.tariff.code} {self.canton} {self.value}"


class Insurer(FhirResource):
    """A health insurer (FHIR Organization of type "ins"), and how it is billed."""

    class PaymentMode(models.TextChoices):
        # Tiers payant: the insurer pays the provider; the patient pays their share.
        INSURER_PAYS = "insurer", _("insurer pays (tiers payant)")
        # Tiers garant: the patient pays the invoice and is reimbursed by the insurer.
        PATIENT_PAYS = "patient", _("patient pays and is reimbursed (tiers garant)")

    class Connector(models.TextChoices):
        FHIR = "fhir", _("FHIR Claim over HTTP")
        FILE = "file", _("claim files")
        NONE = "none", _("no electronic claims")

    name = models.CharField(_("name"), max_length=150)
    gln = models.CharField(_("GLN"), max_length=13, unique=True)
    payment_mode = models.CharField(_("payment mode"), max_length=10, choices=PaymentMode.choices)
    # Share of each covered amount the patient pays (co-payment), in percent.
    patient_share = models.DecimalField(
        _("patient share (%)"), max_digits=5, decimal_places=2, default=Decimal("10.00")
    )
    # Codes the insurer covers; none listed means every code.
    covered_codes = models.ManyToManyField(
        TariffCode, blank=True, related_name="+", verbose_name=_("covered codes")
    )
    connector = models.CharField(
        _("claims"), max_length=10, choices=Connector.choices, default=Connector.NONE
    )
    claim_url = models.URLField(_("FHIR base URL for claims"), blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("insurer")
        verbose_name_plural = _("insurers")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Coverage(FhirResource):
    """A patient's insurance with an insurer (FHIR Coverage)."""

    class Kind(models.TextChoices):
        BASIC = "basic", _("compulsory basic insurance")
        SUPPLEMENTARY = "supplementary", _("supplementary insurance")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="coverages"
    )
    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="coverages")
    kind = models.CharField(_("kind"), max_length=15, choices=Kind.choices, default=Kind.BASIC)
    member_number = models.CharField(_("insured number"), max_length=30)
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"), null=True, blank=True)

    class Meta:
        verbose_name = _("coverage")
        verbose_name_plural = _("coverages")
        ordering = ["patient", "kind", "-valid_from"]

    def __str__(self) -> str:
        return f"{self.insurer} {self.member_number}"


class BillingProfile(models.Model):
    """What an organisation's invoices say about it: creditor, bank account, canton, numbers."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="billing_profile"
    )
    creditor_name = models.CharField(_("creditor name"), max_length=70)
    street = models.CharField(_("street and number"), max_length=70)
    postal_code = models.CharField(_("postal code"), max_length=16)
    city = models.CharField(_("city"), max_length=35)
    country = models.CharField(_("country"), max_length=2, default="CH")
    canton = models.CharField(_("canton"), max_length=2)
    # A QR-IBAN (institution id 30000-31999) takes QR references; a plain IBAN takes
    # creditor references (ISO 11649, "RF…").
    iban = models.CharField(_("IBAN or QR-IBAN"), max_length=34)
    vat_number = models.CharField(_("VAT number (UID)"), max_length=20, blank=True)
    zsr_number = models.CharField(_("ZSR/RCC number"), max_length=10, blank=True)
    payment_days = models.PositiveIntegerField(_("payment term (days)"), default=30)

    class Meta:
        verbose_name = _("billing profile")
        verbose_name_plural = _("billing profiles")

    def __str__(self) -> str:
        return self.creditor_name


class ChargeItem(FhirResource):
    """A billable act of a patient (FHIR ChargeItem): proposed, confirmed, then invoiced."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("to review")
        CONFIRMED = "confirmed", _("confirmed")
        INVOICED = "invoiced", _("invoiced")
        CANCELLED = "cancelled", _("cancelled")

    patient = models.ForeignKey("records.Patient", on_delete=models.CASCADE, related_name="+")
    code = models.ForeignKey(TariffCode, on_delete=models.PROTECT, related_name="+")
    context = models.CharField(_("context"), max_length=12, choices=Context.choices)
    # What was done: an encounter (video or in person) or a monitoring period (a device).
    encounter = models.ForeignKey(
        "records.Encounter", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    device = models.ForeignKey(
        "devices.Device", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    performed_at = models.DateTimeField(_("date"))
    performer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    quantity = models.DecimalField(
        _("quantity"), max_digits=8, decimal_places=2, validators=[MinValueValidator(0)]
    )
    # Snapshots taken when the item is priced: later tariff changes do not alter it.
    unit_points = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    point_value = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    unit_price = money(_("unit price"))
    amount = money(_("amount"))
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2, default=ZERO)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PROPOSED
    )
    # Why the proposal looks the way it does (rules applied), shown to the reviewer.
    explanation = models.TextField(_("explanation"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    invoice = models.ForeignKey(
        "Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="charges"
    )

    class Meta:
        verbose_name = _("charge item")
        verbose_name_plural = _("charge items")
        ordering = ["performed_at", "pk"]
        indexes = [
            models.Index(fields=["patient", "status"], name="charge_patient_status_idx"),
            models.Index(fields=["status", "performed_at"], name="charge_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="invoiced", invoice__isnull=False)
                | (~Q(status="invoiced") & Q(invoice__isnull=True)),
                name="charge_invoiced_has_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code.code} × {self.quantity}"


class Capture(models.Model):
    """Marks an act whose charges were proposed, so that capture never proposes them twice."""

    encounter = models.OneToOneField(
        "records.Encounter", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    device = models.OneToOneField(
        "devices.Device", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    captured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(encounter__isnull=False, device__isnull=True)
                | Q(encounter__isnull=True, device__isnull=False),
                name="capture_one_source",
            ),
        ]

    def __str__(self) -> str:
        return f"capture {self.pk}"


class InvoiceSequence(models.Model):
    """The last invoice (or credit note) number of a year: locked to number without gaps."""

    series = models.CharField(max_length=2)
    year = models.PositiveIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "year"], name="invoice_sequence_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.series}{self.year}: {self.last}"


class Invoice(FhirResource):
    """An issued invoice (FHIR Invoice). Never edited once issued: credit notes correct it."""

    class Status(models.TextChoices):
        ISSUED = "issued", pgettext_lazy("invoice status", "issued")
        PAID = "paid", _("paid")
        CANCELLED = "cancelled", _("cancelled")

    class Recipient(models.TextChoices):
        PATIENT = "patient", _("patient")
        INSURER = "insurer", _("insurer")

    number = models.CharField(_("number"), max_length=20, unique=True)
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    patient = models.ForeignKey("records.Patient", on_delete=models.PROTECT, related_name="+")
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="+"
    )
    coverage = models.ForeignKey(
        Coverage, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    insurer = models.ForeignKey(
        Insurer, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    recipient = models.CharField(_("sent to"), max_length=10, choices=Recipient.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ISSUED
    )
    issued_at = models.DateTimeField(_("issued"), default=timezone.now)
    due_date = models.DateField(_("due"))
    # Totals: net of VAT, VAT, total (rounded to 0.05), what the patient and the insurer owe.
    net = money(_("net"))
    vat = money(_("VAT"))
    total = money(_("total"))
    patient_share = money(_("patient share"))
    insurer_share = money(_("insurer share"))
    # What the recipient is asked to pay on the QR-bill (rounded to 0.05).
    amount_due = money(_("amount due"))
    paid = money(_("paid"), default=ZERO)
    credited = money(_("credited"), default=ZERO)
    # The QR reference (27 digits) or creditor reference (RF…) printed on the QR-bill.
    reference = models.CharField(_("payment reference"), max_length=27, unique=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    # The PDF, sealed under MEDIA_ROOT/records like every document with health data.
    pdf_name = models.CharField(max_length=80, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    sent_to_patient_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-issued_at", "-pk"]
        indexes = [
            models.Index(fields=["patient", "-issued_at"], name="invoice_patient_idx"),
            models.Index(fields=["status", "due_date"], name="invoice_status_due_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["year", "sequence"], name="invoice_year_sequence"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def balance(self) -> Decimal:
        """What is still owed on the amount due."""
        return self.amount_due - self.paid - self.credited


class InvoiceLine(models.Model):
    """A line of an invoice: a snapshot of its charge item."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    # A charge of a cancelled invoice goes back to "confirmed" and is invoiced again: it then
    # has a line on each invoice.
    charge = models.ForeignKey(
        ChargeItem, on_delete=models.PROTECT, null=True, related_name="lines"
    )
    performed_at = models.DateTimeField()
    tariff = models.CharField(max_length=30)
    code = models.CharField(max_length=20)
    label = models.CharField(max_length=200)
    quantity = models.DecimalField(max_digits=8, decimal_places=2)
    unit_points = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    point_value = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    unit_price = money()
    amount = money()
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2, default=ZERO)
    covered = models.BooleanField(default=True)

    class Meta:
        ordering = ["performed_at", "pk"]

    def __str__(self) -> str:
        return f"{self.code} × {self.quantity}"


class CreditNote(models.Model):
    """Cancels all or part of an issued invoice (numbered in its own series)."""

    number = models.CharField(_("number"), max_length=20, unique=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    amount = money(_("amount"))
    reason = models.CharField(_("reason"), max_length=300)
    issued_at = models.DateTimeField(default=timezone.now)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    pdf_name = models.CharField(max_length=80, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = _("credit note")
        verbose_name_plural = _("credit notes")
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="creditnote_positive"),
        ]

    def __str__(self) -> str:
        return self.number


class Payment(models.Model):
    """Money received: recorded by hand or imported, matched to an invoice by its reference."""

    class Method(models.TextChoices):
        MANUAL = "manual", _("recorded by hand")
        IMPORT = "import", _("bank file")

    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="payments"
    )
    amount = money(_("amount"))
    received_on = models.DateField(_("received on"))
    reference = models.CharField(_("reference"), max_length=35, blank=True)
    method = models.CharField(_("method"), max_length=10, choices=Method.choices)
    # Imported lines are identified by the bank's id, so importing a file twice adds nothing.
    bank_id = models.CharField(max_length=64, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-received_on", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_positive"),
            models.UniqueConstraint(
                fields=["bank_id"], condition=~Q(bank_id=""), name="payment_bank_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.received_on}"


class Claim(FhirResource):
    """An invoice sent to an insurer (FHIR Claim), with the insurer's answer."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SUBMITTED = "submitted", _("submitted")
        ACCEPTED = "accepted", _("accepted")
        REJECTED = "rejected", _("rejected")
        FAILED = "failed", _("failed")

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="claims")
    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="claims")
    # Sent with every attempt, so an insurer that got a request it did not answer in time
    # recognises the retry and does not register the claim twice.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )

    class Meta:
        verbose_name = _("claim")
        verbose_name_plural = _("claims")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"claim {self.invoice.number}"


class BillingRun(models.Model):
    """A batch generation of invoices, with its progress for the page that follows it."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="+"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # The patients to invoice; empty: every patient of the organisation with confirmed charges.
    patient_ids = models.JSONField(default=list, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"run {self.pk} {self.done}/{self.total}"
