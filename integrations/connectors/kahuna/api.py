"""Management API: Kahuna campaigns (list, edit, refresh from Kahuna) and Export to Kahuna."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from audiences.models import Segment
from config.params import int_param
from integrations.api import InWorkspace, WorkspaceScopedViewSet
from integrations.api_auth import CanAct, CanManageCredentials, ManagementAccess
from integrations.connectors.base import ConnectorError
from integrations.connectors.kahuna.actions import ExportRefused, request_export
from integrations.connectors.kahuna.export import refresh_campaigns
from integrations.connectors.kahuna.models import KahunaCampaign, KahunaExport
from integrations.delivery.models import Destination


class KahunaCampaignSerializer(serializers.ModelSerializer):
    serializer_related_field = InWorkspace

    class Meta:
        model = KahunaCampaign
        fields = [
            "id",
            "destination",
            "name",
            "campaign_id",
            "environment",
            "enabled",
            "campaign_type",
            "refreshed_at",
            "updated_at",
        ]
        read_only_fields = ["id", "refreshed_at", "updated_at"]

    def validate_destination(self, destination: Destination) -> Destination:
        if destination.kind != "kahuna":
            raise ValidationError("Pick a Kahuna destination of this workspace.")
        return destination


class KahunaCampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    WorkspaceScopedViewSet,
):
    """Campaigns kept in the console (name, Kahuna id, environment p/s, enabled).

    Everyone reads them and marketers refresh them from Kahuna (they pick one for Export to Kahuna,
    as in the console); only ops and owners add or edit them by hand.
    """

    model = KahunaCampaign
    serializer_class = KahunaCampaignSerializer
    permission_classes = [ManagementAccess, CanAct]

    def get_permissions(self) -> list[BasePermission]:
        if self.action in ("create", "update", "partial_update"):
            return [ManagementAccess(), CanManageCredentials()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[KahunaCampaign]:
        queryset = super().get_queryset()
        params = self.request.query_params
        if "environment" in params:
            queryset = queryset.filter(environment=params["environment"])
        if "enabled" in params:
            queryset = queryset.filter(enabled=params["enabled"] in ("1", "true"))
        destination = int_param(params, "destination")
        if destination is not None:
            queryset = queryset.filter(destination_id=destination)
        return queryset

    def perform_create(self, serializer) -> None:
        serializer.save(workspace=self.request.workspace)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=False, methods=["post"], url_path=r"refresh/(?P<destination_id>\d+)")
    def refresh(self, request, destination_id=None) -> Response:
        destination = Destination.objects.filter(workspace=request.workspace, kind="kahuna", pk=destination_id).first()
        if destination is None:
            raise ValidationError({"destination": ["No Kahuna destination with this id in this workspace."]})
        try:
            listed = refresh_campaigns(destination)
        except ConnectorError as error:
            return Response(
                {"error": {"code": "partner_error", "message": error.message}}, status=status.HTTP_502_BAD_GATEWAY
            )
        return Response({"listed": listed})


class KahunaExportSerializer(serializers.ModelSerializer):
    segment = InWorkspace(queryset=Segment.objects.all())
    campaign = InWorkspace(queryset=KahunaCampaign.objects.all())

    class Meta:
        model = KahunaExport
        fields = [
            "id",
            "segment",
            "campaign",
            "environment",
            "status",
            "job_id",
            "job_ids",
            "users_total",
            "users_sent",
            "invalid",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = [f for f in fields if f not in ("segment", "campaign")]


class KahunaExportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, WorkspaceScopedViewSet
):
    """Export to Kahuna: POST {segment, campaign} sends the segment to an enabled Adaptive campaign."""

    model = KahunaExport
    serializer_class = KahunaExportSerializer
    permission_classes = [ManagementAccess, CanAct]

    def create(self, request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            export = request_export(
                serializer.validated_data["segment"], serializer.validated_data["campaign"], user=request.user
            )
        except ExportRefused as refused:
            raise ValidationError({refused.field: [refused.message]}) from None
        return Response(self.get_serializer(export).data, status=status.HTTP_201_CREATED)


# Registered under /api/v1/ by the registry: (prefix, viewset, basename).
ROUTES = [
    ("kahuna-campaigns", KahunaCampaignViewSet, "kahuna-campaign"),
    ("kahuna-exports", KahunaExportViewSet, "kahuna-export"),
]
