"""The inbox of pushes (docs/invariants.md, invariant 2) and the per-key log of raw requests (invariant 3).

An InboundBatch is committed before the sender gets its 2xx; applying it later is idempotent, so a
replay, a redelivered task or a worker killed mid-apply all end in the same state. Its status is the
one field that says where it is: accepted (waiting) → applied, or failed after repeated errors.
"""

from django.db import models
from django.db.models import Q

from integrations.models import ApiKey
from workspaces.models import Workspace, WorkspaceScopedQuerySet


class Endpoint(models.TextChoices):
    LIST_ADD = "list_add", "Amplitude list add"
    LIST_REMOVE = "list_remove", "Amplitude list remove"
    AMPLITUDE_IDENTIFY = "amplitude_identify", "Amplitude identify (property-based)"
    COHORT_WEBHOOK = "cohort_webhook", "Amplitude cohort webhook"
    V1_IDENTIFY = "v1_identify", "Segment /v1/identify"
    V1_BATCH = "v1_batch", "Segment /v1/batch"
    V1_TRACK = "v1_track", "Segment /v1/track"
    V1_PAGE = "v1_page", "Segment /v1/page"
    V1_SCREEN = "v1_screen", "Segment /v1/screen"
    V1_GROUP = "v1_group", "Segment /v1/group"
    V1_ALIAS = "v1_alias", "Segment /v1/alias"


class BatchStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted, not applied yet"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed (gave up after repeated errors)"


class InboundBatch(models.Model):
    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    endpoint = models.CharField(max_length=24, choices=Endpoint.choices)
    # Set when the batch concerns one segment (list add/remove, cohort webhook): batches of one
    # segment apply in id (= arrival) order under one advisory lock; the others in workspace order.
    segment = models.ForeignKey("audiences.Segment", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    identity_kind = models.CharField(max_length=140, help_text="Kind of the pushed ids, from the key at receipt.")
    # The decoded (gunzipped) body exactly as received: the apply step re-parses it. Null once the
    # batch was applied longer ago than the workspace's window (retention.prune, "inbound_bodies").
    body = models.BinaryField(null=True)
    dedupe_key = models.CharField(
        max_length=200,
        help_text="sha256 of endpoint+list+kind+body @ the scope's generation (views.retry_key), or msg:<message_id>.",
    )
    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.ACCEPTED)
    item_count = models.IntegerField(default=0, help_text="Ids or messages in the request.")
    # Rows refused at receipt or at apply (blocked identifiers, …): [[position, raw value, reason], …].
    invalid = models.JSONField(default=list, blank=True)
    invalid_count = models.IntegerField(default=0)
    # Identity conflicts met while applying (two known profiles never merge): [{…reason…}, …].
    conflicts = models.JSONField(default=list, blank=True)
    added = models.IntegerField(default=0)
    removed = models.IntegerField(default=0)
    profiles_created = models.IntegerField(default=0)
    merges = models.IntegerField(default=0)
    other_calls = models.JSONField(default=dict, blank=True, help_text="Counts of non-identify /v1 calls by type.")
    # True once a worker resolved a list-add batch's identities ahead of the ordered apply
    # (apply.prepare_next); profiles_created then already counts the people it created.
    prepared = models.BooleanField(default=False, db_default=False)
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "inbound batches"
        constraints = [models.UniqueConstraint(fields=["workspace", "dedupe_key"], name="inbound_batch_dedupe")]
        indexes = [
            # The backlog: small and hot. Serves the 429 check, the apply loop and the dispatcher.
            models.Index(
                fields=["workspace", "segment", "id"], condition=Q(status="accepted"), name="inbound_batch_pending"
            ),
            models.Index(fields=["workspace", "-id"], name="inbound_batch_recent"),
            # What arrived last in a scope, for telling a retry from a re-entry (views.retry_key).
            models.Index(
                fields=["workspace", "segment", "endpoint", "id"],
                condition=Q(segment__isnull=False),
                name="inbound_batch_list_scope",
            ),
            models.Index(
                fields=["workspace", "-id"], condition=Q(segment__isnull=True), name="inbound_batch_people_scope"
            ),
            # The applied bodies still kept, by when they were applied: what the pruning clears next.
            models.Index(
                fields=["applied_at"],
                condition=Q(status="applied", body__isnull=False),
                name="inbound_batch_body_kept",
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.endpoint}, {self.status})"

    def body_text(self, limit: int | None = None) -> str:
        raw = bytes(self.body or b"")
        return raw[:limit].decode("utf-8", "replace") if limit else raw.decode("utf-8", "replace")


class InboundRequest(models.Model):
    """One raw request as received (accepted or rejected), kept for the last N per API key."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    key_prefix = models.CharField(max_length=16, blank=True, help_text="Prefix of the key sent, even if unknown.")
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    endpoint = models.CharField(max_length=24, blank=True)
    status_code = models.IntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField()
    body_bytes = models.IntegerField(default=0)
    body_preview = models.TextField(blank=True, help_text="The start of the decoded body.")
    # Headers without Authorization / api_key / Cookie: the secret never reaches the log.
    headers = models.JSONField(default=dict, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    batch = models.ForeignKey(InboundBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    duplicate = models.BooleanField(default=False)
    received_at = models.DateTimeField()

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "inbound request"
        indexes = [
            models.Index(fields=["api_key", "-id"], name="inbound_request_key"),
            models.Index(fields=["workspace", "-id"], name="inbound_request_ws"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status_code}"
