"""Partner-side campaigns and streams: Kahuna Adaptive campaigns and exports, Kochava event/user streams.

Each state field has one writer: KahunaExport.status only in campaigns.kahuna.run_export,
KochavaStream / KochavaUserLink only in campaigns.kochava_stream.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

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
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"export {self.pk}: {self.segment} → {self.campaign} ({self.status})"


class KochavaStream(models.Model):
    """The event stream of one Kochava destination: a cursor over audiences.Event ids."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    destination = models.OneToOneField(Destination, on_delete=models.CASCADE, related_name="kochava_stream")
    last_event_id = models.BigIntegerField(default=0, help_text="Every event up to here was answered.")
    last_swept_row_id = models.BigIntegerField(default=0, help_text="Held-back sync rows copied up to here.")
    next_run_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Set when Kochava asked us to slow down (429)."
    )
    events_sent = models.BigIntegerField(default=0)
    events_skipped = models.BigIntegerField(default=0)
    events_rejected = models.BigIntegerField(default=0)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Kochava stream of {self.destination} at event {self.last_event_id}"


class KochavaEventOutcome(models.Model):
    """An event the stream did not deliver, with the reason (skipped by the mapping or refused)."""

    stream = models.ForeignKey(KochavaStream, on_delete=models.CASCADE, related_name="outcomes")
    event_id = models.BigIntegerField()
    status = models.CharField(max_length=10)  # skipped | rejected
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["stream", "event_id"])]


class LinkStatus(models.TextChoices):
    PENDING = "pending", "Pending (held back until Kochava has the install)"
    LINKED = "linked", "Linked"
    FAILED = "failed", "Refused by Kochava"


class KochavaUserLink(models.Model):
    """Send Users: one IdentityLink per person and device, retried at next_attempt_at until it attaches."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="kochava_links")
    profile_id = models.BigIntegerField()
    kochava_device_id = models.CharField(max_length=512)
    identities = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=LinkStatus.choices, default=LinkStatus.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    linked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "profile_id", "kochava_device_id"], name="kochava_link_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["destination", "next_attempt_at"], condition=Q(status="pending"), name="kochava_link_due"
            ),
            # The console's capped counts per status and its latest refused links.
            models.Index(fields=["destination", "status", "updated_at"], name="kochava_link_status"),
        ]
