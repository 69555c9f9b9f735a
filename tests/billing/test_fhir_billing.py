"""Billing in the FHIR API: ChargeItem, Invoice, Coverage and Claim mapped to valid R4, read and
searched under the billing rule (the patient, billing staff of the organisation, systems with
the scope; clinicians of the care team see charge items and coverages only), billing staff kept
to administrative types, and a constant cost per page."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.accounts.services import do_issue_token
from apps.audit.models import AuditEvent
from apps.billing.fhir import SYS_COVERAGE_KIND, SYS_INVOICE, tariff_system
from apps.billing.models import ChargeItem, Claim, Coverage, Insurer, Invoice
from apps.interop.fhir_api.oauth import do_create_fhir_client
from apps.interop.fhir_api.scope import ADMINISTRATIVE_TYPES
from apps.records.fhir import EXT, SYS_GLN, SYS_INSURANCE_CARD, SYS_USER, validate
from apps.records.models import BreakGlassAccess, Encounter, Patient, Practitioner

TYPES = ("ChargeItem", "Invoice", "Coverage", "Claim")


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def api() -> Callable[..., Client]:
    """A client sending a bearer token of `user` with `scopes`."""

    def make(user: User, *scopes: str) -> Client:
        secret, _token = do_issue_token(user, name="fhir test", scopes=list(scopes))
        return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT="application/fhir+json")

    return make


def system_client(scopes: str) -> Client:
    from oauth2_provider.models import AccessToken

    client, _secret = do_create_fhir_client("Insurer gateway", scopes)
    token = secrets.token_urlsafe(16)
    AccessToken.objects.create(
        application=client.application, token=token, scope=scopes, expires="2999-01-01T00:00Z"
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/fhir+json")


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle.get("entry", [])]


def ids(client: Client, type_name: str, **params: Any) -> set[str]:
    response = client.get(f"/fhir/{type_name}", params)
    assert response.status_code == 200, response.content
    found = entries(response.json())
    for resource in found:
        validate(resource)
    return {resource["id"] for resource in found}


def last_audit() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


@pytest.fixture
def practitioner(clinician: User) -> Practitioner:
    return Practitioner.objects.create(user=clinician, registration_number="7601000123456")


@pytest.fixture
def billed(
    record: Patient,
    make_invoice: Callable[..., Invoice],
    make_encounter: Callable[..., Encounter],
    make_charge: Callable[..., ChargeItem],
    practitioner: Practitioner,
) -> dict[str, Any]:
    """The patient's invoice with its claim, a charge still to review and their coverage."""
    invoice = make_invoice(record)
    assert invoice.insurer is not None
    claim = Claim.objects.create(
        invoice=invoice, insurer=invoice.insurer, status=Claim.Status.ACCEPTED
    )
    encounter = make_encounter(record, minutes=12)
    proposed = make_charge(
        record,
        "video_more",
        2,
        "16.05",
        status=ChargeItem.Status.PROPOSED,
        encounter=encounter,
        unit_points=Decimal("17.26"),
        point_value=Decimal("0.9300"),
        explanation="2 × 5 minutes au-delà des 5 premières.",
    )
    return {
        "invoice": invoice,
        "claim": claim,
        "charge": proposed,
        "encounter": encounter,
        "coverage": Coverage.objects.get(patient=record),
    }


@pytest.fixture
def other_billing(make_user: Callable[..., User]) -> User:
    other = Organization.objects.create(name="Autre clinique", gln="7601000000082")
    return make_user(Role.BILLING, email="billing@other.test", organization=other)


# ---------------------------------------------------------------------------------------------
# The mappings


def test_a_charge_item_reads_as_r4(
    billed: dict[str, Any],
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    organization: Organization,
    api: Callable[..., Client],
) -> None:
    charge: ChargeItem = billed["charge"]

    response = api(clinician, "user/*.rs").get(f"/fhir/ChargeItem/{charge.fhir_id}")

    assert response.status_code == 200
    resource = response.json()
    validate(resource)
    assert resource["status"] == "planned"
    assert resource["code"]["coding"] == [
        {
            "system": tariff_system("tardoc"),
            "code": "AA.00.0020",
            "display": "Consultation vidéo, par 5 minutes supplémentaires",
        }
    ]
    assert resource["subject"] == {"reference": f"Patient/{record.fhir_id}"}
    assert resource["context"] == {"reference": f"Encounter/{billed['encounter'].fhir_id}"}
    assert dt.datetime.fromisoformat(resource["occurrenceDateTime"]) == charge.performed_at
    assert resource["performer"] == [
        {
            "actor": {
                "reference": f"Practitioner/{practitioner.fhir_id}",
                "identifier": {"system": SYS_USER, "value": str(clinician.pk)},
                "display": clinician.get_full_name(),
            }
        }
    ]
    assert resource["performingOrganization"]["reference"] == f"Organization/{organization.fhir_id}"
    assert resource["quantity"] == {"value": 2}
    assert resource["priceOverride"] == {"value": 32.1, "currency": "CHF"}
    extensions = {e["url"].removeprefix(EXT): e for e in resource["extension"]}
    assert extensions["care-setting"]["valueCode"] == "video"
    assert extensions["unit-price"]["valueMoney"] == {"value": 16.05, "currency": "CHF"}
    assert extensions["tax-points"]["valueDecimal"] == 17.26
    assert extensions["point-value"]["valueDecimal"] == 0.93
    assert resource["note"] == [{"text": "2 × 5 minutes au-delà des 5 premières."}]
    event = last_audit()
    assert (event.action, event.object_type) == ("read", "fhir.ChargeItem")
    assert event.patient_id == str(record.pk)


def test_an_invoice_reads_as_r4(
    billed: dict[str, Any], record: Patient, billing_user: User, api: Callable[..., Client]
) -> None:
    invoice: Invoice = billed["invoice"]

    resource = api(billing_user, "user/Invoice.rs").get(f"/fhir/Invoice/{invoice.fhir_id}").json()

    validate(resource)
    assert resource["status"] == "issued"
    assert resource["identifier"] == [{"system": SYS_INVOICE, "value": invoice.number}]
    assert resource["subject"]["reference"] == f"Patient/{record.fhir_id}"
    # tiers payant: the invoice goes to the insurer, named by its GLN
    assert resource["recipient"]["identifier"] == {"system": SYS_GLN, "value": "7601003000016"}
    assert resource["issuer"]["reference"] == f"Organization/{invoice.organization.fhir_id}"
    lines = resource["lineItem"]
    charges = list(invoice.charges.order_by("performed_at", "pk"))
    assert [line["chargeItemReference"]["reference"] for line in lines] == [
        f"ChargeItem/{c.fhir_id}" for c in charges
    ]
    base, unit = lines[1]["priceComponent"]
    assert base == {"type": "base", "factor": 3, "amount": {"value": 48.15, "currency": "CHF"}}
    assert unit["amount"] == {"value": 16.05, "currency": "CHF"}
    tax = lines[2]["priceComponent"][2]  # the report carries 8.1 % VAT
    assert tax == {"type": "tax", "factor": 0.081, "amount": {"value": 2.84, "currency": "CHF"}}
    assert resource["totalNet"] == {"value": float(invoice.net), "currency": "CHF"}
    assert resource["totalGross"] == {"value": float(invoice.total), "currency": "CHF"}
    extensions = {e["url"].removeprefix(EXT): e for e in resource["extension"]}
    assert extensions["payment-reference"]["valueString"] == invoice.reference
    assert extensions["amount-due"]["valueMoney"]["value"] == float(invoice.amount_due)
    assert extensions["coverage"]["valueReference"] == {
        "reference": f"Coverage/{billed['coverage'].fhir_id}"
    }
    assert invoice.reference in resource["paymentTerms"]
    # paid and cancelled invoices
    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.PAID)
    client = api(billing_user, "user/Invoice.rs")
    assert client.get(f"/fhir/Invoice/{invoice.fhir_id}").json()["status"] == "balanced"


def test_a_coverage_reads_as_r4(
    billed: dict[str, Any], record: Patient, patient: User, api: Callable[..., Client]
) -> None:
    coverage: Coverage = billed["coverage"]

    resource = api(patient, "patient/*.rs").get(f"/fhir/Coverage/{coverage.fhir_id}").json()

    validate(resource)
    assert resource["status"] == "active"
    assert resource["type"]["coding"][0] == {
        "system": SYS_COVERAGE_KIND,
        "code": "basic",
        "display": "Compulsory basic insurance",
    }
    assert resource["subscriberId"] == "80756000012345"
    assert resource["identifier"] == [{"system": SYS_INSURANCE_CARD, "value": "80756000012345"}]
    assert resource["beneficiary"]["reference"] == f"Patient/{record.fhir_id}"
    assert resource["payor"] == [
        {
            "type": "Organization",
            "identifier": {"system": SYS_GLN, "value": "7601003000016"},
            "display": "Assura Test",
        }
    ]
    assert resource["period"] == {"start": "2020-01-01"}
    assert resource["costToBeneficiary"][0]["valueQuantity"]["value"] == 10


def test_a_claim_reads_as_r4_with_its_submission_state(
    billed: dict[str, Any], record: Patient, billing_user: User, api: Callable[..., Client]
) -> None:
    claim: Claim = billed["claim"]
    invoice: Invoice = billed["invoice"]

    resource = api(billing_user, "user/Claim.rs").get(f"/fhir/Claim/{claim.fhir_id}").json()

    validate(resource)
    assert resource["identifier"][0] == {"system": SYS_INVOICE, "value": invoice.number}
    assert resource["status"] == "active"
    assert resource["patient"]["reference"] == f"Patient/{record.fhir_id}"
    assert len(resource["item"]) == 3
    assert resource["extension"] == [{"url": EXT + "claim-submission", "valueCode": "accepted"}]
    event = last_audit()
    assert (event.action, event.object_type) == ("read", "fhir.Claim")
    assert event.patient_id == str(record.pk)
    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.CANCELLED)
    client = api(billing_user, "user/Claim.rs")
    assert client.get(f"/fhir/Claim/{claim.fhir_id}").json()["status"] == "cancelled"


# ---------------------------------------------------------------------------------------------
# Who sees what


def _all(billed: dict[str, Any]) -> dict[str, set[str]]:
    return {
        "ChargeItem": {
            str(c.fhir_id) for c in ChargeItem.objects.filter(patient=billed["invoice"].patient)
        },
        "Invoice": {str(billed["invoice"].fhir_id)},
        "Coverage": {str(billed["coverage"].fhir_id)},
        "Claim": {str(billed["claim"].fhir_id)},
    }


def test_the_patient_and_billing_staff_see_everything_of_the_patient(
    billed: dict[str, Any],
    record: Patient,
    patient: User,
    billing_user: User,
    api: Callable[..., Client],
) -> None:
    expected = _all(billed)
    assert len(expected["ChargeItem"]) == 4
    for client in (api(patient, "patient/*.rs"), api(billing_user, "user/*.rs")):
        for type_name in TYPES:
            assert ids(client, type_name) == expected[type_name]
            assert ids(client, type_name, patient=str(record.fhir_id)) == expected[type_name]
            some = next(iter(expected[type_name]))
            assert client.get(f"/fhir/{type_name}/{some}").status_code == 200


def test_the_care_team_sees_charge_items_and_coverages_but_not_invoices_or_claims(
    billed: dict[str, Any], record: Patient, clinician: User, api: Callable[..., Client]
) -> None:
    expected = _all(billed)
    client = api(clinician, "user/*.rs")

    assert ids(client, "ChargeItem") == expected["ChargeItem"]
    assert ids(client, "Coverage", patient=str(record.fhir_id)) == expected["Coverage"]
    for type_name in ("Invoice", "Claim"):
        assert ids(client, type_name) == set()
        assert ids(client, type_name, patient=str(record.fhir_id)) == set()
        response = client.get(f"/fhir/{type_name}/{next(iter(expected[type_name]))}")
        assert response.status_code == 404
        assert last_audit().action == "denied"


@pytest.mark.parametrize("who", ["outsider", "patient2", "other_billing", "admin_user"])
def test_others_get_404_and_empty_searches_both_audited(
    who: str,
    billed: dict[str, Any],
    record: Patient,
    record2: Patient,
    request: pytest.FixtureRequest,
    api: Callable[..., Client],
) -> None:
    user: User = request.getfixturevalue(who)
    client = api(user, "patient/*.rs" if user.role == Role.PATIENT else "user/*.rs")
    for type_name, found in _all(billed).items():
        fhir_id = next(iter(found))

        response = client.get(f"/fhir/{type_name}/{fhir_id}")

        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
        denial = last_audit()
        assert (denial.action, denial.outcome) == ("denied", "denied")
        assert denial.object_type == f"fhir.{type_name}" and denial.object_id == fhir_id
        assert denial.actor_id == user.pk
        for params in ({}, {"patient": str(record.fhir_id)}):
            assert ids(client, type_name, **params) == set()
            search = last_audit()
            assert search.detail["fhir"] == "search" and search.detail["total"] == 0


def test_an_emergency_access_opens_the_record_but_not_its_billing(
    billed: dict[str, Any], record: Patient, outsider: User, api: Callable[..., Client]
) -> None:
    BreakGlassAccess.objects.create(
        user=outsider,
        patient=record,
        reason="Patient inconscient aux urgences.",
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    client = api(outsider, "user/*.rs")

    assert client.get(f"/fhir/Patient/{record.fhir_id}").status_code == 200
    for type_name in TYPES:
        assert ids(client, type_name, patient=str(record.fhir_id)) == set()


def test_billing_staff_read_administrative_types_only(
    billed: dict[str, Any], record: Patient, billing_user: User, api: Callable[..., Client]
) -> None:
    client = api(billing_user, "user/*.rs")
    encounter: Encounter = billed["encounter"]

    # the patient's identity, yes
    assert client.get(f"/fhir/Patient/{record.fhir_id}").status_code == 200
    assert ids(client, "Patient") == {str(record.fhir_id)}
    # nothing clinical, even when naming the patient
    assert client.get(f"/fhir/Encounter/{encounter.fhir_id}").status_code == 404
    assert last_audit().action == "denied"
    assert ids(client, "Encounter") == set()
    assert ids(client, "Encounter", patient=str(record.fhir_id)) == set()
    everything = client.get(f"/fhir/Patient/{record.fhir_id}/$everything").json()
    kinds = {e["resource"]["resourceType"] for e in everything["entry"]}
    assert kinds == {"Patient", *TYPES}
    assert kinds <= ADMINISTRATIVE_TYPES
    # and no writing
    resource = client.get(f"/fhir/Patient/{record.fhir_id}").json()
    resource["name"][0]["family"] = "Changé"
    write = api(billing_user, "user/*.cruds").put(
        f"/fhir/Patient/{record.fhir_id}", resource, content_type="application/fhir+json"
    )
    assert write.status_code == 403
    record.refresh_from_db()
    assert record.family_name != "Changé"


def test_billing_staff_of_another_organisation_see_nothing(
    billed: dict[str, Any], record: Patient, other_billing: User, api: Callable[..., Client]
) -> None:
    client = api(other_billing, "user/*.rs")
    assert client.get(f"/fhir/Patient/{record.fhir_id}").status_code == 404
    assert ids(client, "Patient") == set()


def test_a_system_token_needs_the_types_scope(billed: dict[str, Any]) -> None:
    expected = _all(billed)
    client = system_client("system/Invoice.rs system/Claim.rs")

    assert ids(client, "Invoice") == expected["Invoice"]
    assert ids(client, "Claim") == expected["Claim"]
    assert client.get("/fhir/ChargeItem").status_code == 403
    assert ids(system_client("system/*.rs"), "Coverage") == expected["Coverage"]


# ---------------------------------------------------------------------------------------------
# Searching


def test_search_by_status_date_identifier_and_code(
    billed: dict[str, Any],
    record: Patient,
    billing_user: User,
    make_invoice: Callable[..., Invoice],
    api: Callable[..., Client],
) -> None:
    client = api(billing_user, "user/*.rs")
    invoice: Invoice = billed["invoice"]
    charge: ChargeItem = billed["charge"]
    cancelled = make_invoice(record, status=Invoice.Status.CANCELLED)
    Invoice.objects.filter(pk=cancelled.pk).update(issued_at=timezone.now() - dt.timedelta(days=40))

    assert ids(client, "ChargeItem", status="planned") == {str(charge.fhir_id)}
    assert len(ids(client, "ChargeItem", status="billed")) == 6
    assert ids(client, "ChargeItem", status="billable,aborted") == set()
    assert ids(client, "ChargeItem", status="nonsense") == set()
    assert ids(client, "ChargeItem", code="AA.00.0020", status="planned") == {str(charge.fhir_id)}
    encounter = billed["encounter"]
    assert ids(client, "ChargeItem", context=f"Encounter/{encounter.fhir_id}") == {
        str(charge.fhir_id)
    }
    assert ids(client, "Invoice", status="issued") == {str(invoice.fhir_id)}
    assert ids(client, "Invoice", status="cancelled") == {str(cancelled.fhir_id)}
    assert ids(client, "Invoice", identifier=f"{SYS_INVOICE}|{cancelled.number}") == {
        str(cancelled.fhir_id)
    }
    assert ids(client, "Invoice", identifier=f"urn:other|{cancelled.number}") == set()
    month_ago = (timezone.localdate() - dt.timedelta(days=30)).isoformat()
    assert ids(client, "Invoice", date=f"lt{month_ago}") == {str(cancelled.fhir_id)}
    assert ids(client, "Invoice", subject=f"Patient/{record.fhir_id}", date=f"ge{month_ago}") == {
        str(invoice.fhir_id)
    }
    assert ids(client, "Claim", status="active") == {str(billed["claim"].fhir_id)}
    assert ids(client, "Claim", identifier=invoice.number) == {str(billed["claim"].fhir_id)}
    assert ids(client, "Claim", insurer="7601003000016") == {str(billed["claim"].fhir_id)}
    assert ids(client, "Coverage", status="active") == {str(billed["coverage"].fhir_id)}
    assert ids(client, "Coverage", beneficiary=str(record.fhir_id)) == {
        str(billed["coverage"].fhir_id)
    }
    assert ids(client, "Coverage", identifier="80756000012345") == {str(billed["coverage"].fhir_id)}
    yesterday = (timezone.now() - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    assert len(ids(client, "Invoice", _lastUpdated=f"ge{yesterday}")) == 2
    included = client.get(
        "/fhir/Claim", {"patient": str(record.fhir_id), "_include": "Claim:patient"}
    ).json()
    assert [e["resource"]["resourceType"] for e in included["entry"]] == ["Claim", "Patient"]


def test_the_types_are_read_only_in_the_capability_statement(
    billed: dict[str, Any], billing_user: User, api: Callable[..., Client]
) -> None:
    statement = Client().get("/fhir/metadata").json()
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for type_name in TYPES:
        entry = served[type_name]
        assert {i["code"] for i in entry["interaction"]} == {"read", "vread", "search-type"}
        assert {"patient", "status", "_lastUpdated"} <= {p["name"] for p in entry["searchParam"]}
    assert {"date", "identifier"} <= {p["name"] for p in served["Invoice"]["searchParam"]}

    invoice: Invoice = billed["invoice"]
    client = api(billing_user, "user/*.cruds")
    resource = client.get(f"/fhir/Invoice/{invoice.fhir_id}").json()
    created = client.post("/fhir/Invoice", resource, content_type="application/fhir+json")
    updated = client.put(
        f"/fhir/Invoice/{invoice.fhir_id}", resource, content_type="application/fhir+json"
    )
    assert created.status_code == updated.status_code == 405
    assert Invoice.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Cost


def test_a_search_page_costs_the_same_whatever_its_size(
    billed: dict[str, Any],
    record: Patient,
    billing_user: User,
    patient: User,
    make_invoice: Callable[..., Invoice],
    make_charge: Callable[..., ChargeItem],
    insurer: Insurer,
    django_assert_num_queries: Any,
    api: Callable[..., Client],
) -> None:
    clients = [api(billing_user, "user/*.rs"), api(patient, "patient/*.rs")]
    for client in clients:
        client.get("/fhir/Patient", {"_summary": "count"})  # the token's first use is written
    for type_name in TYPES:
        for client in clients:
            params = {"patient": str(record.fhir_id), "_count": 1}
            with CaptureQueriesContext(connection) as small:
                client.get(f"/fhir/{type_name}", params)
            # more of everything: invoices with lines, claims, charges, coverages
            extra = make_invoice(record)
            Claim.objects.create(invoice=extra, insurer=insurer)
            Coverage.objects.create(
                patient=record,
                insurer=insurer,
                kind=Coverage.Kind.SUPPLEMENTARY,
                member_number=f"S{extra.pk}",
                valid_from=dt.date(2021, 1, 1),
            )
            with django_assert_num_queries(len(small)):
                bundle = client.get(f"/fhir/{type_name}", {**params, "_count": 2}).json()
            assert len(entries(bundle)) == 2 and bundle["total"] >= 2
            for resource in entries(bundle):
                validate(resource)
