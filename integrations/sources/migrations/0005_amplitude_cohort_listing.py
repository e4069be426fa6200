"""The cohorts Amplitude last listed per project, for the console's cohort picker (a new, small table:
hundreds of rows per project; integrations.sources.cohorts.remember_listing)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sources", "0004_amplitudeproject_base_url_policy"),
    ]

    operations = [
        migrations.CreateModel(
            name="AmplitudeCohort",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("cohort_id", models.CharField(max_length=255)),
                ("name", models.CharField(blank=True, max_length=500)),
                ("size", models.BigIntegerField(blank=True, null=True)),
                ("last_computed", models.DateTimeField(blank=True, null=True)),
                ("archived", models.BooleanField(default=False)),
                ("listed_at", models.DateTimeField(help_text="When Amplitude last listed it.")),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="cohorts",
                        to="sources.amplitudeproject",
                    ),
                ),
            ],
            options={
                "ordering": ["project", "name"],
                "constraints": [
                    models.UniqueConstraint(fields=("project", "cohort_id"), name="amplitude_cohort_unique")
                ],
            },
        ),
    ]
