"""`manage.py bench_records`: it measures the record's pages and leaves no bench data behind."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.accounts.models import Organization, User
from apps.audit.models import AuditEvent
from apps.records.models import ClinicalNote, DocumentReference, Observation, Patient

PAGES = {"chart", "results", "timeline", "timeline_observations_page_50"}


def _run(*args: str) -> dict[str, Any]:
    stdout, stderr = StringIO(), StringIO()
    call_command(
        "bench_records",
        "--patients=12",
        "--observations=40",
        "--notes=5",
        "--documents=2",
        "--background=2",
        "--requests=3",
        *args,
        stdout=stdout,
        stderr=stderr,
    )
    assert "bench_records:" in stderr.getvalue()  # progress goes to stderr, not into the JSON
    result: dict[str, Any] = json.loads(stdout.getvalue())
    return result


@pytest.mark.django_db
def test_bench_prints_page_figures_and_removes_its_data(settings: Any, tmp_path: Path) -> None:
    # given
    settings.MEDIA_ROOT = tmp_path
    audit_before = AuditEvent.objects.count()

    # when
    result = _run()

    # then
    assert result["database"]
    assert result["seeded"]["observations"] == 40
    assert set(result["pages"]) == PAGES
    for figures in result["pages"].values():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
        assert figures["queries"] > 0
        assert figures["requests"] == 3
    assert "page=50" in result["pages"]["timeline_observations_page_50"]["url"]
    # Each page view is audited, each upload too; the trail keeps them.
    added = AuditEvent.objects.count() - audit_before
    assert added == result["audit_rows_added"] >= 4 * 4 + 2
    assert not Organization.objects.filter(name="Bench").exists()
    assert not Patient.objects.exists()
    assert not User.objects.filter(email__endswith="@bench.invalid").exists()
    assert not Observation.objects.exists()
    assert not ClinicalNote.objects.exists()
    assert not DocumentReference.objects.exists()
    assert not any((tmp_path / "records").glob("*.bin"))


@pytest.mark.django_db
def test_bench_keeps_its_data_when_asked(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path

    result = _run("--keep")

    patient = Patient.objects.get(pk=result["kept"]["patient"])
    assert patient.organization_id == result["kept"]["organization"]
    assert Patient.objects.filter(organization_id=result["kept"]["organization"]).count() == 12
    assert Observation.objects.filter(patient=patient).count() == 40
    assert ClinicalNote.objects.filter(patient=patient).count() == 5
    assert DocumentReference.objects.filter(patient=patient).count() == 2
