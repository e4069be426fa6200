"""Setup requests: a marketer asking the owners and ops to set up what needs credentials (a new,
small table; workspaces.setup_requests)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SetupRequest",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "topic",
                    models.CharField(
                        choices=[
                            ("amplitude", "connect an Amplitude project"),
                            ("inbound_key", "create an inbound API key so Amplitude can push cohorts"),
                            ("destination", "add a destination"),
                            ("authorization", "add partner credentials"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "detail",
                    models.CharField(blank=True, help_text="E.g. the kind of destination asked for.", max_length=120),
                ),
                ("path", models.CharField(help_text="The console page where it is set up.", max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("done_at", models.DateTimeField(blank=True, null=True)),
                (
                    "done_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="setup_requests",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="setup_requests",
                        to="workspaces.workspace",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "indexes": [models.Index(fields=["workspace", "done_at"], name="setup_request_open")],
            },
        ),
    ]
