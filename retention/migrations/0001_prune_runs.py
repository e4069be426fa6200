"""PruneRun: what each pruning (retention.prune) removed, for ops in the admin."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="PruneRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("dry_run", models.BooleanField(default=False, help_text="Counted what would go; removed nothing.")),
                ("trigger", models.CharField(default="schedule", help_text="schedule or command", max_length=16)),
                (
                    "removed",
                    models.JSONField(blank=True, default=dict, help_text="Rows (or bodies) per category and table."),
                ),
                ("dropped_partitions", models.JSONField(blank=True, default=list)),
                ("error", models.TextField(blank=True)),
            ],
            options={
                "verbose_name": "pruning",
                "ordering": ["-id"],
            },
        ),
    ]
