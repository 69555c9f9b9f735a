"""One database helper the follow-up jobs share: insert rows, skipping those whose natural key
exists, and know exactly how many this call inserted (even with another worker inserting the
same rows at the same moment, which `bulk_create(ignore_conflicts=True)` cannot tell)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models

BATCH = 500


def insert_new(
    model: type[models.Model], rows: Sequence[models.Model], conflict_fields: Sequence[str]
) -> int:
    """INSERT … ON CONFLICT (<natural key>) DO NOTHING RETURNING id; how many were new."""
    if not rows:
        return 0
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    by_name = {f.name: f for f in fields}
    conflict = ", ".join(quote(by_name[name].column) for name in conflict_fields)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    inserted = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            params: list[Any] = []
            for row in chunk:
                for f in fields:
                    params.append(f.get_db_prep_save(f.pre_save(row, add=True), connection))
            sql = (
                f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "  # noqa: S608 - names come from the model, values are parameters
                f"VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {quote(model._meta.pk.column)}"
            )
            cursor.execute(sql, params)
            inserted += len(cursor.fetchall())
    return inserted
