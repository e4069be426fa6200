"""A (segment, id) index on the members table: a segment's members newest first, in keyset pages
(the segment page, the API's member list). Without it a 1M-member segment's first page walked the
members table backwards from its newest row (bench/scale).

Built CONCURRENTLY, so writers (pushes, imports) are not held up while it builds on a big table.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("audiences", "0011_partitioned_ledger_and_events"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="segmentmember",
            index=models.Index(fields=["segment", "id"], name="segment_member_newest"),
        ),
    ]
