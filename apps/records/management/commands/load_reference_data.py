"""Load codes, medications and interactions from fixtures/reference/ (idempotent).

Prints one JSON line: the entries of each file, then how many rows were created, updated and
left unchanged. Nothing is written when any file is invalid; the problems go to stderr.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.records.reference import ReferenceDataError, load_reference_data


class Command(BaseCommand):
    help = "Load the reference data (LOINC, ICD-10, SNOMED CT, medications, interactions)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--directory",
            help="Folder holding the JSON files (default: fixtures/reference).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = load_reference_data(options["directory"])
        except ReferenceDataError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(counts))
