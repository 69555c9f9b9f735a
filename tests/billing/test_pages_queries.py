"""The billing lists make a fixed number of queries, however many rows they show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import User
from apps.billing.models import ChargeItem, Payment
from apps.records.models import Encounter, Patient

from .pages_support import client_for, make_invoice


def count_queries(client: Client, url: str) -> int:
    # The first request of a session also updates it; only the page's own queries count.
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.fixture
def patients(make_patient: Callable[..., Patient], record: Patient) -> list[Patient]:
    return [record, *(make_patient() for _n in range(5))]


def test_the_workspace_does_not_grow_with_patients(
    billing_user: User,
    billing_profile: Any,
    patients: list[Patient],
    make_charge: Callable[..., ChargeItem],
) -> None:
    client = client_for(billing_user)
    make_charge(patients[0])
    one = count_queries(client, "/billing/")
    for patient in patients[1:]:
        make_charge(patient)
        make_charge(patient, code="video_more", quantity=2)
    assert count_queries(client, "/billing/") == one


def test_the_invoice_list_does_not_grow_with_invoices(
    billing_user: User, patients: list[Patient]
) -> None:
    client = client_for(billing_user)
    make_invoice(patients[0], pdf=False)
    one = count_queries(client, "/billing/invoices/?status=open")
    for patient in patients:
        make_invoice(patient, pdf=False)
        make_invoice(patient, pdf=False)
    assert count_queries(client, "/billing/invoices/?status=open") == one


def test_the_payments_page_does_not_grow_with_payments(
    billing_user: User, patients: list[Patient]
) -> None:
    client = client_for(billing_user)

    def pay(invoice: Any = None) -> None:
        Payment.objects.create(
            invoice=invoice,
            amount=1,
            received_on=timezone.localdate(),
            method=Payment.Method.MANUAL,
            recorded_by=billing_user,
        )

    pay()
    pay(make_invoice(patients[0], pdf=False))
    one = count_queries(client, "/billing/payments/")
    for patient in patients:
        pay()
        pay(make_invoice(patient, pdf=False))
    assert count_queries(client, "/billing/payments/") == one


def test_the_aging_report_does_not_grow_with_overdue_invoices(
    billing_user: User, patients: list[Patient]
) -> None:
    client = client_for(billing_user)
    late = timezone.localdate() - dt.timedelta(days=40)
    make_invoice(patients[0], due_date=late, pdf=False)
    one = count_queries(client, "/billing/aging/")
    for patient in patients:
        make_invoice(patient, due_date=late, pdf=False)
    assert count_queries(client, "/billing/aging/") == one


def test_the_review_list_does_not_grow_with_acts(
    clinician: User,
    patients: list[Patient],
    make_charge: Callable[..., ChargeItem],
    make_encounter: Callable[..., Encounter],
) -> None:
    from apps.records.services.care_team import default_team, do_add_member

    client = client_for(clinician)
    for patient in patients[1:]:
        do_add_member(default_team(patient), clinician)

    def act(patient: Patient) -> None:
        encounter = make_encounter(patient)
        for code in ("video_base", "video_more"):
            make_charge(patient, code=code, status=ChargeItem.Status.PROPOSED, encounter=encounter)

    act(patients[0])
    one = count_queries(client, "/clinic/charges/")
    for patient in patients:
        act(patient)
    assert count_queries(client, "/clinic/charges/") == one


def test_the_patients_list_does_not_grow_with_invoices(patient: User, record: Patient) -> None:
    client = client_for(patient)
    make_invoice(record, pdf=False)
    one = count_queries(client, "/invoices/")
    for _n in range(6):
        make_invoice(record, pdf=False)
    assert count_queries(client, "/invoices/") == one
