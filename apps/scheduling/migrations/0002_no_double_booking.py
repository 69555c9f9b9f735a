"""Exclusion constraints against double booking (PostgreSQL; SQLite relies on the service)."""

from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations

CONSTRAINTS = [
    (
        "scheduling_appointment",
        "appointment_patient_no_overlap",
        "EXCLUDE USING gist (patient_id WITH =, tstzrange(starts_at, ends_at) WITH &&) "
        "WHERE (status IN ('proposed', 'booked', 'arrived'))",
    ),
    (
        "scheduling_participant",
        "participant_no_double_booking",
        "EXCLUDE USING gist (user_id WITH =, tstzrange(starts_at, ends_at) WITH &&) WHERE (active)",
    ),
]


def add(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, rule in CONSTRAINTS:
        schema_editor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {rule}")


def remove(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, _rule in CONSTRAINTS:
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0001_initial")]

    operations = [BtreeGistExtension(), migrations.RunPython(add, remove)]
