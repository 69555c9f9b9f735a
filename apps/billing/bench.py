"""The billing benchmark (`manage.py bench_billing`): the population, and the probes.

Seeds, under an organisation of its own ("Bench billing", canton VD, a QR-IBAN so that every
invoice carries a QR reference), `patients` patients with a postal address and a basic coverage
spread over the reference insurers (tiers payant and tiers garant; one patient in ten has none
and pays everything), and for each invoice to make the confirmed charges of one to three acts
of the past month: video or in-person consultations of 8 to 40 minutes priced from the
reference catalogue by the tariff service (base code plus one unit per further 5 minutes, a
written report now and then, rarely a report with VAT), i.e. two to eight invoice lines.

Patients, coverages and charges go in with `bulk_create`; the charges are priced by
`services.tariffs.price` (memoised per code, quantity and insurer). The command module
measures the generation itself through the real service path and cleans up.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import make_password
from django.utils import timezone
from stdnum import ean

from apps.accounts.models import Organization, Role, User
from apps.records.models import Patient

from .models import BillingProfile, ChargeItem, Context, Coverage, Insurer, TariffCode
from .reference import load_billing_reference

Progress = Callable[[str], None]

ORGANIZATION_NAME = "Bench billing"
ORGANIZATION_GLN = "760100099990" + ean.calc_check_digit("760100099990")
EMAIL_PREFIX = "bench-bill-"
BATCH = 1000
# Reference codes the acts are made of (fixtures/billing/catalogue.json).
VIDEO = (("tardoc", "AA.05.0010"), ("tardoc", "AA.05.0020"))
IN_PERSON = (("tardoc", "AA.00.0010"), ("tardoc", "AA.00.0020"))
REPORT = ("tardoc", "AA.15.0010")
PRIVATE_REPORT = ("forfaits-vh", "AD.0010")  # 8.1 % VAT
CITIES = [
    ("1003", "Lausanne"),
    ("1201", "Genève"),
    ("1700", "Fribourg"),
    ("1950", "Sion"),
    ("2000", "Neuchâtel"),
    ("1800", "Vevey"),
    ("1400", "Yverdon-les-Bains"),
]
FAMILY_NAMES = ["Favre", "Rochat", "Bonvin", "Rey", "Dubois", "Meier", "Müller", "Bernasconi"]
GIVEN_NAMES = ["Anne", "Luc", "Élodie", "Marc", "Chloé", "Nicolas", "Léa", "Pierre"]
STREETS = ["Rue du Lac", "Avenue de la Gare", "Chemin des Vignes", "Route de Berne"]


class BenchError(Exception):
    """The benchmark cannot run (the message says why)."""


@dataclass
class Options:
    invoices: int = 1000
    patients: int = 0  # 0: one patient per invoice
    seed: int = 9
    keep: bool = False
    yes: bool = False

    @property
    def patient_count(self) -> int:
        return min(self.patients or self.invoices, self.invoices)


@dataclass
class Seeded:
    organization: Organization
    billing: User
    patients: list[Patient]
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class Catalogue:
    """The reference codes and insurers, and the tariff service's prices (memoised)."""

    def __init__(self, canton: str) -> None:
        refs = {*VIDEO, *IN_PERSON, REPORT, PRIVATE_REPORT}
        codes = {
            (code.tariff.code, code.code): code
            for code in TariffCode.objects.select_related("tariff").filter(
                code__in=[code for _tariff, code in refs]
            )
        }
        missing = sorted(f"{t}:{c}" for t, c in refs if (t, c) not in codes)
        if missing:
            raise BenchError(f"the reference catalogue lacks {', '.join(missing)}")
        self.codes = codes
        self.canton = canton
        self.insurers = list(Insurer.objects.filter(active=True).order_by("gln"))
        self._prices: dict[tuple[int, Decimal, int | None, dt.date], Any] = {}

    def price(
        self, code: TariffCode, quantity: Decimal, insurer: Insurer | None, on: dt.date
    ) -> Any:
        from .services.tariffs import price

        key = (code.pk, quantity, insurer.pk if insurer else None, on)
        if key not in self._prices:
            self._prices[key] = price(code, quantity, canton=self.canton, insurer=insurer, on=on)
        return self._prices[key]


def seed_people(options: Options, progress: Progress) -> Seeded:
    """The organisation, its billing profile and staff, the patients and their coverages."""
    started = time.perf_counter()
    load_billing_reference()
    organization = Organization.objects.create(name=ORGANIZATION_NAME, gln=ORGANIZATION_GLN)
    BillingProfile.objects.create(
        organization=organization,
        creditor_name="Hôpital virtuel (banc d'essai)",
        street="Rue du Bugnon 21",
        postal_code="1011",
        city="Lausanne",
        canton="VD",
        iban="CH4431999123000889012",
        vat_number="CHE-123.456.788 TVA",
        zsr_number="Z999999",
        payment_days=30,
    )
    password = make_password(None)
    billing = User.objects.create(
        email=f"{EMAIL_PREFIX}staff@bench.invalid",
        role=Role.BILLING,
        organization=organization,
        first_name="Banc",
        last_name="Facturation",
        password=password,
    )
    User.objects.create(
        email=f"{EMAIL_PREFIX}physician@bench.invalid",
        role=Role.PHYSICIAN,
        organization=organization,
        first_name="Banc",
        last_name="Médecin",
        password=password,
    )
    rng = random.Random(options.seed)  # noqa: S311 - synthetic data, not security
    total = options.patient_count
    patients: list[Patient] = []
    for batch in _chunks(range(total)):
        patients += Patient.objects.bulk_create(
            [_patient(organization, i, rng) for i in batch], batch_size=BATCH
        )
        progress(f"{len(patients)}/{total} patients")
    insurers = list(Insurer.objects.filter(active=True).order_by("gln"))
    if not insurers:
        raise BenchError("the reference catalogue has no active insurer")
    since = dt.date(timezone.localdate().year - 2, 1, 1)
    coverages = [
        Coverage(
            patient=patient,
            insurer=insurers[i % len(insurers)],
            member_number=f"80756{i:015d}",
            valid_from=since,
        )
        for i, patient in enumerate(patients)
        if i % 10 != 9
    ]
    Coverage.objects.bulk_create(coverages, batch_size=BATCH)
    seeded = Seeded(organization=organization, billing=billing, patients=patients)
    seeded.counts.update(patients=len(patients), coverages=len(coverages))
    seeded.seconds["people"] = round(time.perf_counter() - started, 2)
    return seeded


def _patient(organization: Organization, i: int, rng: random.Random) -> Patient:
    postal_code, city = CITIES[i % len(CITIES)]
    return Patient(
        organization=organization,
        family_name=f"{FAMILY_NAMES[i % len(FAMILY_NAMES)]}-{i}",
        given_names=GIVEN_NAMES[(i // len(FAMILY_NAMES)) % len(GIVEN_NAMES)],
        birth_date=dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(25_000)),
        sex=("female", "male")[i % 2],
        address_line=f"{STREETS[i % len(STREETS)]} {rng.randrange(1, 120)}",
        postal_code=postal_code,
        city=city,
        country="CH",
        # The invoice and its payment part are printed in the patient's language.
        preferred_language="de" if i % 3 == 2 else "fr",
    )


def seed_charges(
    seeded: Seeded, patients: list[Patient], catalogue: Catalogue, rng: random.Random
) -> int:
    """Confirmed charges of one to three acts for each of `patients` (one invoice each)."""
    from .services.tariffs import quantity_for

    physician = User.objects.get(email=f"{EMAIL_PREFIX}physician@bench.invalid")
    insurers = dict(
        Coverage.objects.filter(patient__in=[p.pk for p in patients]).values_list(
            "patient_id", "insurer_id"
        )
    )
    by_pk = {insurer.pk: insurer for insurer in catalogue.insurers}
    now = timezone.now()
    charges: list[ChargeItem] = []
    for patient in patients:
        insurer = by_pk.get(insurers.get(patient.pk, -1))
        for _act in range(rng.choice((1, 1, 2, 2, 3))):
            performed_at = now - dt.timedelta(days=rng.randrange(1, 30), minutes=rng.randrange(600))
            on = timezone.localdate(performed_at)
            video = rng.random() < 0.6
            base, more = VIDEO if video else IN_PERSON
            minutes = rng.randrange(8, 41)
            items = [(ref, quantity_for(catalogue.codes[ref], minutes)) for ref in (base, more)]
            if rng.random() < 0.2:
                items.append((REPORT, Decimal(1)))
            if rng.random() < 0.05:
                items.append((PRIVATE_REPORT, Decimal(1)))
            for ref, quantity in items:
                code = catalogue.codes[ref]
                priced = catalogue.price(code, quantity, insurer, on)
                charges.append(
                    ChargeItem(
                        patient=patient,
                        code=code,
                        context=Context.VIDEO if video else Context.IN_PERSON,
                        performed_at=performed_at,
                        performer=physician,
                        quantity=quantity,
                        unit_points=priced.unit_points,
                        point_value=priced.point_value,
                        unit_price=priced.unit_price,
                        amount=priced.amount,
                        vat_rate=code.vat_rate,
                        status=ChargeItem.Status.CONFIRMED,
                        explanation="bench",
                        confirmed_by=physician,
                        confirmed_at=now,
                    )
                )
    ChargeItem.objects.bulk_create(charges, batch_size=BATCH)
    return len(charges)


def _chunks(items: range, size: int = BATCH) -> Iterator[range]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
