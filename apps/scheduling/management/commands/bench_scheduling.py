"""`manage.py bench_scheduling`: free-slot search and the team agenda; prints one JSON object.

Seeds `--practitioners` clinicians with `--weeks` of availability and `--booked-share` of their
slots booked, measures (see apps/scheduling/bench.py) and deletes the bench rows unless
`--keep`. Progress goes to stderr, the JSON result alone to stdout. Run it on a database you
can throw away; the audit rows written meanwhile stay.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.scheduling.bench import BenchError, Options, run


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Benchmark free-slot search and the team agenda on a seeded clinic."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = Options()
        parser.add_argument("--practitioners", type=_positive, default=defaults.practitioners)
        parser.add_argument(
            "--weeks", type=_positive, default=defaults.weeks, help="weeks of availability"
        )
        parser.add_argument(
            "--booked-share",
            type=_share,
            default=defaults.booked_share,
            help="share of the grid slots booked (default 0.4)",
        )
        parser.add_argument("--patients", type=_positive, default=defaults.patients)
        parser.add_argument(
            "--runs", type=_positive, default=defaults.runs, help="runs of each slot search"
        )
        parser.add_argument(
            "--agenda-runs",
            type=_positive,
            default=defaults.agenda_runs,
            help="requests of the team agenda's week page",
        )
        parser.add_argument(
            "--team-size",
            type=_positive,
            default=defaults.team_size,
            help="clinicians shown in the team agenda",
        )
        parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
        parser.add_argument("--keep", action="store_true", help="leave the bench rows in place")

    def handle(self, *args: Any, **options: Any) -> None:
        bench_options = Options(
            practitioners=options["practitioners"],
            weeks=options["weeks"],
            booked_share=options["booked_share"],
            patients=options["patients"],
            runs=options["runs"],
            agenda_runs=options["agenda_runs"],
            team_size=options["team_size"],
            keep=options["keep"],
            seed=options["seed"],
        )
        try:
            result = run(bench_options, self._progress)
        except BenchError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result))

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_scheduling: {message}")
