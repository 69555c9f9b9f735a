"""Billing as FHIR R4: ChargeItem, Invoice, Coverage and Claim (read and search only).

Amounts are Money in CHF (`{"value": 17.2, "currency": "CHF"}`). A tariff code is a Coding of
the system `tariff_system(<tariff code>)` (e.g. CANONICAL/CodeSystem/tariff/tardoc). Insurers
are not Organization resources of this server: they are referenced by their GLN
(`{"type": "Organization", "identifier": {GLN}, "display": name}`). `ext:x` is `EXT + "x"`.

ChargeItem              ChargeItem
  status                status: proposed → planned, confirmed → billable, invoiced → billed,
                        cancelled → aborted
  code                  code (tariff system, code, label)
  patient               subject
  encounter / device    context = Encounter/<id> / supportingInformation[0] = Device/<id>
  context               ext:care-setting (video, in_person, monitoring)
  performed_at          occurrenceDateTime
  performer             performer[0].actor (Practitioner, with the account identifier)
  (patient's org)       performingOrganization
  quantity              quantity.value
  amount                priceOverride (the item's total: its price comes from our tariff
                        rules, not from a ChargeItemDefinition)
  unit_price,           ext:unit-price (Money), ext:tax-points, ext:point-value, ext:vat-rate
  unit_points,          (decimals)
  point_value, vat_rate
  created_at            enteredDate
  explanation           note[0].text (why the proposal looks the way it does)
Invoice                 Invoice
  status                status: issued → issued, paid → balanced, cancelled → cancelled
  number                identifier[SYS_INVOICE]
  patient / recipient   subject / recipient (the patient, or the insurer for tiers payant)
  organization          issuer
  issued_at             date
  lines                 lineItem[]: sequence, chargeItemReference (ChargeItem/<id>; the line's
                        code as chargeItemCodeableConcept when it has no charge any more),
                        priceComponent: base (factor = quantity, amount), informational
                        unit price, tax (factor = rate, amount) when the line has VAT
  net / vat / total     totalPriceComponent base / tax, totalNet, totalGross
  due_date, reference   paymentTerms (text), ext:due-date, ext:payment-reference
  amount_due, paid,     ext:amount-due, ext:amount-paid, ext:amount-credited,
  credited, shares      ext:patient-share, ext:insurer-share (Money)
  coverage              ext:coverage (Reference Coverage/<id>)
Coverage                Coverage
  (always)              status = active (the period says whether it is current)
  kind                  type (SYS_COVERAGE_KIND basic | supplementary)
  member_number         identifier[insurance card system] and subscriberId
  patient               beneficiary
  insurer               payor[0] (by GLN); ext:payment-mode (insurer | patient)
  insurer.patient_share costToBeneficiary[0]: copaypct, in %
  valid_from/_until     period.start / period.end
Claim                   Claim (`claim_resource`, also what is sent to the insurer)
  invoice               identifier[SYS_INVOICE] = its number, identifier[SYS_CLAIM] = the
                        idempotency key; status active (cancelled once the invoice is)
  (always)              type professional, use claim, priority normal
  invoice.patient       patient (with the AHV number as identifier)
  created_at            created; billablePeriod = first to last act
  insurer               insurer (by GLN)
  invoice.organization  provider (Organization/<id>, with its GLN)
  invoice.coverage      insurance[0]: sequence 1, focal, coverage = Coverage/<id> with the
                        insured number as identifier
  invoice.lines         item[]: sequence, productOrService, servicedDate, quantity, unitPrice,
                        net
  invoice.total         total
  status (submission)   ext:claim-submission (queued, submitted, accepted, rejected, failed)
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.db.models.lookups import In
from django.utils import timezone

from apps.accounts.models import Organization
from apps.records.fhir import CANONICAL, EXT, SYS_AHV, SYS_GLN, SYS_INSURANCE_CARD
from apps.records.fhir.helpers import _clean, _ext, _number, _ref, _resource, _user_ref
from apps.records.models import Patient

from .models import ChargeItem, Claim, Coverage, Insurer, Invoice, InvoiceLine
from .money import to_cents

SYS_TARIFF = CANONICAL + "/CodeSystem/tariff/"
SYS_INVOICE = CANONICAL + "/sid/invoice"
SYS_CLAIM = CANONICAL + "/sid/claim"
SYS_COVERAGE_KIND = CANONICAL + "/CodeSystem/coverage-kind"
SYS_PRICE_COMPONENT = CANONICAL + "/CodeSystem/price-component"
SYS_CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
SYS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
SYS_COPAY = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"
UCUM = "http://unitsofmeasure.org"
CURRENCY = "CHF"

CHARGE_STATUS = {
    ChargeItem.Status.PROPOSED: "planned",
    ChargeItem.Status.CONFIRMED: "billable",
    ChargeItem.Status.INVOICED: "billed",
    ChargeItem.Status.CANCELLED: "aborted",
}
INVOICE_STATUS = {
    Invoice.Status.ISSUED: "issued",
    Invoice.Status.PAID: "balanced",
    Invoice.Status.CANCELLED: "cancelled",
}
# A claim is "active" while its invoice stands; a cancelled invoice cancels its claims.
CLAIM_STATUS = {
    Invoice.Status.ISSUED: "active",
    Invoice.Status.PAID: "active",
    Invoice.Status.CANCELLED: "cancelled",
}
KIND_DISPLAY = {
    Coverage.Kind.BASIC: "Compulsory basic insurance",
    Coverage.Kind.SUPPLEMENTARY: "Supplementary insurance",
}


def _status_lookup(mapping: dict[Any, str], name: str) -> type[In]:
    """A lookup `<status>__<name>=<FHIR code>` matching the database values of that code, so a
    FHIR status search keeps using the status indexes."""
    values: dict[str, list[str]] = {}
    for stored, code in mapping.items():
        values.setdefault(code, []).append(str(stored))

    class FhirStatus(In):
        lookup_name = name

        def get_prep_lookup(self) -> Any:
            self.rhs = values.get(str(self.rhs), [])
            return super().get_prep_lookup()

    return FhirStatus


ChargeItem._meta.get_field("status").register_lookup(_status_lookup(CHARGE_STATUS, "fhir"))
Invoice._meta.get_field("status").register_lookup(_status_lookup(INVOICE_STATUS, "fhir"))
Invoice._meta.get_field("status").register_lookup(_status_lookup(CLAIM_STATUS, "fhir_claim"))


def tariff_system(tariff_code: str) -> str:
    return SYS_TARIFF + tariff_code


def _money(value: Decimal | None) -> dict[str, Any] | None:
    return {"value": _number(value), "currency": CURRENCY} if value is not None else None


def _decimal(value: Decimal | None) -> int | float | None:
    return _number(value) if value is not None else None


def _patient_ref(patient: Patient, *, with_ahv: bool = False) -> dict[str, Any]:
    return {
        "reference": f"Patient/{patient.fhir_id}",
        "identifier": {"system": SYS_AHV, "value": patient.ahv_number}
        if with_ahv and patient.ahv_number
        else None,
        "display": f"{patient.given_names} {patient.family_name}".strip(),
    }


def insurer_ref(insurer: Insurer) -> dict[str, Any]:
    """An insurer by its GLN: insurers are not Organization resources of this server."""
    return {
        "type": "Organization",
        "identifier": {"system": SYS_GLN, "value": insurer.gln},
        "display": insurer.name,
    }


def _organization_ref(organization: Organization | None) -> dict[str, Any] | None:
    if organization is None:
        return None
    return {
        "reference": f"Organization/{organization.fhir_id}",
        "identifier": {"system": SYS_GLN, "value": organization.gln} if organization.gln else None,
        "display": organization.name,
    }


def _tariff_coding(tariff: str, code: str, label: str) -> dict[str, Any]:
    return {"coding": [{"system": tariff_system(tariff), "code": code, "display": label}]}


# ---------------------------------------------------------------------------------------------
# Loading: what each mapper reads, in a fixed number of queries per page


def _lines() -> Prefetch[Any]:
    lines = InvoiceLine.objects.select_related("charge").order_by("performed_at", "pk")
    return Prefetch("lines", queryset=lines)


def charges_with_related(queryset: QuerySet[ChargeItem]) -> QuerySet[ChargeItem]:
    return queryset.select_related(
        "patient__organization", "code__tariff", "encounter", "device", "performer__practitioner"
    )


def invoices_with_related(queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
    return queryset.select_related(
        "patient", "organization", "insurer", "coverage"
    ).prefetch_related(_lines())


def coverages_with_related(queryset: QuerySet[Coverage]) -> QuerySet[Coverage]:
    return queryset.select_related("patient", "insurer")


def claims_with_related(queryset: QuerySet[Claim]) -> QuerySet[Claim]:
    lines = InvoiceLine.objects.order_by("performed_at", "pk")
    return queryset.select_related(
        "insurer",
        "invoice__patient",
        "invoice__organization",
        "invoice__coverage",
    ).prefetch_related(Prefetch("invoice__lines", queryset=lines))


# ---------------------------------------------------------------------------------------------
# Mappers


def charge_to_fhir(charge: ChargeItem) -> dict[str, Any]:
    """A ChargeItem; load lists with `charges_with_related`."""
    code = charge.code
    return _clean(
        {
            **_resource(charge, "ChargeItem"),
            "extension": [
                _ext("care-setting", "valueCode", charge.context),
                _ext("unit-price", "valueMoney", _money(charge.unit_price)),
                _ext("tax-points", "valueDecimal", _decimal(charge.unit_points)),
                _ext("point-value", "valueDecimal", _decimal(charge.point_value)),
                _ext("vat-rate", "valueDecimal", _decimal(charge.vat_rate)),
            ],
            "status": CHARGE_STATUS[ChargeItem.Status(charge.status)],
            "code": _tariff_coding(code.tariff.code, code.code, code.label),
            "subject": {"reference": f"Patient/{charge.patient.fhir_id}"},
            "context": _ref("Encounter", charge.encounter),
            "occurrenceDateTime": charge.performed_at.isoformat(),
            "performer": [{"actor": _user_ref(charge.performer)}] if charge.performer else None,
            "performingOrganization": _organization_ref(charge.patient.organization),
            "quantity": {"value": _number(charge.quantity)},
            "priceOverride": _money(charge.amount),
            "enteredDate": charge.created_at.isoformat(),
            "supportingInformation": [_ref("Device", charge.device)] if charge.device else None,
            "note": [{"text": charge.explanation}] if charge.explanation else None,
        }
    )


def _line_item(index: int, line: InvoiceLine) -> dict[str, Any]:
    components: list[dict[str, Any]] = [
        {"type": "base", "factor": _number(line.quantity), "amount": _money(line.amount)},
        {
            "type": "informational",
            "code": {"coding": [{"system": SYS_PRICE_COMPONENT, "code": "unit-price"}]},
            "amount": _money(line.unit_price),
        },
    ]
    if line.vat_rate:
        components.append(
            {
                "type": "tax",
                "factor": _number(line.vat_rate / 100),
                "amount": _money(to_cents(line.amount * line.vat_rate / 100)),
            }
        )
    item: dict[str, Any] = {"sequence": index, "priceComponent": components}
    if line.charge is not None:
        item["chargeItemReference"] = {"reference": f"ChargeItem/{line.charge.fhir_id}"}
    else:
        item["chargeItemCodeableConcept"] = _tariff_coding(line.tariff, line.code, line.label)
    return item


def _payment_terms(invoice: Invoice) -> str:
    # Data for machines, in English like every code display: not a translated page.
    return (
        f"Payable by {invoice.due_date.isoformat()} with the payment reference {invoice.reference}."
    )


def invoice_to_fhir(invoice: Invoice) -> dict[str, Any]:
    """An Invoice; load lists with `invoices_with_related`."""
    if invoice.recipient == Invoice.Recipient.INSURER and invoice.insurer is not None:
        recipient = insurer_ref(invoice.insurer)
    else:
        recipient = _patient_ref(invoice.patient)
    return _clean(
        {
            **_resource(invoice, "Invoice"),
            "extension": [
                _ext("payment-reference", "valueString", invoice.reference),
                _ext("due-date", "valueDate", invoice.due_date.isoformat()),
                _ext("amount-due", "valueMoney", _money(invoice.amount_due)),
                _ext("amount-paid", "valueMoney", _money(invoice.paid)),
                _ext("amount-credited", "valueMoney", _money(invoice.credited)),
                _ext("patient-share", "valueMoney", _money(invoice.patient_share)),
                _ext("insurer-share", "valueMoney", _money(invoice.insurer_share)),
                _ext("coverage", "valueReference", _ref("Coverage", invoice.coverage)),
            ],
            "identifier": [{"system": SYS_INVOICE, "value": invoice.number}],
            "status": INVOICE_STATUS[Invoice.Status(invoice.status)],
            "subject": _patient_ref(invoice.patient),
            "recipient": recipient,
            "date": invoice.issued_at.isoformat(),
            "issuer": _organization_ref(invoice.organization),
            "lineItem": [
                _line_item(index, line) for index, line in enumerate(invoice.lines.all(), 1)
            ],
            "totalPriceComponent": [
                {"type": "base", "amount": _money(invoice.net)},
                {"type": "tax", "amount": _money(invoice.vat)},
            ],
            "totalNet": _money(invoice.net),
            "totalGross": _money(invoice.total),
            "paymentTerms": _payment_terms(invoice),
        }
    )


def coverage_to_fhir(coverage: Coverage) -> dict[str, Any]:
    """A Coverage; load lists with `coverages_with_related`."""
    insurer = coverage.insurer
    kind = Coverage.Kind(coverage.kind)
    return _clean(
        {
            **_resource(coverage, "Coverage"),
            "extension": [_ext("payment-mode", "valueCode", insurer.payment_mode)],
            "identifier": [{"system": SYS_INSURANCE_CARD, "value": coverage.member_number}],
            "status": "active",
            "type": {
                "coding": [
                    {"system": SYS_COVERAGE_KIND, "code": kind.value, "display": KIND_DISPLAY[kind]}
                ]
            },
            "subscriberId": coverage.member_number,
            "beneficiary": _patient_ref(coverage.patient),
            "period": {
                "start": coverage.valid_from.isoformat(),
                "end": coverage.valid_until.isoformat() if coverage.valid_until else None,
            },
            "payor": [insurer_ref(insurer)],
            "costToBeneficiary": [
                {
                    "type": {"coding": [{"system": SYS_COPAY, "code": "copaypct"}]},
                    "valueQuantity": {
                        "value": _number(insurer.patient_share),
                        "unit": "%",
                        "system": UCUM,
                        "code": "%",
                    },
                }
            ],
        }
    )


def _claim_item(index: int, line: InvoiceLine) -> dict[str, Any]:
    return {
        "sequence": index,
        "productOrService": _tariff_coding(line.tariff, line.code, line.label),
        "servicedDate": timezone.localdate(line.performed_at).isoformat(),
        "quantity": {"value": _number(line.quantity)},
        "unitPrice": _money(line.unit_price),
        "net": _money(line.amount),
    }


def _billable_period(lines: Iterable[InvoiceLine]) -> dict[str, Any] | None:
    dates = sorted(timezone.localdate(line.performed_at) for line in lines)
    if not dates:
        return None
    return {"start": dates[0].isoformat(), "end": dates[-1].isoformat()}


def claim_to_fhir(claim: Claim) -> dict[str, Any]:
    """A Claim (R4) of an invoice to its insurer; load lists with `claims_with_related`."""
    invoice = claim.invoice
    lines = list(invoice.lines.all())
    coverage = invoice.coverage
    insurance = {
        "sequence": 1,
        "focal": True,
        "coverage": {
            "reference": f"Coverage/{coverage.fhir_id}" if coverage else None,
            "identifier": {"system": SYS_INSURANCE_CARD, "value": coverage.member_number}
            if coverage
            else None,
            "display": claim.insurer.name,
        },
    }
    return _clean(
        {
            **_resource(claim, "Claim"),
            "extension": [
                {"url": EXT + "claim-submission", "valueCode": claim.status},
            ],
            "identifier": [
                {"system": SYS_INVOICE, "value": invoice.number},
                {"system": SYS_CLAIM, "value": str(claim.idempotency_key)},
            ],
            "status": CLAIM_STATUS[Invoice.Status(invoice.status)],
            "type": {"coding": [{"system": SYS_CLAIM_TYPE, "code": "professional"}]},
            "use": "claim",
            "patient": _patient_ref(invoice.patient, with_ahv=True),
            "billablePeriod": _billable_period(lines),
            "created": claim.created_at.isoformat(),
            "insurer": insurer_ref(claim.insurer),
            "provider": _organization_ref(invoice.organization),
            "priority": {"coding": [{"system": SYS_PRIORITY, "code": "normal"}]},
            "insurance": [insurance],
            "item": [_claim_item(index, line) for index, line in enumerate(lines, 1)],
            "total": _money(invoice.total),
        }
    )
