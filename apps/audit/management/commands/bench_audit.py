"""Measure audit writes (single writer and concurrent writers) and chain verification."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, connections

from apps.audit.models import Action, AuditEvent
from apps.audit.services import record, verify_chain


def _write(n: int, label: str) -> list[float]:
    latencies = []
    try:
        for i in range(n):
            started = time.perf_counter()
            record(
                Action.READ, object_type="bench.item", object_id=f"{label}-{i}", patient_id="bench"
            )
            latencies.append(time.perf_counter() - started)
    finally:
        connections.close_all()
    return latencies


class Command(BaseCommand):
    help = "Benchmark the audit trail; prints one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=2000)
        parser.add_argument("--writers", type=int, default=4)

    def handle(self, *args: Any, **options: Any) -> None:
        events, writers = options["events"], options["writers"]
        before = AuditEvent.objects.count()

        started = time.perf_counter()
        single = _write(events, "single")
        single_seconds = time.perf_counter() - started

        per_writer = events // writers
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=writers) as pool:
            results = list(pool.map(lambda w: _write(per_writer, f"w{w}"), range(writers)))
        concurrent_seconds = time.perf_counter() - started
        concurrent = [latency for batch in results for latency in batch]

        started = time.perf_counter()
        report = verify_chain()
        verify_seconds = time.perf_counter() - started

        def ms(values: list[float], q: float) -> float:
            return round(statistics.quantiles(values, n=100)[int(q) - 1] * 1000, 3)

        self.stdout.write(
            json.dumps(
                {
                    "database": connection.vendor,
                    "events_before": before,
                    "single_writer": {
                        "events": events,
                        "per_second": round(events / single_seconds, 1),
                        "p50_ms": ms(single, 50),
                        "p99_ms": ms(single, 99),
                    },
                    "concurrent_writers": {
                        "writers": writers,
                        "events": per_writer * writers,
                        "per_second": round(per_writer * writers / concurrent_seconds, 1),
                        "p50_ms": ms(concurrent, 50),
                        "p99_ms": ms(concurrent, 99),
                    },
                    "verify": {
                        "events": report.checked,
                        "seconds": round(verify_seconds, 3),
                        "per_second": round(report.checked / verify_seconds, 1),
                        "intact": report.intact,
                    },
                },
                indent=2,
            )
        )
