"""`manage.py bench_signalling`: relay latency of video-call signalling; prints one JSON object.

Runs one daphne server process against the configured PostgreSQL and Redis (channels-redis),
opens `--rooms` × 2 WebSocket clients (patient and clinician, the clinician admits the patient)
and times `signal` messages between them; see apps/teleconsult/bench.py for what is measured.
Progress goes to stderr, the JSON result alone to stdout. The seeded rows are deleted at the end
(the audit rows stay), so it can run again.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.teleconsult.bench import BenchError, Options, run


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _rate(value: str) -> float:
    number = float(value)
    if not 0 < number <= 25:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Benchmark the video-call signalling (relay latency between two browsers' sockets)."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = Options()
        parser.add_argument(
            "--rooms", type=_positive, default=defaults.rooms, help="rooms (two clients each)"
        )
        parser.add_argument(
            "--messages",
            type=_positive,
            default=defaults.messages,
            help="signal messages each client sends to the other side of its room",
        )
        parser.add_argument(
            "--rate",
            type=_rate,
            default=defaults.rate,
            help="messages per second per client (at most 25: the socket rate limit is "
            "TELECONSULT_SIGNAL_RATE per 10 s)",
        )
        parser.add_argument(
            "--payload",
            type=_positive,
            default=defaults.payload,
            help="bytes of filler in each message (an ICE candidate is ~300, an SDP ~3000)",
        )
        parser.add_argument(
            "--connect-concurrency",
            type=_positive,
            default=defaults.connect_concurrency,
            help="rooms connecting at the same time",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bench_options = Options(
            rooms=options["rooms"],
            messages=options["messages"],
            rate=options["rate"],
            payload=options["payload"],
            connect_concurrency=options["connect_concurrency"],
        )
        try:
            result = run(bench_options, self._progress)
        except BenchError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result))

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_signalling: {message}")
