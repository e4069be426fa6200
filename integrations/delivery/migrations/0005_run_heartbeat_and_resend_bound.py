"""Sync runs: which worker attempt owns the run, how many rows may be sent but unrecorded at once, and
what lost workers may have re-sent (resend_bound, lost_note). Columns with constant defaults: no rewrite."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0004_partnercall_summary_for_users"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncrun",
            name="attempt",
            field=models.IntegerField(
                default=0, help_text="Workers that took the run (more than 1 after a lost worker)."
            ),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="in_flight_limit",
            field=models.IntegerField(
                default=0,
                help_text="Rows that may be sent but not yet recorded at any moment (requests in flight x rows).",
            ),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="lost_note",
            field=models.TextField(blank=True, help_text="What happened when a worker running this was lost."),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="resend_bound",
            field=models.IntegerField(
                default=0, help_text="Rows that lost workers may have sent twice: at most what they had in flight."
            ),
        ),
    ]
