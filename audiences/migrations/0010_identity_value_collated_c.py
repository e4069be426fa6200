"""Identity.value in byte order (collation "C"), so that a person search by the start of an identity
value is a range of the unique (workspace, kind, value) index whatever the database's collation.

Equality does not change (every deterministic collation compares bytes for equality), so the unique
constraint keeps its meaning. PostgreSQL keeps the rows (same type) and rebuilds the indexes on the
column: on a big table, run it in a quiet hour.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0009_erasure"),
    ]

    operations = [
        migrations.AlterField(
            model_name="identity",
            name="value",
            field=models.CharField(db_collation="C", max_length=512),
        ),
    ]
