"""Kahuna's campaigns as the console knows them, and the exports sent to them (Export to Kahuna).

KahunaExport.status has one writer: integrations.connectors.kahuna.export.run_export.
The tables keep the names they had in the campaigns app (db_table), where these models began.
"""

from django.conf import settings
from django.db import models

from audiences.models import Segment
from integrations.delivery.models import Destination
from workspaces.models import Workspace, WorkspaceScopedQuerySet


class Environment(models.TextChoices):
    PRODUCTION = "p", "Production"
    STAGING = "s", "Staging (Sandbox)"


class KahunaCampaign(models.Model):
    """A Kahuna campaign as the console knows it: refreshed from Kahuna, editable by ops."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="kahuna_campaigns", limit_choices_to={"kind": "kahuna"}
    )
    name = models.CharField(max_length=255)
    campaign_id = models.CharField(max_length=255, help_text="Kahuna's campaign id.")
    environment = models.CharField(max_length=1, choices=Environment.choices, default=Environment.PRODUCTION)
    enabled = models.BooleanField(default=True, help_text="Only enabled Adaptive campaigns can receive exports.")
    campaign_type = models.CharField(max_length=32, default="adaptive")
    refreshed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When Kahuna last listed it (blank: entered by hand)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        db_table = "campaigns_kahunacampaign"
        ordering = ["destination", "environment", "name"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "environment", "campaign_id"], name="kahuna_campaign_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_environment_display()}{'' if self.enabled else ', disabled'})"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class KahunaExport(models.Model):
    """One "Export to Kahuna": a segment's members sent to an Adaptive campaign (async jobs at Kahuna)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="kahuna_exports")
    campaign = models.ForeignKey(KahunaCampaign, on_delete=models.PROTECT, related_name="exports")
    environment = models.CharField(max_length=1, choices=Environment.choices)
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    job_id = models.CharField(max_length=255, blank=True, help_text="Kahuna's job id (the first, if several).")
    job_ids = models.JSONField(default=list, blank=True, help_text="One job per populate call.")
    users_total = models.IntegerField(default=0)
    users_sent = models.IntegerField(default=0)
    invalid = models.IntegerField(default=0, help_text="Members with no install token and no credential.")
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        db_table = "campaigns_kahunaexport"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"export {self.pk}: {self.segment} → {self.campaign} ({self.status})"
