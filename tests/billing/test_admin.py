"""The billing admin: administrators maintain the catalogue, insurers, profiles and coverages,
each entry checked; what billing produced (invoices, credit notes, payments, claims) is
read-only, never changed or deleted, and opening a patient's page is audited."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.audit.models import AuditEvent
from apps.billing.models import (
    BillingProfile,
    Claim,
    Coverage,
    CreditNote,
    Insurer,
    Invoice,
    Payment,
    PointValue,
    Tariff,
    TariffCode,
)
from apps.records.models import Patient
from tests.conftest import verified_client

VALID_FROM = dt.date(2020, 1, 1)


@pytest.fixture
def client(admin_user: User) -> Client:
    """The admin, reading it in English (the messages below are matched in English)."""
    client = verified_client(admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


@pytest.fixture
def invoice(
    record: Patient,
    organization: Organization,
    insurer: Insurer,
    billing_user: User,
    billing_profile: BillingProfile,
) -> Invoice:
    made = Invoice.objects.create(
        number="2026-000001",
        year=2026,
        sequence=1,
        patient=record,
        organization=organization,
        coverage=Coverage.objects.get(patient=record),
        insurer=insurer,
        recipient=Invoice.Recipient.INSURER,
        due_date=timezone.localdate() + dt.timedelta(days=30),
        net=Decimal("34.45"),
        vat=Decimal("0.00"),
        total=Decimal("34.45"),
        patient_share=Decimal("3.45"),
        insurer_share=Decimal("31.00"),
        amount_due=Decimal("3.45"),
        reference="000000000000000020260000011",
        issued_by=billing_user,
        pdf_name="SECRET-PDF-NAME-9c1e.pdf",
    )
    CreditNote.objects.create(
        number="CN-2026-000001",
        invoice=made,
        amount=Decimal("1.00"),
        reason="Geste commercial",
        issued_by=billing_user,
    )
    Payment.objects.create(
        invoice=made,
        amount=Decimal("2.45"),
        received_on=timezone.localdate(),
        reference=made.reference,
        method=Payment.Method.MANUAL,
        recorded_by=billing_user,
    )
    Claim.objects.create(invoice=made, insurer=insurer, created_by=billing_user)
    return made


def _code_form(tariff: Tariff, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tariff": tariff.pk,
        "code": "ZZ.00.0010",
        "label": "Consultation test",
        "tax_points": "",
        "price": "",
        "vat_rate": "0",
        "for_video": "on",
        "unit_minutes": "",
        "min_minutes": "0",
        "max_quantity": "1",
        "valid_from": "2026-01-01",
        "valid_until": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _errors(response: Any) -> str:
    """The text of the form's errors (the page answers 200 with them)."""
    assert response.status_code == 200, response.status_code
    adminform = response.context["adminform"]
    return " ".join(
        str(message) for messages in adminform.form.errors.values() for message in messages
    )


@pytest.mark.parametrize(
    "path",
    [
        "/admin/billing/",
        "/admin/billing/tariff/",
        "/admin/billing/tariff/add/",
        "/admin/billing/tariff/{tardoc}/change/",
        "/admin/billing/tariff/{flat_rates}/change/",
        "/admin/billing/tariffcode/",
        "/admin/billing/tariffcode/?context=video&validity=now",
        "/admin/billing/tariffcode/?q=AA.00",
        "/admin/billing/tariffcode/add/",
        "/admin/billing/tariffcode/{video_base}/change/",
        "/admin/billing/pointvalue/",
        "/admin/billing/pointvalue/add/",
        "/admin/billing/insurer/",
        "/admin/billing/insurer/add/",
        "/admin/billing/insurer/{insurer}/change/",
        "/admin/billing/billingprofile/",
        "/admin/billing/billingprofile/{profile}/change/",
        "/admin/billing/coverage/",
        "/admin/billing/coverage/add/",
        "/admin/billing/invoice/",
        "/admin/billing/invoice/?status__exact=issued",
        "/admin/billing/invoice/{invoice}/change/",
        "/admin/billing/creditnote/",
        "/admin/billing/payment/",
        "/admin/billing/payment/?matched=no",
        "/admin/billing/claim/",
        "/admin/billing/chargeitem/",
        "/admin/billing/billingrun/",
    ],
)
def test_admin_pages_load(
    path: str,
    client: Client,
    codes: dict[str, TariffCode],
    invoice: Invoice,
    insurer: Insurer,
    billing_profile: BillingProfile,
) -> None:
    url = path.format(
        tardoc=codes["video_base"].tariff_id,
        flat_rates=codes["report"].tariff_id,
        video_base=codes["video_base"].pk,
        insurer=insurer.pk,
        profile=billing_profile.pk,
        invoice=invoice.pk,
    )

    response = client.get(url)

    assert response.status_code == 200
    assert "SECRET-PDF-NAME" not in response.content.decode()


def test_a_valid_tariff_code_is_saved_with_its_incompatible_codes(
    client: Client, codes: dict[str, TariffCode], tardoc: Tariff
) -> None:
    data = _code_form(tardoc, tax_points="20.00", incompatible_with=[codes["office"].pk])

    response = client.post("/admin/billing/tariffcode/add/", data)

    assert response.status_code == 302
    made = TariffCode.objects.get(code="ZZ.00.0010")
    assert made.tax_points == Decimal("20.00")
    # Symmetrical: the other code excludes it too.
    assert made in codes["office"].incompatible_with.all()


@pytest.mark.parametrize(
    ("tariff", "overrides", "message"),
    [
        ("tardoc", {}, "needs its tax points"),
        ("tardoc", {"tax_points": "10", "price": "5.00"}, "leave the price empty"),
        ("tardoc", {"tax_points": "0"}, "above zero"),
        ("flat_rates", {}, "needs its price"),
        ("flat_rates", {"price": "5.00", "tax_points": "10"}, "leave them empty"),
        ("tardoc", {"tax_points": "10", "valid_until": "2025-12-31"}, "comes before its start"),
        ("tardoc", {"tax_points": "10", "unit_minutes": "0"}, "give the minutes"),
        ("tardoc", {"tax_points": "10", "max_quantity": "0"}, "at least one"),
        ("tardoc", {"tax_points": "10", "vat_rate": "120"}, "between 0 and 100"),
        ("tardoc", {"tax_points": "10", "for_video": None}, "kinds of consultation"),
    ],
)
def test_a_tariff_code_that_breaks_a_rule_is_refused(
    client: Client,
    tardoc: Tariff,
    flat_rates: Tariff,
    tariff: str,
    overrides: dict[str, Any],
    message: str,
) -> None:
    chosen = {"tardoc": tardoc, "flat_rates": flat_rates}[tariff]

    response = client.post("/admin/billing/tariffcode/add/", _code_form(chosen, **overrides))

    assert message in _errors(response)
    assert not TariffCode.objects.filter(code="ZZ.00.0010").exists()


def test_two_versions_of_a_code_cannot_be_valid_on_the_same_day(
    client: Client, codes: dict[str, TariffCode], tardoc: Tariff
) -> None:
    current = codes["video_base"]  # valid from 2020 without end
    data = _code_form(tardoc, code=current.code, tax_points="19.00", valid_from="2026-01-01")

    response = client.post("/admin/billing/tariffcode/add/", data)

    assert "Another version of this code" in _errors(response)
    # Once the current version ends, the new one may follow it.
    TariffCode.objects.filter(pk=current.pk).update(valid_until=dt.date(2025, 12, 31))
    assert client.post("/admin/billing/tariffcode/add/", data).status_code == 302
    assert TariffCode.objects.filter(code=current.code).count() == 2


def test_a_code_cannot_be_made_incompatible_with_itself(
    client: Client, codes: dict[str, TariffCode]
) -> None:
    code = codes["video_base"]
    data = _code_form(
        code.tariff,
        code=code.code,
        label=code.label,
        tax_points=str(code.tax_points),
        valid_from=code.valid_from.isoformat(),
        incompatible_with=[code.pk],
    )

    response = client.post(f"/admin/billing/tariffcode/{code.pk}/change/", data)

    assert "incompatible_with" in response.context["adminform"].form.errors
    assert code not in code.incompatible_with.all()


def test_the_kind_of_a_tariff_with_codes_cannot_change(
    client: Client, codes: dict[str, TariffCode], tardoc: Tariff
) -> None:
    data = {
        "code": tardoc.code,
        "name": tardoc.name,
        "kind": Tariff.Kind.PRICE,
        # the inline formsets of its codes (read-only) and point values
        "codes-TOTAL_FORMS": "0",
        "codes-INITIAL_FORMS": "0",
        "point_values-TOTAL_FORMS": "0",
        "point_values-INITIAL_FORMS": "0",
    }

    response = client.post(f"/admin/billing/tariff/{tardoc.pk}/change/", data)

    assert "cannot change" in _errors(response)
    tardoc.refresh_from_db()
    assert tardoc.kind == Tariff.Kind.POINTS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"canton": "XX"}, "not a Swiss canton"),
        ({"value": "0"}, "more than zero"),
        ({"valid_until": "2019-01-01"}, "comes before its start"),
        ({"valid_from": "2024-01-01"}, "Another value for this canton"),
    ],
)
def test_point_values_are_checked(
    client: Client,
    codes: dict[str, TariffCode],
    tardoc: Tariff,
    overrides: dict[str, str],
    message: str,
) -> None:
    data = {"tariff": tardoc.pk, "canton": "VD", "value": "0.95", "valid_from": "2024-01-01"}
    data |= overrides
    before = PointValue.objects.count()

    response = client.post("/admin/billing/pointvalue/add/", data)

    assert message in _errors(response)
    assert PointValue.objects.count() == before


def test_an_insurer_specific_point_value_is_saved(
    client: Client, codes: dict[str, TariffCode], tardoc: Tariff, insurer: Insurer
) -> None:
    data = {
        "tariff": tardoc.pk,
        "canton": "vd",
        "insurer": insurer.pk,
        "value": "0.9200",
        "valid_from": "2024-01-01",
    }

    response = client.post("/admin/billing/pointvalue/add/", data)

    assert response.status_code == 302
    saved = PointValue.objects.get(insurer=insurer)
    assert (saved.canton, saved.value) == ("VD", Decimal("0.9200"))


def test_only_points_tariffs_take_point_values(
    client: Client, codes: dict[str, TariffCode], flat_rates: Tariff
) -> None:
    data = {"tariff": flat_rates.pk, "canton": "VD", "value": "1", "valid_from": "2024-01-01"}

    response = client.post("/admin/billing/pointvalue/add/", data)

    # The price tariff is not even offered.
    assert response.status_code == 200
    assert "tariff" in response.context["adminform"].form.errors


def _insurer_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Nouvelle caisse",
        "gln": "7601003001013",
        "payment_mode": Insurer.PaymentMode.INSURER_PAYS,
        "patient_share": "10.00",
        "connector": Insurer.Connector.NONE,
        "claim_url": "",
        "active": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gln": "7601003001014"}, "wrong check digit"),
        ({"gln": "76010030010"}, "exactly 13 digits"),
        ({"patient_share": "120"}, "between 0 and 100"),
        ({"connector": Insurer.Connector.FHIR}, "FHIR base URL"),
    ],
)
def test_insurer_entries_are_checked(
    client: Client, db: None, overrides: dict[str, str], message: str
) -> None:
    response = client.post("/admin/billing/insurer/add/", _insurer_form(**overrides))

    assert message in _errors(response)
    assert not Insurer.objects.exists()


def test_an_insurer_is_saved_with_its_covered_codes(
    client: Client, codes: dict[str, TariffCode]
) -> None:
    data = _insurer_form(gln="760 1003 0010 13", covered_codes=[codes["video_base"].pk])

    response = client.post("/admin/billing/insurer/add/", data)

    assert response.status_code == 302
    insurer = Insurer.objects.get()
    assert insurer.gln == "7601003001013"
    assert list(insurer.covered_codes.all()) == [codes["video_base"]]


def _profile_form(organization: Organization, **overrides: Any) -> dict[str, Any]:
    data = {
        "organization": organization.pk,
        "creditor_name": "Hôpital de test",
        "street": "Rue du Bugnon 21",
        "postal_code": "1011",
        "city": "Lausanne",
        "country": "CH",
        "canton": "VD",
        "iban": "CH44 3199 9123 0008 8901 2",
        "vat_number": "CHE-123.456.788 TVA",
        "zsr_number": "Z123456",
        "payment_days": "30",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iban": "CH44 3199 9123 0008 8901 3"}, "not a valid IBAN"),
        ({"iban": "DE89 3704 0044 0532 0130 00"}, "Swiss or Liechtenstein"),
        ({"canton": "ZZ"}, "not a Swiss canton"),
        ({"vat_number": "CHE-123.456.789 TVA"}, "Swiss VAT number"),
        ({"zsr_number": "123456"}, "ZSR/RCC"),
    ],
)
def test_billing_profile_entries_are_checked(
    client: Client, organization: Organization, overrides: dict[str, str], message: str
) -> None:
    response = client.post(
        "/admin/billing/billingprofile/add/", _profile_form(organization, **overrides)
    )

    assert message in _errors(response)
    assert not BillingProfile.objects.exists()


def test_a_billing_profile_keeps_the_iban_in_its_compact_form(
    client: Client, organization: Organization
) -> None:
    response = client.post("/admin/billing/billingprofile/add/", _profile_form(organization))

    assert response.status_code == 302
    assert BillingProfile.objects.get().iban == "CH4431999123000889012"
    listing = client.get("/admin/billing/billingprofile/").content.decode()
    assert 'alt="True"' in listing  # shown as a QR-IBAN


def test_coverages_cannot_overlap_and_opening_one_is_audited(
    client: Client, record: Patient, insurer: Insurer, insurer_garant: Insurer
) -> None:
    data = {
        "patient": record.pk,
        "insurer": insurer_garant.pk,
        "kind": Coverage.Kind.BASIC,
        "member_number": "123",
        "valid_from": "2026-01-01",
        "valid_until": "",
    }

    response = client.post("/admin/billing/coverage/add/", data)

    assert "another coverage of this kind" in _errors(response)
    supplementary = client.post(
        "/admin/billing/coverage/add/", {**data, "kind": Coverage.Kind.SUPPLEMENTARY}
    )
    assert supplementary.status_code == 302
    coverage = Coverage.objects.get(kind=Coverage.Kind.SUPPLEMENTARY)
    client.get(f"/admin/billing/coverage/{coverage.pk}/change/")
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.action, event.object_type) == ("read", "billing.coverage")
    assert event.patient_id == str(record.pk)


def test_issued_invoices_cannot_be_changed_or_deleted(
    client: Client, invoice: Invoice, record: Patient
) -> None:
    page = client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    html = page.content.decode()
    assert invoice.number in html and "CN-2026-000001" in html
    assert "SECRET-PDF-NAME" not in html
    assert 'name="_save"' not in html  # a view, not a form
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.object_type, event.object_id) == ("billing.invoice", str(invoice.pk))
    assert event.patient_id == str(record.pk)

    assert client.get("/admin/billing/invoice/add/").status_code == 403
    assert client.get(f"/admin/billing/invoice/{invoice.pk}/delete/").status_code == 403
    changed = client.post(
        f"/admin/billing/invoice/{invoice.pk}/change/", {"number": "2026-999999", "total": "0"}
    )
    assert changed.status_code == 403
    bulk = client.post(
        "/admin/billing/invoice/",
        {"action": "delete_selected", "_selected_action": [invoice.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    invoice.refresh_from_db()
    assert (invoice.number, invoice.total) == ("2026-000001", Decimal("34.45"))


@pytest.mark.parametrize("model", ["creditnote", "payment", "claim", "chargeitem"])
def test_what_billing_produced_is_read_only(
    model: str, client: Client, invoice: Invoice, make_charge: Any, record: Patient
) -> None:
    make_charge(record)
    rows = {
        "creditnote": CreditNote.objects.all(),
        "payment": Payment.objects.all(),
        "claim": Claim.objects.all(),
        "chargeitem": invoice.charges.model.objects.all(),
    }[model]
    row = rows.first()
    assert row is not None

    assert client.get(f"/admin/billing/{model}/add/").status_code == 403
    assert client.get(f"/admin/billing/{model}/{row.pk}/delete/").status_code == 403
    page = client.get(f"/admin/billing/{model}/{row.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.object_type == f"billing.{model}"
    assert event.patient_id == str(record.pk)


def test_clinicians_billing_staff_and_patients_cannot_open_the_billing_admin(
    clinician: User, billing_user: User, patient: User, db: None
) -> None:
    for user in (clinician, billing_user, patient):
        response = verified_client(user).get("/admin/billing/tariff/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
