"""`manage.py bench_billing` at a tiny size: its report, its rounds, its safety, its clean-up."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.billing import bench
from apps.billing.management.commands.bench_billing import clean_up
from apps.billing.models import (
    BillingProfile,
    ChargeItem,
    Invoice,
    InvoiceSequence,
    TariffCode,
)
from apps.records.models import Patient

FIGURES = {
    "invoices",
    "seconds",
    "invoices_per_second",
    "invoice_ms",
    "pdf_ms",
    "pdf_bytes_avg",
    "queries_per_invoice",
    "memory",
    "seeded",
    "checks",
}


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def _run(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("bench_billing", *args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def _files(tmp_path: Path) -> list[Path]:
    return [path for path in (tmp_path / "media").rglob("*") if path.is_file()]


@pytest.mark.django_db
def test_the_report_gives_throughput_pdf_times_memory_and_queries(tmp_path: Path) -> None:
    result = _run("--invoices", "5")

    assert FIGURES <= set(result)
    assert result["invoices"] == 5
    assert result["seconds"] > 0 and result["invoices_per_second"] > 0
    for name in ("invoice_ms", "pdf_ms"):
        assert 0 < result[name]["p50"] <= result[name]["p95"] <= result[name]["max"]
    # The PDF is most of an invoice's time, never more than all of it.
    assert result["pdf_ms"]["p50"] <= result["invoice_ms"]["p50"]
    assert result["pdf_bytes_avg"] > 5000
    assert result["queries_per_invoice"] > 5
    memory = result["memory"]
    assert memory["peak_rss_mb"] > 0 and memory["measured"]
    checks = result["checks"]
    assert checks["invoices"] == checks["with_pdf"] == 5
    assert checks["gapless"] is True and checks["unique_references"] is True
    assert checks["pdfs_opened"].split("/")[0] == checks["pdfs_opened"].split("/")[1]
    assert checks["lines_per_invoice"] >= 2
    assert result["audit_rows_added"] >= 5
    # Everything seeded is gone, the sealed PDFs too; the catalogue (reference data) stays.
    assert not Organization.objects.filter(name=bench.ORGANIZATION_NAME).exists()
    assert not Invoice.objects.exists() and not ChargeItem.objects.exists()
    assert not Patient.objects.exists()
    assert not User.objects.filter(email__startswith=bench.EMAIL_PREFIX).exists()
    assert not _files(tmp_path)
    assert TariffCode.objects.exists()
    # The year's numbering starts again where it was.
    assert InvoiceSequence.objects.get(series="IN").last == 0


@pytest.mark.django_db
def test_fewer_patients_make_the_invoices_in_rounds(tmp_path: Path) -> None:
    result = _run("--invoices", "6", "--patients", "3", "--keep")

    assert result["kept"] is True
    assert result["seeded"]["patients"] == 3
    invoices = Invoice.objects.filter(organization__name=bench.ORGANIZATION_NAME)
    assert invoices.count() == 6
    assert {invoices.filter(patient=p).count() for p in Patient.objects.all()} == {2}
    numbers = sorted(invoices.values_list("sequence", flat=True))
    assert numbers == list(range(1, 7))
    assert len(_files(tmp_path)) == 6

    clean_up(lambda _message: None)

    assert not Invoice.objects.exists()
    assert not _files(tmp_path)


@pytest.mark.django_db
def test_it_refuses_a_database_with_other_patients(make_patient: Any) -> None:
    make_patient()

    with pytest.raises(CommandError, match="--yes"):
        _run("--invoices", "2")

    assert not Organization.objects.filter(name=bench.ORGANIZATION_NAME).exists()
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_with_yes_the_real_numbering_continues_without_a_gap(
    record: Patient, organization: Organization, billing_profile: BillingProfile
) -> None:
    # given a real invoice, number 7 of the year
    year = timezone.localdate().year
    InvoiceSequence.objects.create(series="IN", year=year, last=7)
    Invoice.objects.create(
        number=f"{year}-000007",
        year=year,
        sequence=7,
        patient=record,
        organization=organization,
        recipient=Invoice.Recipient.PATIENT,
        due_date=timezone.localdate() + dt.timedelta(days=30),
        net=Decimal("10.00"),
        vat=Decimal("0.00"),
        total=Decimal("10.00"),
        patient_share=Decimal("10.00"),
        insurer_share=Decimal("0.00"),
        amount_due=Decimal("10.00"),
        reference="000000000000000020260000077",
    )

    result = _run("--invoices", "2", "--yes")

    assert result["checks"]["gapless"] is True
    # the bench's invoices were numbers 8 and 9; once gone, the next real one is 8 again
    assert InvoiceSequence.objects.get(series="IN", year=year).last == 7
    assert Invoice.objects.get().number == f"{year}-000007"
