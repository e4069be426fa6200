"""Credentials of the pipes: partner authorizations (encrypted) and the console's own API keys (hashed)."""

import hashlib
import secrets
from typing import Self

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from integrations.connectors.registry import credentials, provider_choices
from integrations.credentials import Credentials
from integrations.crypto import decrypt_json, encrypt_json
from workspaces.models import Role, Workspace, WorkspaceScopedQuerySet

MASK = "••••••••"


class Authorization(models.Model):
    """A partner credential. Secret fields are encrypted at rest and never leave the server again."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="authorizations")
    provider = models.CharField(max_length=32, choices=provider_choices)  # callable: a new kind needs no migration
    label = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    fields = models.JSONField(default=dict, blank=True, help_text="Non-secret settings, e.g. account id.")
    secrets_ciphertext = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "label"]
        constraints = [models.UniqueConstraint(fields=["workspace", "label"], name="authorization_label_unique")]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_provider_display()})"

    @property
    def provider_spec(self) -> Credentials:
        return credentials(self.provider)

    @property
    def secrets(self) -> dict:
        """Decrypted secrets, for connectors only. Never render or serialise this."""
        return decrypt_json(self.secrets_ciphertext)

    def set_secrets(self, values: dict) -> None:
        """Merge new secret values; a blank value keeps the saved one (forms never echo secrets back)."""
        allowed = set(self.provider_spec.secret_fields)
        unknown = set(values) - allowed
        if unknown:
            raise ValidationError(
                {name: f"{self.provider_spec.label} has no secret field {name!r}." for name in sorted(unknown)}
            )
        merged = self.secrets if self.secrets_ciphertext else {}
        for name, value in values.items():
            if value not in (None, ""):
                merged[name] = value
        self.secrets_ciphertext = encrypt_json(merged)

    def masked_secrets(self) -> dict:
        saved = self.secrets if self.secrets_ciphertext else {}
        return {name: (MASK if saved.get(name) else "") for name in self.provider_spec.secret_fields}

    def __repr__(self) -> str:  # keeps the ciphertext out of tracebacks and shells
        return f"<Authorization {self.pk} {self.provider} {self.label!r}>"


class ApiKeyScope(models.TextChoices):
    INBOUND = "inbound", "Inbound (Amplitude, Segment, RudderStack pushes)"
    MANAGEMENT = "management", "Management API"


class ApiKeyAccess(models.TextChoices):
    """What a management key may do: each level is exactly one console role's rights (docs/api.md)."""

    READ = "read", "Read: every list and detail, as a viewer"
    WRITE = "write", "Read and act: segments, syncs, runs, exports, as a marketer (no credentials)"
    ADMIN = "admin", "Everything, credentials and API keys included, as an owner or ops"


# The role a management key acts with. Checks stay role checks: a key can do no more than that role.
ACCESS_ROLE = {ApiKeyAccess.READ: Role.VIEWER, ApiKeyAccess.WRITE: Role.MARKETER, ApiKeyAccess.ADMIN: Role.OPS}


class IdentityKind(models.TextChoices):
    """Which kind of identifier a push carries. Used by inbound keys and by identity resolution."""

    USER_ID = "user_id", "User ID"
    EMAIL = "email", "Email"
    DEVICE_ID = "device_id", "Device ID"
    INSTALL_TOKEN = "install_token", "Install token"
    AMPLITUDE_ID = "amplitude_id", "Amplitude ID"
    USERNAME = "username", "Username"
    FB_ID = "fb_id", "Facebook ID"
    PROPERTY = "property", "A named user property"


_SCOPE_TAG = {ApiKeyScope.INBOUND: "cci", ApiKeyScope.MANAGEMENT: "ccm"}
PREFIX_LENGTH = 12  # "cci_" + 8 characters: enough to tell keys apart in lists and logs


def hash_key(raw_key: str) -> str:
    """SHA-512, not a password hasher: keys are 256-bit random, so a slow hash buys nothing and
    would cost ~0.2 s on every inbound request."""
    return hashlib.sha512(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(WorkspaceScopedQuerySet):
    def active(self) -> Self:
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class ApiKey(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120)
    scope = models.CharField(max_length=16, choices=ApiKeyScope.choices)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=128, unique=True, editable=False)
    identity_kind = models.CharField(
        max_length=16,
        choices=IdentityKind.choices,
        default=IdentityKind.USER_ID,
        help_text="Inbound keys: what kind of identifier the pushed ids are.",
    )
    identity_property = models.CharField(
        max_length=120, blank=True, help_text="When the identity kind is a named user property: its name."
    )
    access = models.CharField(
        max_length=8,
        choices=ApiKeyAccess.choices,
        default=ApiKeyAccess.READ,
        help_text="Management keys: what the key may do. Ignored for inbound keys.",
    )
    # The person a management key acts for: it is revoked when they are deactivated or stop being
    # an owner or ops of the workspace (integrations.key_owner). None: made by manage.py or the demo.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Optional; the key answers 401 from then on.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, workspace: Workspace, scope: str, name: str, **extra) -> tuple["ApiKey", str]:
        """Create a key and return it with the raw secret, which is never stored or shown again."""
        raw = f"{_SCOPE_TAG[ApiKeyScope(scope)]}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(
            workspace=workspace, scope=scope, name=name, prefix=raw[:PREFIX_LENGTH], key_hash=hash_key(raw), **extra
        )
        return key, raw

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def role(self) -> str:
        """The role a management key acts with (see ApiKeyAccess)."""
        return ACCESS_ROLE[ApiKeyAccess(self.access)]

    def revoke(self, reason: str = "") -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.revoked_reason = reason[:200]
            self.save(update_fields=["revoked_at", "revoked_reason"])

    def touch(self) -> None:
        """Record use at most once a minute: a write per inbound request would be wasted I/O."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


def authenticate_key(raw_key: str) -> ApiKey | None:
    """The active key matching this raw value, or None. Lookup is by hash (unique index)."""
    if not raw_key or len(raw_key) > 200:
        return None
    return ApiKey.objects.select_related("workspace").filter(key_hash=hash_key(raw_key)).first()
