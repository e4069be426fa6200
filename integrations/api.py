"""Management API for the pipes' credentials: authorizations and API keys."""

from datetime import datetime

from django.db import IntegrityError
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from integrations.api_auth import CanManageCredentials, KeyPrincipal, ManagementAccess
from integrations.connectors.registry import credentials
from integrations.models import ApiKey, ApiKeyAccess, ApiKeyScope, Authorization


class WorkspaceScopedViewSet(viewsets.GenericViewSet):
    """Every queryset is filtered by the caller's workspace: other workspaces' rows are 404."""

    model = None

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no workspace
            return self.model.objects.none()
        return self.model.objects.filter(workspace=self.request.workspace)


class InWorkspace(serializers.PrimaryKeyRelatedField):
    """A reference to a row of the caller's workspace, by id.

    An id that does not exist and an id of another workspace get the same answer, so nobody can
    tell other tenants' ids from unused ones (the same holds for ids in URLs: 404 "Not found.")."""

    default_error_messages = {"does_not_exist": "Not found in this workspace."}

    def get_queryset(self) -> QuerySet:
        workspace = getattr(self.context.get("request"), "workspace", None)
        return super().get_queryset().filter(workspace=workspace) if workspace else super().get_queryset().none()


class AuthorizationSerializer(serializers.ModelSerializer):
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        write_only=True,
        required=False,
        help_text="Secret fields; write-only. A blank value keeps the saved secret.",
    )
    masked_secrets = serializers.SerializerMethodField()

    class Meta:
        model = Authorization
        fields = [
            "id",
            "provider",
            "label",
            "description",
            "fields",
            "secrets",
            "masked_secrets",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_masked_secrets(self, obj: Authorization) -> dict:
        return obj.masked_secrets()

    def validate(self, attrs) -> dict:
        provider = attrs.get("provider") or (self.instance and self.instance.provider)
        spec = credentials(provider)
        unknown = set(attrs.get("fields", {})) - set(spec.plain_fields)
        if unknown:
            raise ValidationError({"fields": [f"{spec.label} has no field {name!r}." for name in sorted(unknown)]})
        unknown = set(attrs.get("secrets", {})) - set(spec.secret_fields)
        if unknown:
            raise ValidationError({"secrets": [f"{spec.label} has no secret {name!r}." for name in sorted(unknown)]})
        if self.instance and "provider" in attrs and attrs["provider"] != self.instance.provider:
            raise ValidationError({"provider": ["The provider of a saved authorization cannot change."]})
        return attrs

    def save(self, **kwargs) -> Authorization:
        secrets = self.validated_data.pop("secrets", None)
        instance = self.instance or Authorization(**{**self.validated_data, **kwargs})
        if self.instance is not None:
            for name, value in {**self.validated_data, **kwargs}.items():
                setattr(instance, name, value)
        if secrets is not None:
            instance.set_secrets(secrets)
        try:
            instance.save()
        except IntegrityError:
            raise ValidationError({"label": ["An authorization with this label already exists."]}) from None
        self.instance = instance
        return instance


class AuthorizationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    WorkspaceScopedViewSet,
):
    """Partner credentials. Owners, ops and management keys only; secrets are write-only and masked."""

    model = Authorization
    serializer_class = AuthorizationSerializer
    permission_classes = [ManagementAccess, CanManageCredentials]

    def perform_create(self, serializer) -> None:
        serializer.save(workspace=self.request.workspace)


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "scope",
            "access",
            "prefix",
            "identity_kind",
            "identity_property",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "revoked_reason",
        ]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at", "revoked_reason"]

    def validate_expires_at(self, value) -> datetime | None:
        if value is not None and value <= timezone.now():
            raise ValidationError("Pick a time in the future (or leave it out: the key does not expire).")
        return value


class NewApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full key. Shown once, never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, WorkspaceScopedViewSet):
    model = ApiKey
    serializer_class = ApiKeySerializer
    permission_classes = [ManagementAccess, CanManageCredentials]

    @extend_schema(responses={201: NewApiKeySerializer})
    def create(self, request, *args, **kwargs) -> Response:
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # A key made by a key follows the same owner (key_owner revokes both with them).
        user = request.user.api_key.created_by if isinstance(request.user, KeyPrincipal) else request.user
        key, raw = ApiKey.issue(
            request.workspace,
            scope=data["scope"],
            name=data["name"],
            access=data.get("access", ApiKeyAccess.READ),
            expires_at=data.get("expires_at"),
            identity_kind=data.get("identity_kind", "user_id"),
            identity_property=data.get("identity_property", ""),
            created_by=user,
        )
        body = NewApiKeySerializer(key).data
        body["key"] = raw
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None) -> Response:
        key = self.get_object()
        key.revoke(f"revoked by {request.user}")
        return Response(ApiKeySerializer(key).data)


class WorkspaceSerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField()
    timezone = serializers.CharField()
    role = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    access = serializers.CharField(allow_null=True, help_text="A management key's access level; null for a session.")


class WorkspaceViewSet(viewsets.ViewSet):
    @extend_schema(responses={200: WorkspaceSerializer})
    @action(detail=False, methods=["get"])
    def current(self, request) -> Response:
        workspace = request.workspace
        return Response(
            {
                "name": workspace.name,
                "slug": workspace.slug,
                "timezone": workspace.timezone,
                "role": request.api_role,
                "scopes": [ApiKeyScope.MANAGEMENT] if hasattr(request.user, "api_key") else ["session"],
                "access": request.user.api_key.access if hasattr(request.user, "api_key") else None,
            }
        )
