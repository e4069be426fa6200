"""Management API authentication: `Authorization: Bearer <key>` or `Api-Key <key>`, or a console session.

Either way the request ends up with `request.workspace` and `request.api_role`, and every queryset is
filtered by that workspace: a key of another workspace sees nothing of this one (404, not 403).
"""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from integrations.key_owner import owner_gone
from integrations.models import ApiKey, ApiKeyScope, authenticate_key
from workspaces.models import Membership, Role


@dataclass
class KeyPrincipal:
    """Stands in for request.user when a request is authenticated by an API key."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def username(self) -> str:
        return f"api-key:{self.api_key.prefix}"

    def __str__(self) -> str:
        return self.username


def key_from_header(request) -> str | None:
    header = get_authorization_header(request).decode("latin-1")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() in {"bearer", "api-key"} and value.strip():
        return value.strip()
    return None


def usable_key(raw: str) -> ApiKey:
    """The key for a raw value, or the DRF 401 saying why not: unknown, revoked (also when its owner
    no longer qualifies, see integrations.key_owner) or expired."""
    key = authenticate_key(raw)
    if key is None:
        raise exceptions.AuthenticationFailed("Invalid API key.", code="invalid_api_key")
    if key.revoked_at is None and (reason := owner_gone(key)):
        key.revoke(reason)
    if key.revoked_at is not None:
        raise exceptions.AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
    if key.is_expired:
        raise exceptions.AuthenticationFailed("This API key has expired.", code="expired_api_key")
    key.touch()
    return key


def check_key(raw: str, scope: str) -> ApiKey:
    """Resolve a raw key for a scope or raise the right DRF error (401 unknown/revoked/expired, 403 scope)."""
    key = usable_key(raw)
    if key.scope != scope:
        raise exceptions.PermissionDenied(f"This API key lacks the '{scope}' scope.", code="missing_scope")
    return key


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request) -> tuple[KeyPrincipal, ApiKey] | None:
        raw = key_from_header(request)
        if raw is None:
            return None
        key = usable_key(raw)
        return KeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ManagementAccess(BasePermission):
    """A management-scoped key, or a signed-in member of a workspace. Sets request.workspace/api_role."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            raise exceptions.NotAuthenticated("Authentication credentials were not provided.", code="not_authenticated")
        if isinstance(user, KeyPrincipal):
            key = user.api_key
            if key.scope != ApiKeyScope.MANAGEMENT:
                raise exceptions.PermissionDenied(
                    f"This API key lacks the '{ApiKeyScope.MANAGEMENT}' scope.", code="missing_scope"
                )
            request.workspace = key.workspace
            # A management key acts with the role its access level names (read: viewer, write:
            # marketer, admin: ops), so every role check below applies to keys unchanged.
            request.api_role = key.role
            return True
        membership = _session_membership(request)
        if membership is None:
            raise exceptions.PermissionDenied("You are not a member of any workspace.", code="no_workspace")
        request.workspace = membership.workspace
        request.api_role = membership.role
        return True


def _session_membership(request) -> Membership | None:
    """The workspace named by the X-Workspace header (a slug) or the console's current workspace."""
    memberships = Membership.objects.filter(user=request.user).select_related("workspace")
    slug = request.headers.get("X-Workspace")
    if slug:
        return memberships.filter(workspace__slug=slug).first()
    current = getattr(request._request, "membership", None)
    return current or memberships.order_by("workspace__name").first()


class CanManageCredentials(BasePermission):
    message = "Only owners and ops can see or change credentials."

    def has_permission(self, request, view) -> bool:
        return getattr(request, "api_role", None) in {Role.OWNER, Role.OPS}


class CanAct(BasePermission):
    """Viewers read; marketers, ops and owners act."""

    message = "Viewers can read but not change anything."

    def has_permission(self, request, view) -> bool:
        if request.method in {"GET", "HEAD", "OPTIONS"}:
            return True
        return getattr(request, "api_role", None) in {Role.OWNER, Role.OPS, Role.MARKETER}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the key header in the OpenAPI schema."""

    target_class = "integrations.api_auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A management-scoped key: `Authorization: Bearer <key>` (or `Api-Key <key>`).",
        }
