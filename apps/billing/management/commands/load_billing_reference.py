"""Load the tariff catalogue, insurers and point values from fixtures/billing/ (idempotent).

Prints one JSON line: the entries of each section, then how many rows were created, updated
and kept. Rows already there are kept as administrators left them unless `--update`. Nothing
is written when the file is invalid; the problems go to stderr.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.billing.reference import load_billing_reference
from apps.records.reference import ReferenceDataError


class Command(BaseCommand):
    help = "Load the billing reference data (tariffs, codes, insurers, point values)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", help="The catalogue JSON file (default: fixtures/billing/catalogue.json)."
        )
        parser.add_argument(
            "--update",
            action="store_true",
            help="Make the rows the file names match it again (overrides changes made in the "
            "admin).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = load_billing_reference(options["file"], update=options["update"])
        except ReferenceDataError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(counts))
