"""Billing cast: the organisation's billing profile (canton VD, a QR-IBAN), a points tariff and
a price tariff with their codes and rules, two insurers (tiers payant with FHIR claims, tiers
garant), the patients' records with coverages, and factories of finished encounters and
charges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.billing.models import (
    BillingProfile,
    ChargeItem,
    Context,
    Coverage,
    Insurer,
    Invoice,
    InvoiceLine,
    PointValue,
    Tariff,
    TariffCode,
)
from apps.billing.money import round_chf
from apps.records.models import Encounter, Patient
from apps.records.services.care_team import default_team, do_add_member

VALID_FROM = dt.date(2020, 1, 1)


@pytest.fixture
def make_patient(db: None, organization: Organization) -> Callable[..., Patient]:
    counter = {"n": 0}

    def make(user: User | None = None, **fields: Any) -> Patient:
        counter["n"] += 1
        fields.setdefault("family_name", user.last_name if user else f"Patient{counter['n']}")
        fields.setdefault("given_names", user.first_name if user else "Test")
        fields.setdefault("birth_date", dt.date(1960, 3, counter["n"] % 28 + 1))
        fields.setdefault("sex", "female")
        fields.setdefault("organization", organization)
        fields.setdefault("address_line", "Rue du Bugnon 46")
        fields.setdefault("postal_code", "1011")
        fields.setdefault("city", "Lausanne")
        return Patient.objects.create(user=user, **fields)

    return make


@pytest.fixture
def billing_profile(organization: Organization) -> BillingProfile:
    return BillingProfile.objects.create(
        organization=organization,
        creditor_name="Hôpital de test",
        street="Rue du Bugnon 21",
        postal_code="1011",
        city="Lausanne",
        canton="VD",
        # A QR-IBAN (institution id 31999): invoices carry 27-digit QR references.
        iban="CH4431999123000889012",
        vat_number="CHE-123.456.788 TVA",
        zsr_number="Z123456",
        payment_days=30,
    )


@pytest.fixture
def tardoc(db: None) -> Tariff:
    return Tariff.objects.create(code="tardoc", name="TARDOC", kind=Tariff.Kind.POINTS)


@pytest.fixture
def flat_rates(db: None) -> Tariff:
    return Tariff.objects.create(code="forfaits", name="Forfaits", kind=Tariff.Kind.PRICE)


@pytest.fixture
def codes(tardoc: Tariff, flat_rates: Tariff) -> dict[str, TariffCode]:
    """Video consultation: a base code (first 5 minutes) and a "per further 5 minutes" code
    (at most 6); in person: a base code; an in-person code incompatible with the video base;
    monitoring: a per-day flat rate (at most 30 days)."""
    made = {
        "video_base": TariffCode.objects.create(
            tariff=tardoc,
            code="AA.00.0010",
            label="Consultation vidéo, 5 premières minutes",
            tax_points=Decimal("18.52"),
            for_video=True,
            max_quantity=1,
            valid_from=VALID_FROM,
        ),
        "video_more": TariffCode.objects.create(
            tariff=tardoc,
            code="AA.00.0020",
            label="Consultation vidéo, par 5 minutes supplémentaires",
            tax_points=Decimal("17.26"),
            unit_minutes=5,
            min_minutes=5,
            max_quantity=6,
            for_video=True,
            valid_from=VALID_FROM,
        ),
        "office": TariffCode.objects.create(
            tariff=tardoc,
            code="AA.00.0030",
            label="Consultation au cabinet, 5 premières minutes",
            tax_points=Decimal("19.35"),
            for_in_person=True,
            max_quantity=1,
            valid_from=VALID_FROM,
        ),
        "monitoring_day": TariffCode.objects.create(
            tariff=flat_rates,
            code="TM.01",
            label="Télésurveillance, par jour",
            price=Decimal("4.80"),
            unit_minutes=24 * 60,
            max_quantity=30,
            for_monitoring=True,
            valid_from=VALID_FROM,
        ),
        "report": TariffCode.objects.create(
            tariff=flat_rates,
            code="RP.01",
            label="Rapport écrit à l'assureur",
            price=Decimal("35.00"),
            automatic=False,
            for_video=True,
            for_in_person=True,
            vat_rate=Decimal("8.10"),
            valid_from=VALID_FROM,
        ),
    }
    made["video_base"].incompatible_with.add(made["office"])
    PointValue.objects.create(
        tariff=tardoc, canton="VD", value=Decimal("0.9300"), valid_from=VALID_FROM
    )
    PointValue.objects.create(
        tariff=tardoc, canton="GE", value=Decimal("0.9600"), valid_from=VALID_FROM
    )
    return made


@pytest.fixture
def insurer(db: None) -> Insurer:
    """Tiers payant: the insurer pays and receives FHIR claims; the patient pays 10 %."""
    return Insurer.objects.create(
        name="Assura Test",
        gln="7601003000016",
        payment_mode=Insurer.PaymentMode.INSURER_PAYS,
        patient_share=Decimal("10.00"),
        connector=Insurer.Connector.FHIR,
        claim_url="http://127.0.0.1:9/fhir",
    )


@pytest.fixture
def insurer_garant(db: None) -> Insurer:
    """Tiers garant: the patient pays everything and is reimbursed."""
    return Insurer.objects.create(
        name="Caisse Garant",
        gln="7601003000023",
        payment_mode=Insurer.PaymentMode.PATIENT_PAYS,
        patient_share=Decimal("10.00"),
        connector=Insurer.Connector.FILE,
    )


@pytest.fixture
def record(
    make_patient: Callable[..., Patient], patient: User, clinician: User, insurer: Insurer
) -> Patient:
    """The record of `patient` (insured with `insurer`); `clinician` is on its care team."""
    chart = make_patient(patient, ahv_number="756.1234.5678.97")
    do_add_member(default_team(chart), clinician, is_lead=True)
    Coverage.objects.create(
        patient=chart, insurer=insurer, member_number="80756000012345", valid_from=VALID_FROM
    )
    return chart


@pytest.fixture
def record2(make_patient: Callable[..., Patient], patient2: User, clinician: User) -> Patient:
    """The record of `patient2` (no coverage); `clinician` is on its care team."""
    chart = make_patient(patient2)
    do_add_member(default_team(chart), clinician, is_lead=True)
    return chart


@pytest.fixture
def make_encounter(clinician: User) -> Callable[..., Encounter]:
    """A finished encounter of `minutes` minutes that ended an hour ago."""

    def make(
        patient: Patient, minutes: int = 17, kind: str = Encounter.Kind.VIRTUAL, **fields: Any
    ) -> Encounter:
        ended = fields.pop("ended_at", timezone.now() - dt.timedelta(hours=1))
        fields.setdefault("status", Encounter.Status.FINISHED)
        fields.setdefault("practitioner", clinician)
        return Encounter.objects.create(
            patient=patient,
            kind=kind,
            started_at=ended - dt.timedelta(minutes=minutes),
            ended_at=ended,
            **fields,
        )

    return make


@pytest.fixture
def make_charge(codes: dict[str, TariffCode], clinician: User) -> Callable[..., ChargeItem]:
    """A confirmed charge item priced by hand (for invoice tests that skip capture)."""

    def make(
        patient: Patient,
        code: str = "video_base",
        quantity: Decimal | int = 1,
        unit_price: Decimal | str = "17.20",
        **fields: Any,
    ) -> ChargeItem:
        tariff_code = codes[code]
        unit = Decimal(unit_price)
        quantity = Decimal(quantity)
        fields.setdefault("status", ChargeItem.Status.CONFIRMED)
        fields.setdefault("performed_at", timezone.now() - dt.timedelta(days=1))
        return ChargeItem.objects.create(
            patient=patient,
            code=tariff_code,
            context=Context.VIDEO,
            performer=clinician,
            quantity=quantity,
            unit_price=unit,
            amount=(unit * quantity).quantize(Decimal("0.01")),
            vat_rate=tariff_code.vat_rate,
            **fields,
        )

    return make


# ---------------------------------------------------------------------------------------------
# Invoices, made by hand (the invoice service is tested on its own)


@pytest.fixture
def make_invoice(
    organization: Organization, make_charge: Callable[..., ChargeItem]
) -> Callable[..., Invoice]:
    counter = {"n": 0}

    def make(patient: Patient, *, status: str = Invoice.Status.ISSUED, **fields: Any) -> Invoice:
        counter["n"] += 1
        coverage = Coverage.objects.filter(patient=patient).first()
        insurer = coverage.insurer if coverage else None
        charges = [
            make_charge(patient, "video_base", 1, "17.20"),
            make_charge(patient, "video_more", 3, "16.05"),
            make_charge(patient, "report", 1, "35.00"),
        ]
        net = sum((c.amount for c in charges), Decimal("0.00"))
        vat = Decimal("2.84")
        total = round_chf(net + vat)
        share = round_chf(total * Decimal("0.10"))
        pay_insurer = (
            insurer is not None and insurer.payment_mode == Insurer.PaymentMode.INSURER_PAYS
        )
        invoice = Invoice.objects.create(
            number=f"2026-{counter['n']:06d}",
            year=2026,
            sequence=counter["n"],
            patient=patient,
            organization=organization,
            coverage=coverage,
            insurer=insurer,
            recipient=Invoice.Recipient.INSURER if pay_insurer else Invoice.Recipient.PATIENT,
            status=status,
            due_date=timezone.localdate() + dt.timedelta(days=30),
            net=net,
            vat=vat,
            total=total,
            patient_share=share,
            insurer_share=total - share,
            amount_due=share if pay_insurer else total,
            reference=f"{counter['n']:027d}",
            **fields,
        )
        for charge in charges:
            charge.status = ChargeItem.Status.INVOICED
            charge.invoice = invoice
            charge.save()
            InvoiceLine.objects.create(
                invoice=invoice,
                charge=charge,
                performed_at=charge.performed_at,
                tariff=charge.code.tariff.code,
                code=charge.code.code,
                label=charge.code.label,
                quantity=charge.quantity,
                unit_price=charge.unit_price,
                amount=charge.amount,
                vat_rate=charge.vat_rate,
            )
        return invoice

    return make
