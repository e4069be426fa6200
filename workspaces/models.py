"""Tenants. Every row of the product belongs to one workspace; every query is filtered by it."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (for example Europe/Berlin).")


# Kinds of data with a retention window (retention.prune); the defaults are settings.RETENTION_DEFAULT_DAYS.
RETENTION_KINDS = ("inbound_bodies", "events", "delivery_rows", "run_detail", "partner_calls")


def validate_retention(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Retention is an object of days per kind, e.g. {"events": 365}.')
    for kind, days in value.items():
        if kind not in RETENTION_KINDS:
            raise ValidationError(f"{kind!r} is not a kind of data with a window; kinds: {', '.join(RETENTION_KINDS)}.")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36_500:
            raise ValidationError(f"{kind}: {days!r} is not a number of days from 1 to 36500.")


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    OPS = "ops", "Ops"
    MARKETER = "marketer", "Marketer"
    VIEWER = "viewer", "Viewer"


# What each role may do. Credentials (partner secrets, API keys) are for owners and ops only.
CREDENTIAL_ROLES = frozenset({Role.OWNER, Role.OPS})
ACTION_ROLES = frozenset({Role.OWNER, Role.OPS, Role.MARKETER})


class Workspace(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    retention = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_retention],
        help_text="Days kept per kind of data, where this workspace differs from the defaults, e.g. "
        '{"events": 365}. Kinds: ' + ", ".join(RETENTION_KINDS) + " (docs/operations.md, Retention).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def retention_days(self) -> dict[str, int]:
        """Each kind's window in days: this workspace's own, else the default."""
        own = self.retention if isinstance(self.retention, dict) else {}
        return {kind: int(own.get(kind) or settings.RETENTION_DEFAULT_DAYS[kind]) for kind in RETENTION_KINDS}


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user")]
        ordering = ["workspace__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} of {self.workspace}"

    @property
    def can_manage_credentials(self) -> bool:
        return self.role in CREDENTIAL_ROLES

    @property
    def can_act(self) -> bool:
        return self.role in ACTION_ROLES


class WorkspaceScopedQuerySet(models.QuerySet):
    def for_workspace(self, workspace: Workspace) -> "WorkspaceScopedQuerySet":
        return self.filter(workspace=workspace)


class SetupTopic(models.TextChoices):
    """What a member without credential rights may ask the owners and ops to set up."""

    AMPLITUDE = "amplitude", "connect an Amplitude project"
    INBOUND_KEY = "inbound_key", "create an inbound API key so Amplitude can push cohorts"
    DESTINATION = "destination", "add a destination"
    AUTHORIZATION = "authorization", "add partner credentials"


class SetupRequest(models.Model):
    """A marketer asking the owners and ops to set something up that needs credentials: mailed to
    them and shown on their dashboard until one of them marks it done (workspaces.setup_requests)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="setup_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="setup_requests"
    )
    topic = models.CharField(max_length=16, choices=SetupTopic.choices)
    detail = models.CharField(max_length=120, blank=True, help_text="E.g. the kind of destination asked for.")
    path = models.CharField(max_length=200, help_text="The console page where it is set up.")
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["workspace", "done_at"], name="setup_request_open")]

    def __str__(self) -> str:
        return f"{self.requested_by}: {self.what}"

    @property
    def what(self) -> str:
        label = self.get_topic_display()
        return f"{label}: {self.detail}" if self.detail else label
