"""The Kahuna and Kochava models move to their partner's app (integrations/connectors/kahuna, kochava).

State only: the tables keep their campaigns_* names and every row (the new apps' 0001 migrations
declare the same models with the same db_table). The content types move with the models, so admin
history and any permission granted on them keep pointing at the right model.
"""

from django.db import migrations

MOVED = {
    "kahunacampaign": "kahuna",
    "kahunaexport": "kahuna",
    "kochavastream": "kochava",
    "kochavaeventoutcome": "kochava",
    "kochavauserlink": "kochava",
}


def _move_content_types(apps, schema_editor, *, forward: bool) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
    for model, app in MOVED.items():
        old, new = ("campaigns", app) if forward else (app, "campaigns")
        if not content_types.filter(app_label=new, model=model).exists():  # else: already there (a rerun)
            content_types.filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor) -> None:
    _move_content_types(apps, schema_editor, forward=True)


def backwards(apps, schema_editor) -> None:
    _move_content_types(apps, schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_kochava_link_status"),
        ("kahuna", "0001_initial"),
        ("kochava", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="KahunaExport"),
                migrations.DeleteModel(name="KahunaCampaign"),
                migrations.DeleteModel(name="KochavaEventOutcome"),
                migrations.DeleteModel(name="KochavaUserLink"),
                migrations.DeleteModel(name="KochavaStream"),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
