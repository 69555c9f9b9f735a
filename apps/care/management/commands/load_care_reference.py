"""Load the care reference data from fixtures/care/ (idempotent): questionnaires, pathways,
decision-support rules.

Prints one JSON line with the counts of each part. Nothing is written when any file is
invalid; the problems go to stderr.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.care.reference import load_care_reference
from apps.records.reference import ReferenceDataError


class Command(BaseCommand):
    help = "Load the care pathways, questionnaires and decision-support rules."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--directory", help="Folder holding the JSON files (default: fixtures/care)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = load_care_reference(options["directory"])
        except ReferenceDataError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(counts, default=str))
