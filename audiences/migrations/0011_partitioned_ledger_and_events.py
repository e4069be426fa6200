"""The membership ledger and the events become monthly partitions (audiences.partitions).

Each table is rebuilt in this migration's transaction: renamed, a partitioned table of the same
columns made with a partition per month that holds rows (plus the months ahead and a default one),
every row copied with its id, the id sequence carried on from where it was, the indexes built, the
old table dropped. Nothing refers to these rows through a database foreign key; what refers to them
by id (sync cursors, delivery runs, Kochava streams and outcomes) finds the same ids afterwards.

An event that had no time takes its upload time, else its arrival (event_time is now part of the
primary key). Writers wait while it runs: docs/operations.md gives the time per million rows.
"""

import django.db.models.functions.datetime
from django.db import migrations, models

from audiences.partitions import EVENTS, LEDGER, convert_to_partitioned, convert_to_plain


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for spec in (LEDGER, EVENTS):
            convert_to_partitioned(cursor, spec)


def backwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for spec in (LEDGER, EVENTS):
            convert_to_plain(cursor, spec)


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0010_identity_value_collated_c"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.RemoveConstraint(model_name="event", name="event_uuid_unique"),
                migrations.RemoveConstraint(model_name="event", name="event_insert_id_unique"),
                migrations.AlterField(
                    model_name="event",
                    name="event_time",
                    field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("uuid__isnull", False)),
                        fields=("workspace", "uuid", "event_time"),
                        name="event_uuid_unique",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("insert_id__isnull", False)),
                        fields=("workspace", "insert_id", "event_time"),
                        name="event_insert_id_unique",
                    ),
                ),
            ],
        ),
    ]
