"""Workspace.retention: the workspace's own retention windows in days, where they differ from the
defaults (settings.RETENTION_DEFAULT_DAYS)."""

from django.db import migrations, models

import workspaces.models


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0002_setup_request"),
    ]

    operations = [
        migrations.AddField(
            model_name="workspace",
            name="retention",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Days kept per kind of data, where this workspace differs from the defaults, e.g. {"events": 365}. Kinds: inbound_bodies, events, delivery_rows, run_detail, partner_calls (docs/operations.md, Retention).',
                validators=[workspaces.models.validate_retention],
            ),
        ),
    ]
