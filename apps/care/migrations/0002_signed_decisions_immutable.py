"""On PostgreSQL, reject any UPDATE or DELETE of a signed meeting decision at the database
level, whatever code path tries it (the model's save() guard covers the ORM only).
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION care_reject_signed_change() RETURNS trigger AS $$
BEGIN
    IF OLD.signed_at IS NOT NULL THEN
        RAISE EXCEPTION 'a signed meeting decision is immutable: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

TABLE = "care_meetingdecision"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    schema_editor.execute(
        f"CREATE TRIGGER {TABLE}_signed BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION care_reject_signed_change()"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_signed ON {TABLE}")
    schema_editor.execute("DROP FUNCTION IF EXISTS care_reject_signed_change()")


class Migration(migrations.Migration):
    dependencies = [("care", "0001_initial")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
