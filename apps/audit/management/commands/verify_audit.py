import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.services import do_checkpoint, verify_chain


class Command(BaseCommand):
    help = "Check that the audit trail is intact (no row altered, removed or reordered)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--checkpoint",
            action="store_true",
            help="when intact, also record the current head as a checkpoint",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "intact": report.intact,
                        "checked": report.checked,
                        "head_seq": report.head_seq,
                        "head_hash": report.head_hash,
                        "problems": report.problems,
                    }
                )
            )
        elif report.intact:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Audit trail intact: {report.checked} events, "
                    f"head #{report.head_seq} {report.head_hash}"
                )
            )
        if not report.intact:
            for problem in report.problems if not options["json"] else []:
                self.stderr.write(problem)
            raise CommandError(f"Audit trail NOT intact: {len(report.problems)} problem(s)")
        if options["checkpoint"]:
            do_checkpoint()
