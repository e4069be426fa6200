"""Kochava streams: a heartbeat while a pass runs, and what lost workers may have re-sent
(in_flight_limit, resend_bound, lost_note). Columns with constant defaults: no rewrite."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kochava", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="kochavastream",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="kochavastream",
            name="in_flight_limit",
            field=models.IntegerField(default=0, help_text="Events a pass may have sent but not yet recorded."),
        ),
        migrations.AddField(
            model_name="kochavastream",
            name="lost_note",
            field=models.TextField(blank=True, help_text="What happened when a worker streaming this was lost."),
        ),
        migrations.AddField(
            model_name="kochavastream",
            name="resend_bound",
            field=models.BigIntegerField(
                default=0, help_text="Events that lost workers may have sent twice: at most what they had in flight."
            ),
        ),
    ]
