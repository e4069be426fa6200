"""Pulls from Amplitude: project connections, cohort and event import jobs, their runs and the quota.

A job says what to import and when (next_run_at, computed in the job's time zone by
integrations.sources.scheduling); a run is one execution with its status, phase, progress and
counts. Run state is changed only by integrations.sources.runs.transition.
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from integrations.credential_hosts import project_problem
from integrations.models import Authorization
from integrations.outbound import operator_allowed_url, validate_outbound_url
from integrations.schedules import IMPORT_CADENCES, Cadence
from workspaces.models import Workspace, WorkspaceScopedQuerySet, validate_timezone

OVERRIDE_REFUSED = (
    "Amplitude is reached at its region's host: choose the region. A base URL override is only for a "
    "host the operator allowed (OUTBOUND_ALLOWED_NETWORKS: the sandbox, a proxy)."
)
REGION_HOSTS = {"us": "https://amplitude.com", "eu": "https://analytics.eu.amplitude.com"}


class Region(models.TextChoices):
    US = "us", "US (amplitude.com)"
    EU = "eu", "EU (analytics.eu.amplitude.com)"


class AmplitudeProject(models.Model):
    """One Amplitude project: where its API lives and which credential opens it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="amplitude_projects")
    label = models.CharField(max_length=120)
    region = models.CharField(max_length=2, choices=Region.choices, default=Region.US)
    base_url = models.URLField(
        blank=True,
        validators=[validate_outbound_url],
        help_text="Overrides the region's host (the sandbox, a proxy).",
    )
    authorization = models.ForeignKey(
        Authorization,
        on_delete=models.PROTECT,
        related_name="amplitude_projects",
        limit_choices_to={"provider": "amplitude"},
    )
    project_id = models.BigIntegerField(null=True, blank=True, help_text="Amplitude's project (app) id, optional.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "label"]
        constraints = [models.UniqueConstraint(fields=["workspace", "label"], name="amplitude_project_label_unique")]

    def __str__(self) -> str:
        return self.label

    @property
    def api_base_url(self) -> str:
        return (self.base_url or REGION_HOSTS[self.region]).rstrip("/")

    def clean(self) -> None:
        if self.authorization_id and self.authorization.provider != "amplitude":
            raise ValidationError({"authorization": "Choose an Amplitude authorization (API key and secret key)."})
        if self.authorization_id and self.workspace_id and self.authorization.workspace_id != self.workspace_id:
            raise ValidationError({"authorization": "The authorization belongs to another workspace."})
        errors = self.host_errors()
        if errors:
            raise ValidationError(errors)

    def host_errors(self) -> dict[str, list[str]]:
        """Amplitude's hosts are its regions', chosen from a list; a base URL override must be one the
        operator allowed (OUTBOUND_ALLOWED_NETWORKS: the sandbox, a proxy). And the saved credentials
        never follow a change of host (integrations.credential_hosts). {} when all is well."""
        if self.base_url and not operator_allowed_url(self.base_url):
            return {"base_url": [OVERRIDE_REFUSED]}
        authorization = self.authorization if self.authorization_id else None
        problem = project_problem(self, self.api_base_url, authorization)
        return {"authorization": [problem]} if problem else {}


class AmplitudeCohort(models.Model):
    """A cohort of a project as Amplitude last listed it: what the console's cohort picker searches,
    sorts and pages, and names cohort ids by. Refreshed by "Load cohorts" and Test connection
    (integrations.sources.cohorts.list_project_cohorts)."""

    project = models.ForeignKey(AmplitudeProject, on_delete=models.CASCADE, related_name="cohorts")
    cohort_id = models.CharField(max_length=255)
    name = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    last_computed = models.DateTimeField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    listed_at = models.DateTimeField(help_text="When Amplitude last listed it.")

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "cohort_id"], name="amplitude_cohort_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.cohort_id})"


class CohortImportJob(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(AmplitudeProject, on_delete=models.CASCADE, related_name="cohort_jobs")
    label = models.CharField(max_length=120)
    cohort_ids = models.JSONField(default=list, blank=True, help_text="Amplitude cohort ids; empty = every cohort.")
    include_properties = models.BooleanField(default=True, help_text="Ask for user properties (props=1).")
    prop_keys = models.JSONField(default=list, blank=True, help_text="Only these user properties (propKeys).")
    amplitude_id_field = models.CharField(
        max_length=64,
        default="amplitude_id",
        blank=True,
        help_text="Profile property that holds the Amplitude ID; blank = do not store it.",
    )
    cohort_names_field = models.CharField(
        max_length=64,
        default="amplitude_cohort_names",
        blank=True,
        help_text="Profile property holding {cohort name: member?}; blank = do not store it.",
    )
    cadence = models.CharField(max_length=16, choices=IMPORT_CADENCES, default=Cadence.DAILY)
    time_of_day = models.TimeField(null=True, blank=True, help_text="Daily runs: local time in `timezone`.")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Cohorts seen on the last run when cohort_ids is empty: the quota check's estimate.
    last_cohort_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "label"]
        indexes = [models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="cohort_job_due")]

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        if self.cadence == Cadence.DAILY and self.time_of_day is None:
            raise ValidationError({"time_of_day": "A daily import needs a time of day."})
        if not isinstance(self.cohort_ids, list) or not all(isinstance(c, str) and c for c in self.cohort_ids):
            raise ValidationError({"cohort_ids": "A list of Amplitude cohort ids (strings)."})
        if not isinstance(self.prop_keys, list) or not all(isinstance(k, str) and k for k in self.prop_keys):
            raise ValidationError({"prop_keys": "A list of user property names."})

    @property
    def downloads_per_run(self) -> int:
        return len(self.cohort_ids) or max(self.last_cohort_count, 1)


class EventImportJob(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(AmplitudeProject, on_delete=models.CASCADE, related_name="event_jobs")
    label = models.CharField(max_length=120)
    backfill_days = models.PositiveIntegerField(default=90, help_text="First run: days of history; 0 = from now.")
    keep_updated = models.BooleanField(default=True, help_text="Keep importing hourly after the first run.")
    enabled = models.BooleanField(default=True)
    # End (exclusive, a UTC hour) of the last window loaded; advanced in the window's transaction.
    cursor = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "label"]
        indexes = [models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="event_job_due")]

    def __str__(self) -> str:
        return self.label

    # Scheduled like the other jobs (integrations.schedules.next_run_after), but with no zone or cadence
    # of its own: Amplitude's Export API cuts events by UTC hour, so keeping up means every UTC hour.
    time_of_day = None
    timezone = "UTC"

    @property
    def cadence(self) -> str:
        return Cadence.HOURLY if self.keep_updated else Cadence.ONE_TIME


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED})


class ImportRun(models.Model):
    """One execution of a cohort or an event import job. Exactly one of the two job links is set."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    cohort_job = models.ForeignKey(
        CohortImportJob, null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    event_job = models.ForeignKey(EventImportJob, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    phase = models.CharField(max_length=255, blank=True, help_text="What the run is doing now.")
    trigger = models.CharField(max_length=16, default="schedule", help_text="schedule, manual, retry")
    rows_expected = models.BigIntegerField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0)
    # rows_read, profiles_created, profiles_updated, entered, exited, events_loaded, duplicates,
    # skipped, skipped_reasons {reason: n}, skipped_samples [..], cohorts {id: {...}}, windows, downloads
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    # Touched every RUN_HEARTBEAT_SECONDS by the worker executing the run (integrations.run_heartbeat);
    # a running run whose heartbeat is older than RUN_LOST_SECONDS is lost (failed, phase "lost").
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(cohort_job__isnull=False, event_job__isnull=True)
                | Q(cohort_job__isnull=True, event_job__isnull=False),
                name="import_run_one_job",
            )
        ]
        indexes = [
            models.Index(fields=["cohort_job", "status"], name="import_run_cohort_status"),
            models.Index(fields=["event_job", "status"], name="import_run_event_status"),
            models.Index(fields=["workspace", "-id"], name="import_run_workspace"),
            # /metrics counts the runs finished in its window and the active ones (finished_at IS NULL).
            models.Index(fields=["finished_at"], name="import_run_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} run {self.pk} ({self.status})"

    @property
    def kind(self) -> str:
        return "cohort" if self.cohort_job_id else "event"

    @property
    def job(self) -> CohortImportJob | EventImportJob | None:
        return self.cohort_job if self.cohort_job_id else self.event_job

    @property
    def project(self) -> AmplitudeProject:
        return self.job.project


class DownloadQuota(models.Model):
    """Cohort downloads used per project per calendar month (UTC); Amplitude allows a monthly budget."""

    project = models.ForeignKey(AmplitudeProject, on_delete=models.CASCADE, related_name="quotas")
    month = models.DateField(help_text="First day of the month (UTC).")
    used = models.PositiveIntegerField(default=0)
    limit = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "month"], name="download_quota_month")]

    def __str__(self) -> str:
        return f"{self.project} {self.month:%Y-%m}: {self.used}/{self.limit}"

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)
