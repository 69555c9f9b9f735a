"""`manage.py bench_ingest`: device ingestion end to end; prints one JSON object.

Runs against the real broker (MQTT_URL), PostgreSQL and Redis, with `--ingestors` real
`ingest_mqtt` processes and a daphne server; see apps/devices/bench.py for what is measured.
Progress goes to stderr, the JSON result alone to stdout. Run it on a database you can throw
away: the seeded rows are deleted at the end (unless `--keep`), the audit rows stay.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.devices.bench import BenchError, Options, run


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Benchmark the device ingestion (MQTT to PostgreSQL, alerts to a WebSocket)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--readings", type=_positive, default=200_000, help="readings of the throughput phase"
        )
        parser.add_argument(
            "--devices", type=_positive, default=500, help="devices (one patient each)"
        )
        parser.add_argument(
            "--readings-per-message",
            type=_positive,
            default=1,
            help="readings in each message of the throughput phase (default 1: one reading "
            "per message, the worst case; a gateway emptying a memory sends many)",
        )
        parser.add_argument(
            "--ingestors", type=_positive, default=2, help="ingest_mqtt processes (default 2)"
        )
        parser.add_argument(
            "--batch-size", type=_positive, default=500, help="the ingestors' --batch-size"
        )
        parser.add_argument(
            "--alert-rate", type=_positive, default=1000, help="readings/s of the alert phase"
        )
        parser.add_argument(
            "--alert-seconds", type=_seconds, default=20, help="length of the alert phase (s)"
        )
        parser.add_argument(
            "--max-backlog",
            type=_positive,
            default=1800,
            help="messages published and not yet stored, at most (keep it under the broker's "
            "max_queued_messages + the ingestors' receive maximum, 2 x batch size)",
        )
        parser.add_argument(
            "--keep", action="store_true", help="leave the bench rows in place (prints their ids)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bench_options = Options(
            readings=options["readings"],
            devices=options["devices"],
            readings_per_message=options["readings_per_message"],
            ingestors=options["ingestors"],
            batch_size=options["batch_size"],
            alert_rate=options["alert_rate"],
            alert_seconds=options["alert_seconds"],
            max_backlog=options["max_backlog"],
            keep=options["keep"],
        )
        try:
            result = run(bench_options, self._progress)
        except BenchError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result))

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_ingest: {message}")
