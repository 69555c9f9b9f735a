"""`manage.py bench_ingest` with tiny numbers: the figures come out and nothing is left behind."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from apps.accounts.models import Organization, User
from apps.audit.models import AuditEvent
from apps.audit.services import verify_chain
from apps.devices.models import Alert, DeadLetter, Device, DeviceMessage, ThresholdRule
from apps.records.models import Observation, Patient

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = {
    "readings_per_s",
    "copy_rows_per_s",
    "ratio",
    "lost",
    "duplicated",
    "dead_lettered",
    "alert_p50_ms",
    "alert_p99_ms",
    "ingestor_rss_mb",
}


def test_the_benchmark_measures_and_cleans_up() -> None:
    # given an empty database (but for the reference data the command loads)
    devices_before = Device.objects.count()

    # when the benchmark runs with tiny numbers
    stdout, stderr = StringIO(), StringIO()
    call_command(
        "bench_ingest",
        *("--readings", "300", "--devices", "5"),
        *("--alert-seconds", "3", "--alert-rate", "50"),
        stdout=stdout,
        stderr=stderr,
    )

    # then one JSON object on stdout, progress on stderr
    result: dict[str, Any] = json.loads(stdout.getvalue())
    assert KEYS <= set(result)
    assert "bench_ingest:" in stderr.getvalue()
    assert result["readings"] == 300
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["dead_lettered"] == 0
    assert result["readings_per_s"] > 0 and result["copy_rows_per_s"] > 0
    assert result["alerts"] > 0
    assert 0 < result["alert_p50_ms"] <= result["alert_p99_ms"]
    assert result["ingestor_rss_mb"] > 0

    # and no bench row is left
    assert not Organization.objects.filter(name="Bench").exists()
    assert not Patient.objects.filter(family_name__startswith="Bench-").exists()
    assert not User.objects.filter(email__endswith="@bench.invalid").exists()
    assert Device.objects.count() == devices_before
    assert not DeviceMessage.objects.exists()
    assert not Observation.objects.exists()
    assert not DeadLetter.objects.exists()
    assert not Alert.objects.exists()
    assert not ThresholdRule.objects.exists()

    # and the audit rows the two ingestors appended in batches chain correctly
    assert AuditEvent.objects.filter(object_type="devices.reading").exists()
    report = verify_chain()
    assert report.intact, report.problems
