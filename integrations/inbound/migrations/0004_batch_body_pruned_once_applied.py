"""An applied batch's body may be cleared by the pruning (retention.prune, "inbound_bodies"): the
column becomes nullable (a catalog change, no rewrite) and a small partial index lists the applied
bodies still kept by when they were applied, so each pruning reads only what it clears."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0011_partitioned_ledger_and_events"),
        ("inbound", "0003_batch_scope_indexes"),
        ("integrations", "0003_authorization_provider_choices_from_registry"),
        ("workspaces", "0003_workspace_retention"),
    ]

    operations = [
        migrations.AlterField(
            model_name="inboundbatch",
            name="body",
            field=models.BinaryField(null=True),
        ),
        migrations.AddIndex(
            model_name="inboundbatch",
            index=models.Index(
                condition=models.Q(("body__isnull", False), ("status", "applied")),
                fields=["applied_at"],
                name="inbound_batch_body_kept",
            ),
        ),
    ]
