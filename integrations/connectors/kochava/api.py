"""Management API: Kochava event streams (cursor, counts, held-back users) and "stream now"."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from integrations.api import WorkspaceScopedViewSet
from integrations.api_auth import CanAct, ManagementAccess
from integrations.connectors.kochava.models import KochavaStream, KochavaUserLink
from integrations.connectors.kochava.tasks import run_kochava_stream


class KochavaStreamSerializer(serializers.ModelSerializer):
    links_pending = serializers.SerializerMethodField()
    links_linked = serializers.SerializerMethodField()

    class Meta:
        model = KochavaStream
        fields = [
            "id",
            "destination",
            "last_event_id",
            "next_run_at",
            "events_sent",
            "events_skipped",
            "events_rejected",
            "last_error",
            "resend_bound",
            "lost_note",
            "links_pending",
            "links_linked",
            "updated_at",
        ]
        read_only_fields = fields

    def get_links_pending(self, obj) -> int:
        return KochavaUserLink.objects.filter(destination_id=obj.destination_id, status="pending").count()

    def get_links_linked(self, obj) -> int:
        return KochavaUserLink.objects.filter(destination_id=obj.destination_id, status="linked").count()


class KochavaStreamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Kochava event streams: cursor, counts, held-back users. POST …/run streams now."""

    model = KochavaStream
    serializer_class = KochavaStreamSerializer
    permission_classes = [ManagementAccess, CanAct]

    @extend_schema(request=None, responses={202: dict})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None) -> Response:
        stream = self.get_object()
        run_kochava_stream.delay(stream.destination_id)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)


# Registered under /api/v1/ by the registry: (prefix, viewset, basename).
ROUTES = [("kochava-streams", KochavaStreamViewSet, "kochava-stream")]
