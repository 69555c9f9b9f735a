"""Re-encrypt with the newest key everything sealed with an older one.

Put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it), run this command,
then drop the old keys once it reports no failure. Covers the record's document files and
thumbnails, and every `EncryptedTextField` column of every installed model. Work is committed
batch by batch and each file is replaced atomically: an interrupted run is simply started again.
Progress goes to stderr, a JSON summary to stdout; the exit status is 1 when something failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction

from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core import crypto
from apps.core.fields import EncryptedTextField
from apps.records.models import DocumentReference
from apps.records.services.documents import do_reseal_document

# Identifiers of failed rows kept in the summary (the count is always complete).
MAX_LISTED = 50


def encrypted_columns() -> Iterator[tuple[type[models.Model], models.Field[Any, Any]]]:
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed:
            continue
        for field in meta.local_concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


class Command(BaseCommand):
    help = "Re-encrypt stored files and encrypted text with the newest FIELD_ENCRYPTION_KEYS key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=200, help="rows per batch (default 200)")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would change, write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch = options["batch"]
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        dry_run = bool(options["dry_run"])
        summary: dict[str, Any] = {
            "dry_run": dry_run,
            "key_id": crypto.current_key_id(),
            "documents": self._documents(batch, dry_run),
            "fields": {},
        }
        for model, field in encrypted_columns():
            label = f"{model._meta.label_lower}.{field.name}"
            summary["fields"][label] = self._column(model, field, batch, dry_run)
        failed = summary["documents"]["failed"] + summary["documents"]["missing"]
        failed += sum(column["failed"] for column in summary["fields"].values())
        summary["failed"] = failed
        if not dry_run:
            audit(
                Action.UPDATE,
                object_type="core.encryption-keys",
                detail={
                    "rotation": summary["key_id"],
                    "files": summary["documents"]["files_resealed"],
                    "values": sum(c["resealed"] for c in summary["fields"].values()),
                    "failed": failed,
                },
            )
        self.stdout.write(json.dumps(summary, sort_keys=True))
        if failed:
            raise CommandError(f"{failed} item(s) could not be re-encrypted; see the summary.")

    def _progress(self, label: str, stats: dict[str, Any]) -> None:
        counts = ", ".join(f"{k} {v}" for k, v in stats.items() if not isinstance(v, list))
        self.stderr.write(f"{label}: {counts}")

    def _documents(self, batch: int, dry_run: bool) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "checked": 0,
            "files_resealed": 0,
            "missing": 0,
            "failed": 0,
            "failed_ids": [],
        }
        last = 0
        while True:
            chunk = list(
                DocumentReference.objects.filter(pk__gt=last)
                .only("pk", "storage_name", "thumbnail_name", "key_id")
                .order_by("pk")[:batch]
            )
            if not chunk:
                break
            for document in chunk:
                stats["checked"] += 1
                try:
                    stats["files_resealed"] += do_reseal_document(document, dry_run=dry_run)
                except FileNotFoundError:
                    stats["missing"] += 1
                    self._remember(stats, document.pk)
                except (crypto.DecryptionError, OSError, ValueError):
                    stats["failed"] += 1
                    self._remember(stats, document.pk)
            last = chunk[-1].pk
            self._progress("documents", stats)
        return stats

    def _column(
        self, model: type[models.Model], field: models.Field[Any, Any], batch: int, dry_run: bool
    ) -> dict[str, Any]:
        """Read the raw blobs (the field itself would decrypt them) and reseal the old ones."""
        quote = connection.ops.quote_name
        pk_column = model._meta.pk.column  # type: ignore[union-attr]
        table, pk, column = quote(model._meta.db_table), quote(pk_column), quote(field.column)
        # Identifiers come from the models' metadata, quoted; values are parameters.
        select = (
            f"SELECT {pk}, {column} FROM {table} "  # noqa: S608
            f"WHERE {pk} > %s AND {column} IS NOT NULL ORDER BY {pk} LIMIT %s"
        )
        update = f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s"  # noqa: S608
        stats: dict[str, Any] = {"checked": 0, "resealed": 0, "failed": 0, "failed_ids": []}
        last: Any = None
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                if last is None:
                    cursor.execute(
                        f"SELECT {pk}, {column} FROM {table} "  # noqa: S608
                        f"WHERE {column} IS NOT NULL ORDER BY {pk} LIMIT %s",
                        [batch],
                    )
                else:
                    cursor.execute(select, [last, batch])
                rows = cursor.fetchall()
                for row_pk, raw in rows:
                    stats["checked"] += 1
                    blob = bytes(raw)
                    try:
                        if not crypto.needs_reseal(blob):
                            continue
                        fresh = crypto.reseal(blob)
                    except crypto.DecryptionError:
                        stats["failed"] += 1
                        self._remember(stats, row_pk)
                        continue
                    stats["resealed"] += 1
                    if not dry_run:
                        # Only if unchanged meanwhile: a concurrent edit already used the new key.
                        cursor.execute(update, [fresh, row_pk, blob])
            if not rows:
                break
            last = rows[-1][0]
            self._progress(f"{model._meta.label_lower}.{field.name}", stats)
        return stats

    @staticmethod
    def _remember(stats: dict[str, Any], pk: Any) -> None:
        if len(stats["failed_ids"]) < MAX_LISTED:
            stats["failed_ids"].append(pk)
