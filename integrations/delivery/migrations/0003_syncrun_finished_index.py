"""An index on SyncRun.finished_at: /metrics counts the runs finished in its window and the active
ones (finished_at IS NULL) at every scrape, and a realtime sync adds a run a minute.

Built CONCURRENTLY (so outside a transaction): writers of a large existing table are not blocked
while it builds.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("delivery", "0002_deliveryrow_carry_over_hot_updates"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="syncrun",
            index=models.Index(fields=["finished_at"], name="syncrun_finished"),
        ),
    ]
