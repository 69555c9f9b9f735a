"""Demo billing (seed_demo; idempotent; after the records, devices and teleconsult demos).

- The reference catalogue (fixtures/billing/catalogue.json: illustrative TARDOC-like codes,
  cantonal point values, four fictitious insurers), the organisation's billing profile (canton
  VD, a QR-IBAN) and a basic coverage for each demo patient.
- A month of billing, made through the services as it would happen: video and in-person
  consultations of the six demo patients over the past weeks (and one visit of the month
  before) and a closed remote-monitoring period, their charges proposed by capture and
  confirmed by the clinician (a written report added by hand to one); an invoice issued six
  weeks ago, now overdue; a batch run three weeks ago; invoices for three patients five days
  ago. Two invoices paid (one recorded by hand, one from a bank file that also holds a
  transfer whose reference matches nothing), one partly credited and its balance paid; the
  first insurer's invoice sent as a claim (a claim file); the portal patients told of theirs.
  The latest consultations wait for the clinician's review and two confirmed ones for the
  next invoices.

Invoices are generated today by the services, then dated back to the day they were issued
(their PDF rendered again with that date). The month is made once: when the organisation's
patients already have charges, only the catalogue, profile and coverages are brought up to date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.core import crypto
from apps.devices.models import Device, DeviceKind
from apps.records.demo import PATIENTS
from apps.records.models import Encounter, Patient
from apps.records.services.documents import new_storage_name, storage_path, write_atomically

from .models import (
    BillingProfile,
    BillingRun,
    ChargeItem,
    Coverage,
    Insurer,
    Invoice,
    TariffCode,
)
from .reference import load_billing_reference

CREDITOR = {
    "creditor_name": "Hôpital virtuel du Léman",
    "street": "Rue du Lac 1",
    "postal_code": "1003",
    "city": "Lausanne",
    "country": "CH",
    "canton": "VD",
    # A QR-IBAN (institution id 31999): the invoices carry 27-digit QR references.
    "iban": "CH4431999123000889012",
    "vat_number": "CHE-123.456.788 TVA",
    "zsr_number": "H123456",
    "payment_days": 30,
}

# Each demo patient's basic insurance (by AHV number): the insurer's GLN.
INSURERS = {
    "756.9217.0769.85": "7601003001013",  # Marie Dubois: Léman, insurer pays, claim files
    "756.3047.5009.62": "7601003002027",  # Luca Bernasconi: Alpina, insurer pays, FHIR
    "756.5588.2213.41": "7601003003031",  # Élise Rochat: Jura Santé, patient pays
    "756.1209.8876.03": "7601003004045",  # Jonas Keller: Mutuelle du Rhône, patient pays
    "756.7744.1290.58": "7601003001013",  # Louise Favre: Léman
    "756.4410.6672.19": "7601003002027",  # Hans Müller: Alpina (its own VD point value)
}
MARIE, LUCA, ELISE, JONAS, LOUISE, HANS = INSURERS

# When things happened, in days before today.
FIRST_INVOICE_DAYS = 42
RUN_DAYS = 19
LAST_INVOICES_DAYS = 5
WRITTEN_REPORT = ("tardoc", "AA.15.0010")


class Stage:
    """What became of an act's charges."""

    FIRST_INVOICE = 1  # invoiced alone six weeks ago
    RUN = 2  # invoiced by the batch run
    LAST_INVOICES = 3  # invoiced five days ago
    CONFIRMED = 4  # confirmed, not invoiced yet
    TO_REVIEW = 5  # proposed, awaiting the clinician


@dataclass(frozen=True)
class Act:
    ahv: str
    days_ago: int
    hour: int
    kind: str
    minutes: int
    stage: int
    reason: str


VR, AMB = Encounter.Kind.VIRTUAL, Encounter.Kind.AMBULATORY
ACTS = [
    Act(ELISE, 44, 10, AMB, 41, Stage.FIRST_INVOICE, "Décompensation cardiaque, contrôle"),
    Act(ELISE, 29, 9, AMB, 26, Stage.RUN, "Contrôle du poids et des œdèmes"),
    Act(MARIE, 27, 14, VR, 18, Stage.RUN, "Suivi du diabète"),
    Act(LUCA, 25, 11, AMB, 24, Stage.RUN, "Contrôle BPCO"),
    Act(JONAS, 22, 16, VR, 21, Stage.RUN, "Asthme, adaptation du traitement"),
    Act(LOUISE, 20, 15, VR, 27, Stage.RUN, "Résultats de laboratoire"),
    Act(HANS, 18, 10, AMB, 30, Stage.LAST_INVOICES, "Douleurs thoraciques à l'effort"),
    Act(ELISE, 16, 14, VR, 22, Stage.LAST_INVOICES, "Suivi de l'insuffisance cardiaque"),
    Act(MARIE, 13, 9, AMB, 32, Stage.LAST_INVOICES, "Contrôle annuel"),
    Act(LUCA, 9, 16, VR, 12, Stage.CONFIRMED, "Renouvellement de l'inhalateur"),
    Act(JONAS, 6, 11, VR, 15, Stage.CONFIRMED, "Contrôle de l'asthme"),
    Act(LOUISE, 2, 10, AMB, 20, Stage.TO_REVIEW, "Contrôle de la glycémie"),
    Act(HANS, 1, 15, VR, 14, Stage.TO_REVIEW, "Résultats de l'ergométrie"),
]
# Élise's connected scale, lent for a month after her decompensation, then returned.
MONITORING = (ELISE, 40, 30, Stage.LAST_INVOICES)


def seed(context: dict[str, Any]) -> None:
    load_billing_reference()
    organization: Organization = context["organization"]
    users: dict[str, User] = context["users"]
    profile, _created = BillingProfile.objects.get_or_create(
        organization=organization, defaults=CREDITOR
    )
    patients = {
        p.ahv_number: p for p in Patient.objects.filter(ahv_number__in=[row[0] for row in PATIENTS])
    }
    if set(INSURERS) - set(patients):
        return  # the records demo makes the charts first
    _coverages(patients)
    if ChargeItem.objects.filter(patient__organization=organization).exists():
        return  # the month was made by an earlier run
    _month(users, patients, profile)


def _coverages(patients: dict[str, Patient]) -> None:
    insurers = {i.gln: i for i in Insurer.objects.filter(gln__in=set(INSURERS.values()))}
    for ahv, gln in INSURERS.items():
        patient = patients[ahv]
        Coverage.objects.get_or_create(
            patient=patient,
            kind=Coverage.Kind.BASIC,
            defaults={
                "insurer": insurers[gln],
                "member_number": patient.insurance_card_number or ahv.replace(".", ""),
                "valid_from": dt.date(timezone.localdate().year - 3, 1, 1),
            },
        )


# ---------------------------------------------------------------------------------------------
# When


def _at(days_ago: int, hour: int, minute: int = 0) -> dt.datetime:
    day = timezone.localdate() - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def _issue_day(days_ago: int) -> dt.date:
    """The day an invoice was issued; never in an earlier year than its number says."""
    today = timezone.localdate()
    return max(today - dt.timedelta(days=days_ago), dt.date(today.year, 1, 1))


# ---------------------------------------------------------------------------------------------
# The month


def _month(users: dict[str, User], patients: dict[str, Patient], profile: BillingProfile) -> None:
    from .services.capture import propose_for_device, propose_for_encounter

    physician, nurse = users["physician"], users["nurse"]
    acts: dict[int, list[ChargeItem]] = {stage: [] for stage in range(1, 6)}
    for act in ACTS:
        start = _at(act.days_ago, act.hour, 5)
        encounter = Encounter.objects.create(
            patient=patients[act.ahv],
            status=Encounter.Status.FINISHED,
            kind=act.kind,
            reason=act.reason,
            practitioner=physician,
            recorded_by=physician,
            recorded_at=start,
            started_at=start,
            ended_at=start + dt.timedelta(minutes=act.minutes, seconds=20),
        )
        acts[act.stage] += propose_for_encounter(encounter)
    ahv, registered_days_ago, days, stage = MONITORING
    device = Device.objects.create(
        kind=DeviceKind.SCALE,
        patient=patients[ahv],
        secret=secrets.token_urlsafe(32),
        status=Device.Status.RETIRED,
        manufacturer="Simulateur VH",
        model="Balance connectée",
        registered_by=nurse,
        registered_at=_at(registered_days_ago, 11),
        retired_at=_at(registered_days_ago - days, 11),
        retired_by=nurse,
    )
    monitoring = propose_for_device(device)
    acts[stage] += monitoring
    # The other finished consultations of the month (the teleconsultation demo's) are there
    # for the clinician to review, as capture would have left them.
    month_ago = timezone.now() - dt.timedelta(days=30)
    for encounter in Encounter.objects.filter(
        kind__in=[VR, AMB, Encounter.Kind.HOME],
        patient__in=patients.values(),
        status=Encounter.Status.FINISHED,
        ended_at__gte=month_ago,
    ):
        propose_for_encounter(encounter)
    _add_report(physician, acts)
    _invoice(users["billing"], physician, nurse, acts, set(monitoring), profile)


def _add_report(physician: User, acts: dict[int, list[ChargeItem]]) -> None:
    """The physician adds a written report (not proposed automatically) to a consultation."""
    from .services.review import do_add_charge

    report = TariffCode.objects.filter(
        tariff__code=WRITTEN_REPORT[0], code=WRITTEN_REPORT[1]
    ).first()
    act = next(
        (c for c in acts[Stage.LAST_INVOICES] if c.encounter_id and c.patient.ahv_number == ELISE),
        None,
    )
    if report is not None and act is not None:
        acts[Stage.LAST_INVOICES].append(
            do_add_charge(physician, encounter_id=act.encounter_id, code_id=report.pk, quantity=1)
        )


def _invoice(
    billing: User,
    physician: User,
    nurse: User,
    acts: dict[int, list[ChargeItem]],
    monitoring: set[ChargeItem],
    profile: BillingProfile,
) -> None:
    """Each stage's charges are confirmed by the clinicians, then invoiced on its day; then
    payments, a credit note, a claim, and the portal patients told of their invoices."""
    from .services.claims import do_send_claim
    from .services.invoices import (
        do_credit_note,
        do_generate_invoice,
        do_send_to_patient,
        run_billing,
    )
    from .services.payments import do_record_payment, import_payments
    from .services.review import do_confirm_charges

    def confirm(stage: int) -> None:
        for user, charges in (
            (physician, [c.pk for c in acts[stage] if c not in monitoring]),
            (nurse, [c.pk for c in acts[stage] if c in monitoring]),
        ):
            if charges:
                do_confirm_charges(user, charges)

    confirm(Stage.FIRST_INVOICE)
    first = do_generate_invoice(billing, acts[Stage.FIRST_INVOICE][0].patient_id)
    _issued_on(first, _issue_day(FIRST_INVOICE_DAYS), profile)

    confirm(Stage.RUN)
    run = BillingRun.objects.create(organization=profile.organization, started_by=billing)
    before = set(Invoice.objects.values_list("pk", flat=True))
    run_billing(run.pk)
    run_day = _issue_day(RUN_DAYS)
    batch = {
        invoice.patient.ahv_number: invoice
        for invoice in Invoice.objects.exclude(pk__in=before).select_related("patient")
    }
    for invoice in batch.values():
        _issued_on(invoice, run_day, profile)
    started = timezone.make_aware(dt.datetime.combine(run_day, dt.time(17)))
    BillingRun.objects.filter(pk=run.pk).update(
        created_at=started, finished_at=started + dt.timedelta(seconds=4)
    )

    confirm(Stage.LAST_INVOICES)
    latest = {}
    for patient_id in sorted({c.patient_id for c in acts[Stage.LAST_INVOICES]}):
        invoice = do_generate_invoice(billing, patient_id)
        _issued_on(invoice, _issue_day(LAST_INVOICES_DAYS), profile)
        latest[invoice.patient.ahv_number] = invoice
    confirm(Stage.CONFIRMED)

    # Marie paid her share by a transfer recorded by hand; Luca's came in the bank file, with
    # a transfer whose reference was mistyped (left for billing staff to assign).
    marie, luca = batch[MARIE], batch[LUCA]
    do_record_payment(
        billing,
        amount=marie.amount_due,
        received_on=timezone.localdate() - dt.timedelta(days=12),
        reference=marie.reference,
    )
    paid_on = (timezone.localdate() - dt.timedelta(days=8)).isoformat()
    bank_file = (
        "date;amount;reference;bank_id\n"
        f"{paid_on};{luca.amount_due};{luca.reference};DEMO-{luca.number}\n"
        f"{paid_on};48.30;{luca.reference[:-3]}999;DEMO-UNMATCHED-{luca.number}\n"
    )
    import_payments(billing, bank_file.encode(), "releve-demo.csv")
    # Jonas's consultation was cut short by a connection problem: part of it is credited,
    # and he paid the rest.
    jonas = batch[JONAS]
    credit = min(Decimal("15.65"), jonas.amount_due)
    do_credit_note(
        billing,
        jonas,
        amount=credit,
        reason="Consultation interrompue par un problème de connexion : 5 minutes non facturées.",
    )
    do_record_payment(
        billing,
        amount=jonas.amount_due - credit,
        received_on=timezone.localdate(),
        reference=jonas.reference,
    )
    # Tiers payant: Marie's insurer takes claim files.
    do_send_claim(billing, marie)
    for told in (marie, luca, latest.get(MARIE)):
        if told is not None:
            do_send_to_patient(billing, told)


def _issued_on(invoice: Invoice, day: dt.date, profile: BillingProfile) -> None:
    """Date a just-generated invoice back to `day`, with its PDF printed again to match."""
    from .services.pdf import render_invoice_pdf

    issued_at = timezone.make_aware(dt.datetime.combine(day, dt.time(17)))
    Invoice.objects.filter(pk=invoice.pk).update(
        issued_at=issued_at, due_date=day + dt.timedelta(days=profile.payment_days)
    )
    invoice.refresh_from_db()
    content = render_invoice_pdf(invoice, profile=profile)
    name = new_storage_name()
    write_atomically(storage_path(name), crypto.seal(content, context=name.encode()))
    old = invoice.pdf_name
    Invoice.objects.filter(pk=invoice.pk).update(
        pdf_name=name, pdf_sha256=hashlib.sha256(content).hexdigest()
    )
    invoice.refresh_from_db()
    if old:
        storage_path(old).unlink(missing_ok=True)
