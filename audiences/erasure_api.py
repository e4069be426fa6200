"""Management API for erasures: erase a person by any identity value, read the audit rows.

Owners, ops and management keys only: marketers and viewers get 403.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from audiences.erasure import AmbiguousIdentity, ErasureBusy, erase
from audiences.identity import MAX_IDENTITY_LENGTH
from audiences.models import Erasure
from integrations.api import WorkspaceScopedViewSet
from integrations.api_auth import KeyPrincipal, ManagementAccess
from integrations.api_errors import error_body
from workspaces.models import Role

ERASER_ROLES = frozenset({Role.OWNER, Role.OPS})


class CanErase(BasePermission):
    message = "Only owners and ops can erase people or read erasures."

    def has_permission(self, request, view) -> bool:
        return getattr(request, "api_role", None) in ERASER_ROLES


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("must be valid text (no lone surrogate characters)") from None
    return value


class ErasureRequestSerializer(serializers.Serializer):
    identity = serializers.CharField(
        max_length=MAX_IDENTITY_LENGTH, validators=[_encodable], help_text="Any identity value of the person."
    )
    kind = serializers.CharField(
        max_length=140,
        required=False,
        allow_blank=True,
        validators=[_encodable],
        help_text="Only when the value names several people under different kinds (user_id, email, …).",
    )


class ErasureSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by_label", read_only=True)

    class Meta:
        model = Erasure
        fields = ["id", "via", "requested_by", "counts", "destinations", "created_at", "finished_at"]


def asker_label(user) -> str:
    if isinstance(user, KeyPrincipal):
        return f"API key {user.api_key.prefix}… ({user.api_key.name})"
    return user.get_username()


class ErasureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Erasures of people: POST erases one (its answer carries each destination's outcome); the list is
    the audit trail — when, who asked, what was removed — and never names whom."""

    model = Erasure
    serializer_class = ErasureSerializer
    permission_classes = [ManagementAccess, CanErase]

    @extend_schema(request=ErasureRequestSerializer, responses={201: ErasureSerializer})
    def create(self, request) -> Response:
        given = ErasureRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        user = request.user
        try:
            result = erase(
                request.workspace,
                value=given.validated_data["identity"],
                kind=given.validated_data.get("kind") or None,
                user=None if isinstance(user, KeyPrincipal) else user,
                label=asker_label(user),
                via="api",
            )
        except AmbiguousIdentity as exc:
            raise ValidationError({"kind": [str(exc)]}) from None
        except ErasureBusy as exc:
            return Response(
                error_body("busy", str(exc)), status=status.HTTP_409_CONFLICT, headers={"Retry-After": "60"}
            )
        return Response(ErasureSerializer(Erasure.objects.get(pk=result.erasure_id)).data, status=201)
