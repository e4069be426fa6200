"""Management API for the inbox: recent batches with their counts and status, and the backlog."""

from django.db.models import QuerySet
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from integrations.api import WorkspaceScopedViewSet
from integrations.api_auth import ManagementAccess
from integrations.inbound.apply import backlog
from integrations.inbound.models import InboundBatch


class InboundBatchSerializer(serializers.ModelSerializer):
    api_key_prefix = serializers.CharField(source="api_key.prefix", read_only=True, default=None)

    class Meta:
        model = InboundBatch
        fields = [
            "id",
            "endpoint",
            "segment_id",
            "api_key_prefix",
            "identity_kind",
            "status",
            "item_count",
            "invalid_count",
            "invalid",
            "conflicts",
            "added",
            "removed",
            "profiles_created",
            "merges",
            "other_calls",
            "attempts",
            "last_error",
            "received_at",
            "applied_at",
        ]


class InboundBatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Pushes received (newest first). Filter with ?status=accepted|applied|failed."""

    model = InboundBatch
    serializer_class = InboundBatchSerializer
    permission_classes = [ManagementAccess]

    def get_queryset(self) -> QuerySet[InboundBatch]:
        queryset = super().get_queryset().select_related("api_key").defer("body")
        if self.request.query_params.get("status"):
            queryset = queryset.filter(status=self.request.query_params["status"])
        return queryset

    @action(detail=False, methods=["get"])
    def backlog(self, request) -> Response:
        return Response({"accepted_not_applied": backlog(request.workspace.pk)})
