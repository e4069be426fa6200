"""Campaigns (issue 18): Campaign, its CleverTap launches and targeted-send batches, and Enrollment (once per campaign, person and ledger change)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("audiences", "0010_identity_value_collated_c"),
        ("campaigns", "0003_partner_models_move_to_their_apps"),
        ("delivery", "0004_partnercall_summary_for_users"),
        ("workspaces", "0002_setup_request"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Campaign",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("past", "Past behaviour (segment members now)"),
                            ("live", "Live behaviour (Partner Sync, Action = Added)"),
                        ],
                        max_length=8,
                    ),
                ),
                (
                    "channel",
                    models.CharField(
                        choices=[
                            ("push", "Mobile push"),
                            ("webpush", "Web push"),
                            ("email", "Email"),
                            ("sms", "SMS"),
                            ("whatsapp", "WhatsApp"),
                            ("in_app", "In-App message"),
                            ("web_popup", "Web Popup"),
                            ("web_exit_intent", "Web Exit Intent"),
                            ("app_inbox", "App Inbox"),
                            ("native_display", "Native Display"),
                        ],
                        max_length=20,
                    ),
                ),
                (
                    "content",
                    models.JSONField(blank=True, default=dict, help_text='{"title": .., "body": .., "subject": ..}'),
                ),
                (
                    "when",
                    models.CharField(
                        choices=[("now", "Now"), ("at", "At a time (the workspace's time zone)")],
                        default="now",
                        max_length=4,
                    ),
                ),
                ("send_at", models.DateTimeField(blank=True, help_text="First send (stored in UTC).", null=True)),
                (
                    "repeat",
                    models.CharField(
                        choices=[("once", "Once"), ("daily", "Daily"), ("weekly", "Weekly")],
                        default="once",
                        max_length=8,
                    ),
                ),
                (
                    "reentry",
                    models.CharField(
                        choices=[
                            ("never", "Never: a person enters once"),
                            ("after_removal", "Again after being removed from the segment and added back"),
                        ],
                        default="never",
                        max_length=16,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("draft", "Draft"),
                            ("scheduled", "Scheduled"),
                            ("running", "Running"),
                            ("stopped", "Stopped"),
                            ("finished", "Finished"),
                            ("failed", "Failed"),
                        ],
                        default="draft",
                        editable=False,
                        max_length=10,
                    ),
                ),
                ("status_reason", models.TextField(blank=True, editable=False)),
                ("status_changed_at", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "reach",
                    models.BigIntegerField(blank=True, editable=False, help_text="CleverTap's estimate.", null=True),
                ),
                ("reach_checked_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("next_run_at", models.DateTimeField(blank=True, db_index=True, editable=False, null=True)),
                ("start_after_change_id", models.BigIntegerField(blank=True, editable=False, null=True)),
                ("enrolled_through_run_id", models.BigIntegerField(default=0, editable=False)),
                ("report", models.JSONField(blank=True, default=dict, editable=False)),
                ("report_refreshed_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("launched_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_activity_at", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "destination",
                    models.ForeignKey(
                        limit_choices_to={"kind": "clevertap"},
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="campaigns",
                        to="delivery.destination",
                    ),
                ),
                (
                    "segment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="campaigns", to="audiences.segment"
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="campaigns", to="workspaces.workspace"
                    ),
                ),
            ],
            options={
                "ordering": ["workspace", "-id"],
            },
        ),
        migrations.CreateModel(
            name="Launch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "occurrence",
                    models.CharField(help_text="The scheduled time it stands for (UTC, ISO).", max_length=32),
                ),
                (
                    "name",
                    models.CharField(help_text="The name given to CleverTap: carries the marker.", max_length=255),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Not sent yet"),
                            ("sending", "Sending"),
                            ("unknown", "Unknown — checking"),
                            ("accepted", "Accepted by CleverTap"),
                            ("failed", "Refused by CleverTap"),
                            ("abandoned", "Not sent (campaign stopped)"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("partner_id", models.CharField(blank=True, help_text="CleverTap's campaign id.", max_length=64)),
                ("attempts", models.SmallIntegerField(default=0)),
                (
                    "answer",
                    models.CharField(blank=True, help_text="Parsed summary of CleverTap's answer.", max_length=500),
                ),
                ("answer_raw", models.TextField(blank=True, help_text="Raw start of the answer: ops only (admin).")),
                ("report", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("answered_at", models.DateTimeField(blank=True, null=True)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="launches", to="campaigns.campaign"
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="SendBatch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.CharField(help_text="The name given to CleverTap: carries the marker.", max_length=255),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Not sent yet"),
                            ("sending", "Sending"),
                            ("unknown", "Unknown — checking"),
                            ("accepted", "Accepted by CleverTap"),
                            ("failed", "Refused by CleverTap"),
                            ("abandoned", "Not sent (campaign stopped)"),
                        ],
                        default="sending",
                        max_length=10,
                    ),
                ),
                ("size", models.IntegerField(default=0)),
                ("partner_id", models.CharField(blank=True, max_length=64)),
                ("attempts", models.SmallIntegerField(default=0)),
                (
                    "answer",
                    models.CharField(blank=True, help_text="Parsed summary of CleverTap's answer.", max_length=500),
                ),
                ("answer_raw", models.TextField(blank=True, help_text="Raw start of the answer: ops only (admin).")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("answered_at", models.DateTimeField(blank=True, null=True)),
                ("next_check_at", models.DateTimeField(blank=True, null=True)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="batches", to="campaigns.campaign"
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="Enrollment",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "change_at",
                    models.DateTimeField(help_text="When the ledger change happened (copied for the timeline)."),
                ),
                ("to_kind", models.CharField(help_text="identity or objectId", max_length=10)),
                ("to_value", models.CharField(max_length=512)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Waiting to be sent"),
                            ("sending", "Sending"),
                            ("unknown", "Unknown — checking"),
                            ("sent", "Sent"),
                            ("failed", "Failed"),
                            ("skipped", "Not sent (campaign stopped)"),
                            ("in_campaign", "In CleverTap's campaign audience"),
                        ],
                        default="pending",
                        max_length=12,
                    ),
                ),
                (
                    "answer",
                    models.CharField(blank=True, help_text="Parsed summary of CleverTap's answer.", max_length=500),
                ),
                ("answer_raw", models.TextField(blank=True, help_text="Raw start of the answer: ops only (admin).")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                (
                    "campaign",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="enrollments",
                        to="campaigns.campaign",
                    ),
                ),
                (
                    "change",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="audiences.membershipchange",
                    ),
                ),
                (
                    "profile",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="enrollments",
                        to="audiences.profile",
                    ),
                ),
                (
                    "workspace",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="workspaces.workspace",
                    ),
                ),
                (
                    "launch",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="enrollments",
                        to="campaigns.launch",
                    ),
                ),
                (
                    "batch",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="enrollments",
                        to="campaigns.sendbatch",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.AddIndex(
            model_name="campaign",
            index=models.Index(fields=["segment", "status"], name="campaign_segment_status"),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.UniqueConstraint(fields=("workspace", "name"), name="campaign_name_unique"),
        ),
        migrations.AddConstraint(
            model_name="launch",
            constraint=models.UniqueConstraint(fields=("campaign", "occurrence"), name="launch_occurrence_unique"),
        ),
        migrations.AddIndex(
            model_name="sendbatch",
            index=models.Index(fields=["state", "next_check_at"], name="sendbatch_state_check"),
        ),
        migrations.AddIndex(
            model_name="enrollment",
            index=models.Index(fields=["profile", "id"], name="enrollment_profile"),
        ),
        migrations.AddIndex(
            model_name="enrollment",
            index=models.Index(condition=models.Q(("batch__isnull", False)), fields=["batch"], name="enrollment_batch"),
        ),
        migrations.AddIndex(
            model_name="enrollment",
            index=models.Index(
                condition=models.Q(("status", "pending")), fields=["campaign", "id"], name="enrollment_pending"
            ),
        ),
        migrations.AddConstraint(
            model_name="enrollment",
            constraint=models.UniqueConstraint(
                fields=("campaign", "profile", "change"), name="enrollment_once_per_change"
            ),
        ),
    ]
