"""Who may open the billing pages: every page, action and file answers 404 to whoever may not
see it (a clinician outside or even on the care team for invoices, billing staff of another
organisation, another patient, an administrator, the patient on the staff's pages), the refusal
is audited and nothing changes. Billing staff cannot open the patient's notes or results."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent, Outcome
from apps.billing.models import (
    BillingRun,
    ChargeItem,
    Claim,
    CreditNote,
    Invoice,
    Payment,
)
from apps.records.access import get_patient_for_user
from apps.records.models import ClinicalNote, Encounter, Patient
from apps.records.services.clinical import do_write_note

from .pages_support import client_for, denials, make_invoice, store_pdf


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def other_billing(make_user: Callable[..., User]) -> User:
    other = Organization.objects.create(name="Autre hôpital", gln="7601000000082")
    return make_user(Role.BILLING, email="billing-other@example.test", organization=other)


@pytest.fixture
def cast(
    patient: User,
    patient2: User,
    clinician: User,
    outsider: User,
    billing_user: User,
    other_billing: User,
    admin_user: User,
) -> dict[str, User]:
    return {
        "patient": patient,
        "patient2": patient2,
        "clinician": clinician,
        "outsider": outsider,
        "billing": billing_user,
        "other_billing": other_billing,
        "admin": admin_user,
    }


@pytest.fixture
def scene(
    record: Patient,
    billing_profile: Any,
    billing_user: User,
    make_charge: Callable[..., ChargeItem],
    make_encounter: Callable[..., Encounter],
) -> dict[str, int]:
    """An invoice of the patient with a credit note, an unmatched payment, a batch run and a
    finished encounter with a proposed charge."""
    invoice = make_invoice(record, [make_charge(record)], issued_by=billing_user)
    name, _digest = store_pdf(b"%PDF-1.4 credit note")
    note = CreditNote.objects.create(
        number="CN-2025-000001",
        invoice=invoice,
        amount=Decimal("5.00"),
        reason="Geste commercial",
        issued_by=billing_user,
        pdf_name=name,
    )
    payment = Payment.objects.create(
        amount=Decimal("12.00"),
        received_on=timezone.localdate(),
        reference="RF00UNKNOWN",
        method=Payment.Method.MANUAL,
        recorded_by=billing_user,
    )
    run = BillingRun.objects.create(
        organization_id=billing_user.organization_id, started_by=billing_user, total=1
    )
    encounter = make_encounter(record)
    make_charge(record, status=ChargeItem.Status.PROPOSED, encounter=encounter)
    return {
        "i": invoice.pk,
        "c": note.pk,
        "y": payment.pk,
        "r": run.pk,
        "e": encounter.pk,
        "p": record.pk,
    }


STAFF_ONLY = ["patient", "patient2", "clinician", "outsider", "admin"]
NOT_THE_PATIENTS_BILLING = STAFF_ONLY + ["other_billing"]

# (method, address, data, who is refused)
URLS: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("get", "/billing/", {}, STAFF_ONLY),
    ("post", "/billing/generate/", {"patient": "{p}"}, NOT_THE_PATIENTS_BILLING),
    ("post", "/billing/runs/", {}, STAFF_ONLY),
    ("get", "/billing/runs/{r}/", {}, NOT_THE_PATIENTS_BILLING),
    ("get", "/billing/runs/{r}/progress/", {}, NOT_THE_PATIENTS_BILLING),
    ("get", "/billing/invoices/", {}, STAFF_ONLY),
    ("get", "/billing/invoices/{i}/", {}, NOT_THE_PATIENTS_BILLING),
    ("get", "/billing/invoices/{i}/pdf/", {}, NOT_THE_PATIENTS_BILLING),
    ("post", "/billing/invoices/{i}/send/", {}, NOT_THE_PATIENTS_BILLING),
    ("post", "/billing/invoices/{i}/claim/", {}, NOT_THE_PATIENTS_BILLING),
    (
        "post",
        "/billing/invoices/{i}/payment/",
        {"amount": "10.00", "received_on": "2025-01-02"},
        NOT_THE_PATIENTS_BILLING,
    ),
    (
        "post",
        "/billing/invoices/{i}/credit/",
        {"amount": "10.00", "reason": "Intrusion"},
        NOT_THE_PATIENTS_BILLING,
    ),
    ("get", "/billing/credit-notes/{c}/pdf/", {}, NOT_THE_PATIENTS_BILLING),
    ("get", "/billing/payments/", {}, STAFF_ONLY),
    (
        "post",
        "/billing/payments/",
        {"amount": "10.00", "received_on": "2025-01-02", "reference": "RF18539007547034"},
        STAFF_ONLY,
    ),
    ("post", "/billing/payments/{y}/assign/", {"invoice_number": "{n}"}, NOT_THE_PATIENTS_BILLING),
    ("get", "/billing/aging/", {}, STAFF_ONLY),
    ("get", "/billing/export.csv?start=2025-01-01&end=2025-12-31", {}, STAFF_ONLY),
    ("get", "/clinic/charges/", {}, ["patient", "patient2", "admin"]),
    (
        "get",
        "/clinic/charges/encounter/{e}/",
        {},
        ["patient", "patient2", "outsider", "other_billing", "admin"],
    ),
    (
        "post",
        "/clinic/charges/encounter/{e}/",
        {"op": "confirm"},
        ["patient", "patient2", "outsider", "other_billing", "admin"],
    ),
    ("get", "/invoices/", {}, ["clinician", "outsider", "billing", "admin"]),
    (
        "get",
        "/invoices/{i}/",
        {},
        ["patient2", "clinician", "outsider", "billing", "other_billing", "admin"],
    ),
    (
        "get",
        "/invoices/{i}/pdf/",
        {},
        ["patient2", "clinician", "outsider", "billing", "other_billing", "admin"],
    ),
    (
        "get",
        "/invoices/credit-notes/{c}/pdf/",
        {},
        ["patient2", "clinician", "outsider", "billing", "other_billing", "admin"],
    ),
]

CASES = [
    pytest.param(method, url, data, who, id=f"{who}-{method}-{url}")
    for method, url, data, refused in URLS
    for who in refused
]


def snapshot() -> tuple[Any, ...]:
    return (
        list(Invoice.objects.order_by("pk").values_list("status", "paid", "credited")),
        list(ChargeItem.objects.order_by("pk").values_list("status", "quantity")),
        CreditNote.objects.count(),
        list(Payment.objects.order_by("pk").values_list("invoice_id", flat=True)),
        Claim.objects.count(),
        list(Invoice.objects.values_list("sent_to_patient_at", flat=True)),
    )


@pytest.mark.parametrize(("method", "url", "data", "who"), CASES)
def test_a_page_is_denied_with_an_audited_404_and_nothing_changes(
    method: str,
    url: str,
    data: dict[str, Any],
    who: str,
    cast: dict[str, User],
    scene: dict[str, int],
) -> None:
    # given
    user = cast[who]
    number = Invoice.objects.get(pk=scene["i"]).number
    address = url.format(**scene, n=number)
    body = {key: value.format(**scene, n=number) for key, value in data.items()}
    before = snapshot()
    audited = len(denials(user))
    # when
    response = getattr(client_for(user), method)(address, body)
    # then
    assert response.status_code == 404
    assert len(denials(user)) == audited + 1
    assert snapshot() == before


def test_the_patient_cannot_fetch_another_patients_invoice_page_or_pdf(
    cast: dict[str, User], scene: dict[str, int]
) -> None:
    client = client_for(cast["patient2"])
    for address in (f"/invoices/{scene['i']}/", f"/invoices/{scene['i']}/pdf/"):
        response = client.get(address)
        assert response.status_code == 404
        assert b"%PDF" not in response.content
    refused = AuditEvent.objects.filter(actor_id=cast["patient2"].pk, outcome=Outcome.DENIED)
    assert {event.object_id for event in refused} == {str(scene["i"])}
    assert refused.count() == 2


def test_the_patient_fetches_their_own_invoice_page_and_pdf(
    cast: dict[str, User], scene: dict[str, int]
) -> None:
    client = client_for(cast["patient"])
    assert client.get(f"/invoices/{scene['i']}/").status_code == 200
    response = client.get(f"/invoices/{scene['i']}/pdf/")
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_an_unknown_invoice_is_a_404_audited_like_a_refusal(
    cast: dict[str, User], scene: dict[str, int]
) -> None:
    client = client_for(cast["billing"])
    assert client.get("/billing/invoices/999999/").status_code == 404
    assert client.get("/invoices/999999/pdf/").status_code == 404
    assert len(denials(cast["billing"])) == 2


@pytest.mark.parametrize(
    "address",
    [
        "/clinic/patients/{p}/",
        "/clinic/patients/{p}/notes/",
        "/clinic/patients/{p}/results/",
        "/clinic/patients/{p}/reports/",
        "/clinic/patients/{p}/timeline/",
    ],
)
def test_billing_staff_cannot_open_notes(
    address: str,
    cast: dict[str, User],
    scene: dict[str, int],
    record: Patient,
    clinician: User,
) -> None:
    # given a note in the record of a patient whose invoices they handle
    do_write_note(
        get_patient_for_user(clinician, record.pk),
        clinician,
        kind=ClinicalNote.Kind.PROGRESS,
        title="Anamnèse",
        text="Anamnèse confidentielle",
    )
    billing = cast["billing"]
    assert client_for(billing).get(f"/billing/invoices/{scene['i']}/").status_code == 200
    # when
    response = client_for(billing).get(address.format(**scene))
    # then
    assert response.status_code == 404
    assert b"Anamn" not in response.content
    assert denials(billing)
