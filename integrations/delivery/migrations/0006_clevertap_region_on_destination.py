"""CleverTap's region is asked once, on the destination (a choice of CleverTap's regions): a
destination that left it blank takes its authorization's region (or Europe), and the region is
dropped from CleverTap authorizations, which no longer hold one."""

from django.db import migrations

REGIONS = {"eu1", "in1", "aps3", "mec1", "sg1", "sk1", "us1"}


def region_to_destination(apps, schema_editor):
    Destination = apps.get_model("delivery", "Destination")
    Authorization = apps.get_model("integrations", "Authorization")
    for destination in Destination.objects.filter(kind="clevertap").select_related("authorization"):
        config = dict(destination.config or {})
        if not config.get("region"):
            auth_region = ((destination.authorization.fields or {}) if destination.authorization else {}).get("region")
            config["region"] = auth_region if auth_region in REGIONS else "eu1"
            Destination.objects.filter(pk=destination.pk).update(config=config)
    for auth in Authorization.objects.filter(provider="clevertap"):
        if "region" in (auth.fields or {}):
            fields = {k: v for k, v in auth.fields.items() if k != "region"}
            Authorization.objects.filter(pk=auth.pk).update(fields=fields)


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0005_run_heartbeat_and_resend_bound"),
        ("integrations", "0003_authorization_provider_choices_from_registry"),
    ]

    operations = [migrations.RunPython(region_to_destination, migrations.RunPython.noop)]
