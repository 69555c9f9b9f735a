"""Invoice numbers: per year, sequential without gaps, unique, even with concurrent generators;
and a charge is never invoiced twice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from apps.accounts.models import User
from apps.billing.models import BillingRun, ChargeItem, Invoice, InvoiceLine, InvoiceSequence
from apps.billing.services import BillingError
from apps.billing.services.invoices import (
    do_generate_invoice,
    format_number,
    next_number,
    run_billing,
)
from apps.records.models import Patient

pytestmark = pytest.mark.usefixtures("billing_profile")

THREADS = 10


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    yield


def in_threads(work: Callable[[int], Any], count: int = THREADS) -> list[Any]:
    """Run work(0..count-1) in threads released together; each result or raised exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_numbers_are_formatted_per_series() -> None:
    assert format_number("IN", 2026, 42) == "2026-000042"
    assert format_number("CN", 2026, 7) == "CN-2026-000007"


@pytest.mark.django_db
def test_next_number_counts_per_series_and_year() -> None:
    with transaction.atomic():
        assert next_number("IN", 2026) == ("2026-000001", 1)
        assert next_number("IN", 2026) == ("2026-000002", 2)
        assert next_number("CN", 2026) == ("CN-2026-000001", 1)
        assert next_number("IN", 2027) == ("2027-000001", 1)
    assert InvoiceSequence.objects.get(series="IN", year=2026).last == 2


@pytest.mark.django_db
def test_a_rolled_back_number_is_given_back() -> None:
    with transaction.atomic():
        next_number("IN", 2026)
    with pytest.raises(RuntimeError), transaction.atomic():
        next_number("IN", 2026)
        raise RuntimeError("the invoice failed")
    with transaction.atomic():
        assert next_number("IN", 2026) == ("2026-000002", 2)


def test_next_number_outside_a_transaction_is_refused(transactional_db: None) -> None:
    with pytest.raises(RuntimeError):
        next_number("IN", 2026)


@pytest.mark.django_db(transaction=True)
def test_concurrent_generations_give_unique_gapless_numbers(
    billing_user: User,
    make_patient: Callable[..., Patient],
    make_charge: Callable[..., ChargeItem],
) -> None:
    # given: 10 generators, each with its own 3 patients
    per_thread = 3
    patients = [[make_patient() for _ in range(per_thread)] for _ in range(THREADS)]
    for group in patients:
        for chart in group:
            make_charge(chart)
            make_charge(chart, "video_more", 2, "16.05")

    # when
    def generate(index: int) -> list[str]:
        return [do_generate_invoice(billing_user, chart.pk).number for chart in patients[index]]

    results = in_threads(generate)

    # then
    errors = [result for result in results if isinstance(result, BaseException)]
    assert errors == []
    invoices = list(Invoice.objects.order_by("sequence"))
    expected = THREADS * per_thread
    assert [invoice.sequence for invoice in invoices] == list(range(1, expected + 1))
    assert len({invoice.number for invoice in invoices}) == expected
    assert len({invoice.reference for invoice in invoices}) == expected
    assert sorted(number for numbers in results for number in numbers) == sorted(
        invoice.number for invoice in invoices
    )
    assert InvoiceSequence.objects.get(series="IN").last == expected
    assert not ChargeItem.objects.exclude(status=ChargeItem.Status.INVOICED).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_billing_runs_never_invoice_a_charge_twice(
    billing_user: User,
    make_patient: Callable[..., Patient],
    make_charge: Callable[..., ChargeItem],
) -> None:
    # given: 10 batch runs of the same organisation at once, over the same 12 patients
    charts = [make_patient() for _ in range(12)]
    charges = [make_charge(chart) for chart in charts] + [make_charge(c) for c in charts[:4]]
    runs = [
        BillingRun.objects.create(organization=billing_user.organization, started_by=billing_user)
        for _ in range(THREADS)
    ]

    # when
    results = in_threads(lambda index: run_billing(runs[index].pk))

    # then: one invoice per patient, every charge on exactly one invoice and one line
    assert not [result for result in results if isinstance(result, BaseException)]
    invoices = list(Invoice.objects.order_by("sequence"))
    assert sorted(invoice.patient_id for invoice in invoices) == sorted(c.pk for c in charts)
    assert [invoice.sequence for invoice in invoices] == list(range(1, len(charts) + 1))
    for charge in charges:
        charge.refresh_from_db()
        assert charge.status == ChargeItem.Status.INVOICED
        assert InvoiceLine.objects.filter(charge=charge, invoice=charge.invoice_id).count() == 1
    assert InvoiceLine.objects.count() == len(charges)
    # Every patient was invoiced by exactly one of the runs; the others reported it.
    for run in BillingRun.objects.all():
        assert run.status == BillingRun.Status.DONE
        assert run.done + run.failed == run.total
    assert sum(run.done for run in BillingRun.objects.all()) == len(charts)


@pytest.mark.django_db(transaction=True)
def test_concurrent_generations_for_one_patient_make_one_invoice(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    charges = [make_charge(record) for _ in range(5)]

    results = in_threads(lambda index: do_generate_invoice(billing_user, record.pk))

    made = [result for result in results if isinstance(result, Invoice)]
    refused = [result for result in results if isinstance(result, BillingError)]
    assert len(made) == 1
    assert len(refused) == THREADS - 1
    invoice = Invoice.objects.get()
    assert invoice.sequence == 1
    assert invoice.lines.count() == len(charges)
    assert set(ChargeItem.objects.values_list("invoice_id", flat=True)) == {invoice.pk}
