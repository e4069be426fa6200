"""Destinations, sync jobs (segment → destination), their runs, the rows each run sends, partner calls.

State machines have one writer each: destination health changes only through
integrations.delivery.health.set_health; run status only through integrations.delivery.actions
(starting, resuming) and integrations.delivery.engine (running, finishing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q

from audiences.models import Segment
from integrations.connectors.registry import connector_class, kind_choices
from integrations.models import Authorization
from integrations.schedules import Cadence
from workspaces.models import Workspace, WorkspaceScopedQuerySet

if TYPE_CHECKING:
    from integrations.connectors.base import Connector


class Health(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    DISABLED = "disabled", "Disabled"


class Destination(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="destinations")
    kind = models.CharField(max_length=32, choices=kind_choices)  # callable: a new kind needs no migration
    name = models.CharField(max_length=120)
    config = models.JSONField(default=dict, blank=True, help_text="Validated by the connector class of the kind.")
    authorization = models.ForeignKey(
        Authorization, null=True, blank=True, on_delete=models.PROTECT, related_name="destinations"
    )
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.HEALTHY, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    health_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="destination_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def connector_class(self) -> type[Connector]:
        return connector_class(self.kind)


class SyncJob(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sync_jobs")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="sync_jobs")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="sync_jobs")
    cadence = models.CharField(max_length=16, choices=Cadence.choices, default=Cadence.DAILY)
    time_of_day = models.TimeField(null=True, blank=True, help_text="Daily cadence: local time of the run.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA zone for the daily time of day.")
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    paused = models.BooleanField(default=False)
    # Identity mapping: which identity kind fills the partner's user id and which its anonymous id.
    user_id_kind = models.CharField(
        max_length=64, default="user_id", help_text="Identity kind (or property:<name>) for the partner user id."
    )
    device_id_kind = models.CharField(
        max_length=64,
        blank=True,
        default="device_id",
        help_text="Identity kind for the anonymous/device id; blank = never send anonymous.",
    )
    # What the connector created at the partner (e.g. {"list_id": "42"}): kept so it is never created twice.
    partner_state = models.JSONField(default=dict, blank=True, editable=False)
    # The last MembershipChange.id delivered by a completed run; null = never synced → next run is full.
    cursor = models.BigIntegerField(null=True, blank=True, editable=False)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "destination"], name="sync_job_unique"),
            models.CheckConstraint(
                condition=~Q(cadence="daily") | Q(time_of_day__isnull=False), name="sync_job_daily_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.segment} → {self.destination}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting (rate limited; resumes at next_attempt_at)"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_FAILED = "partially_failed", "Partially failed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING)


class RunMode(models.TextChoices):
    AUTO = "auto", "Scheduled (full on first run, then changes)"
    FULL = "full", "Full resync"
    RETRY = "retry", "Retry failed rows"


class SyncRun(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(SyncJob, on_delete=models.CASCADE, related_name="runs")
    mode = models.CharField(max_length=8, choices=RunMode.choices, default=RunMode.AUTO)
    trigger = models.CharField(max_length=16, default="schedule", help_text="schedule, manual, api")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    planned = models.BooleanField(default=False, help_text="Work items are staged; a restart resumes them.")
    full = models.BooleanField(default=False, help_text="Sent the whole membership rather than changes.")
    from_cursor = models.BigIntegerField(null=True, blank=True)
    snapshot_cursor = models.BigIntegerField(null=True, blank=True, help_text="Ledger id the run covers up to.")
    rows_total = models.IntegerField(default=0)
    rows_done = models.IntegerField(default=0)
    to_add = models.IntegerField(default=0)
    to_remove = models.IntegerField(default=0)
    delivered = models.IntegerField(default=0)
    invalid = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    failed = models.IntegerField(default=0, help_text="Rows that exhausted retries; carried into the next run.")
    retried = models.IntegerField(default=0, help_text="Row re-sends after transient failures.")
    carried_in = models.IntegerField(default=0, help_text="Failed rows of earlier runs included in this one.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Touched every RUN_HEARTBEAT_SECONDS by the worker sending the run (integrations.run_heartbeat).
    # A running run whose heartbeat is older than RUN_LOST_SECONDS is lost: beat's check says so in
    # lost_note and resumes it from the rows not yet recorded.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempt = models.IntegerField(default=0, help_text="Workers that took the run (more than 1 after a lost worker).")
    in_flight_limit = models.IntegerField(
        default=0, help_text="Rows that may be sent but not yet recorded at any moment (requests in flight x rows)."
    )
    resend_bound = models.IntegerField(
        default=0, help_text="Rows that lost workers may have sent twice: at most what they had in flight."
    )
    lost_note = models.TextField(blank=True, help_text="What happened when a worker running this was lost.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["job", "-id"]),
            models.Index(fields=["status", "next_attempt_at"]),
            # /metrics counts the runs finished in its window and the active ones (finished_at IS NULL).
            models.Index(fields=["finished_at"], name="syncrun_finished"),
        ]
        constraints = [
            # The overlap guard's backstop: at most one active run per job, whatever the races.
            models.UniqueConstraint(
                fields=["job"], condition=Q(status__in=["queued", "running", "waiting"]), name="one_active_run_per_job"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.job_id} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class RowStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    INVALID = "invalid", "Invalid (not sent)"
    REJECTED = "rejected", "Rejected by the partner"
    FAILED = "failed", "Failed (carried into the next run)"
    CARRIED = "carried", "Carried into a later run"


class DeliveryRow(models.Model):
    """A run's work item AND its outcome: (profile, action, partner ids) → delivered/invalid/rejected/failed.

    One table for both on purpose: the outcome is written by the same UPDATE that marks the item
    done, so a killed worker can never leave a row "sent but unrecorded" on our side, and a 1M
    first sync writes 1M rows once instead of twice. Rows are staged and updated set-wise.
    """

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="rows", db_constraint=False)
    job = models.ForeignKey(SyncJob, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    profile_id = models.BigIntegerField()
    action = models.CharField(max_length=8)  # add | remove
    user_id = models.CharField(max_length=512, null=True, blank=True)
    device_id = models.CharField(max_length=512, null=True, blank=True)
    status = models.CharField(max_length=10, choices=RowStatus.choices, default=RowStatus.PENDING)
    reason = models.TextField(blank=True)
    partner_code = models.CharField(max_length=32, blank=True)
    attempts = models.SmallIntegerField(default=0)
    # True exactly while status is "failed" (waiting to be carried into the next run). The partial
    # index hangs on this flag, not on status, so that the hot pending → delivered UPDATE touches no
    # indexed column and PostgreSQL can do it as a HOT update in the free space the table's
    # fillfactor (migration 0002) leaves on each page: ~4x cheaper than rewriting every index entry.
    carry_over = models.BooleanField(default=False, db_default=False)  # raw INSERTs elsewhere need not name it

    class Meta:
        indexes = [
            models.Index(fields=["run", "id"], name="deliveryrow_run"),
            models.Index(fields=["profile_id"], name="deliveryrow_profile"),  # the per-person trace
            models.Index(fields=["job", "profile_id"], condition=Q(carry_over=True), name="deliveryrow_carry_over"),
        ]


class PartnerCall(models.Model):
    """The last N calls per destination: summaries only. Headers and secrets are never stored.

    Users (the console, the API) read `response_summary` and `error`: the status, the partner's own
    code and message, the policy's refusal or the generic "could not connect". `response_excerpt`
    (the raw start of the answer) and `error_detail` are shown to ops in the admin only."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="calls")
    run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    created_at = models.DateTimeField(auto_now_add=True)
    method = models.CharField(max_length=8)
    url = models.CharField(max_length=1000)
    request_summary = models.CharField(max_length=500)
    status_code = models.IntegerField(null=True, blank=True)
    response_summary = models.CharField(max_length=500, blank=True)
    response_excerpt = models.TextField(blank=True, help_text="Raw start of the answer: ops only (admin).")
    duration_ms = models.IntegerField(default=0)
    error = models.TextField(blank=True)
    error_detail = models.TextField(blank=True, help_text="What exactly failed: ops only (admin).")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["destination", "-id"])]

    # What a call came to, for the console's filter: a success status with a refusal inside (recorded
    # in `error` when the answer was read, e.g. CleverTap's 200 listing unprocessed records) is refused.
    OUTCOMES = {
        "ok": ("Accepted", Q(status_code__gte=200, status_code__lt=300, error="")),
        "refused": (
            "Answered with an error",
            Q(status_code__isnull=False) & ~Q(status_code__gte=200, status_code__lt=300, error=""),
        ),
        "no_answer": ("No answer (could not connect, timed out, refused by policy)", Q(status_code__isnull=True)),
    }

    @property
    def outcome(self) -> str:
        if self.status_code is None:
            return "no_answer"
        return "ok" if 200 <= self.status_code < 300 and not self.error else "refused"
