"""Import runs get a heartbeat their worker touches every few seconds; a stale one means the worker was
lost (integrations.run_heartbeat). A nullable column: no table rewrite."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sources", "0005_amplitude_cohort_listing"),
    ]

    operations = [
        migrations.AddField(
            model_name="importrun",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
