"""Kochava's event stream (a cursor over audiences.Event ids) and Send Users (IdentityLinks).

KochavaStream and KochavaUserLink have one writer: integrations.connectors.kochava.stream.
The tables keep the names they had in the campaigns app (db_table), where these models began.
"""

from django.db import models
from django.db.models import Q

from integrations.delivery.models import Destination
from workspaces.models import Workspace, WorkspaceScopedQuerySet


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
    # Set while a pass runs and touched every RUN_HEARTBEAT_SECONDS by its worker; cleared when the
    # pass ends. Older than RUN_LOST_SECONDS: the worker was lost (tasks.mark_lost_runs says so here).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    in_flight_limit = models.IntegerField(default=0, help_text="Events a pass may have sent but not yet recorded.")
    resend_bound = models.BigIntegerField(
        default=0, help_text="Events that lost workers may have sent twice: at most what they had in flight."
    )
    lost_note = models.TextField(blank=True, help_text="What happened when a worker streaming this was lost.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        db_table = "campaigns_kochavastream"

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
        db_table = "campaigns_kochavaeventoutcome"
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
        db_table = "campaigns_kochavauserlink"
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
