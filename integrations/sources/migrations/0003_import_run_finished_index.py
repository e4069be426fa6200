"""An index on ImportRun.finished_at: /metrics counts the runs finished in its window and the active
ones (finished_at IS NULL) at every scrape.

Built CONCURRENTLY (so outside a transaction): writers of a large existing table are not blocked
while it builds.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sources", "0002_import_run_phase_fits_cohort_names"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="importrun",
            index=models.Index(fields=["finished_at"], name="import_run_finished"),
        ),
    ]
