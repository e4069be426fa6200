"""Tenants. Every row of the product belongs to one workspace; every query is filtered by it."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (for example Europe/Berlin).")


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


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
