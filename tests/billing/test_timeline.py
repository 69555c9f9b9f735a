"""Invoices, payments and credit notes in the patient timeline: the patient sees their own;
the care team does not (billing data is not clinical), nor does anybody else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone, translation

from apps.accounts.models import User
from apps.billing.models import CreditNote, Invoice, Payment
from apps.records.access import get_patient_for_user
from apps.records.models import Patient
from apps.records.timeline import Entry, timeline_page

from .pages_support import client_for, make_invoice

BILLING_KINDS = {"invoice", "payment", "credit_note"}


@pytest.fixture(autouse=True)
def _setup(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    with translation.override("en"):
        yield


@pytest.fixture
def history(record: Patient, billing_user: User) -> Invoice:
    """An overdue invoice of the patient, partly paid and partly credited."""
    invoice = make_invoice(
        record,
        amount_due=Decimal("80.00"),
        due_date=timezone.localdate() - dt.timedelta(days=3),
        pdf=False,
    )
    Payment.objects.create(
        invoice=invoice,
        amount=Decimal("30.00"),
        received_on=timezone.localdate(),
        method=Payment.Method.IMPORT,
        bank_id="B-1",
        recorded_by=billing_user,
    )
    CreditNote.objects.create(
        number="CN-2099-000003",
        invoice=invoice,
        amount=Decimal("5.00"),
        reason="Rabais",
        issued_by=billing_user,
    )
    return invoice


def billing_entries(user: User, record: Patient) -> list[Entry]:
    _page, entries = timeline_page(get_patient_for_user(user, record.pk))
    return [entry for entry in entries if entry.kind in BILLING_KINDS]


def test_the_patient_sees_their_invoice_payment_and_credit_note(
    history: Invoice, record: Patient, patient: User
) -> None:
    entries = {entry.kind: entry for entry in billing_entries(patient, record)}
    assert set(entries) == BILLING_KINDS
    invoice = entries["invoice"]
    assert invoice.title == f"Invoice {history.number}"
    assert "80.00" in invoice.detail
    assert "overdue" in invoice.detail
    assert invoice.url == f"/invoices/{history.pk}/"
    assert "30.00" in entries["payment"].detail
    assert history.number in entries["payment"].detail
    assert "Rabais" in entries["credit_note"].detail


def test_the_care_team_does_not_see_billing_in_the_chart(
    history: Invoice, record: Patient, clinician: User
) -> None:
    assert billing_entries(clinician, record) == []


def test_another_patients_invoices_never_show(
    history: Invoice, record2: Patient, patient2: User
) -> None:
    make_invoice(record2, coverage=None, pdf=False)
    mine = billing_entries(patient2, record2)
    assert [entry.kind for entry in mine] == ["invoice"]
    assert history.number not in mine[0].title


def test_the_patients_timeline_page_links_to_the_invoice(history: Invoice, patient: User) -> None:
    page = client_for(patient).get("/record/timeline/").content.decode()
    assert f"Invoice {history.number}" in page
    assert f"/invoices/{history.pk}/" in page
