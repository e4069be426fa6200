"""Management API for campaigns: /api/v1/campaigns/ (docs/api.md, docs/campaigns.md).

Create, list, read; update and delete while a draft; estimate, launch, stop; the enrollments.
The fields are checked by campaigns.validation.validate_campaign, the same rule as the console's
form and the admin's, so a refused channel is a 400 naming `channel` and the reason.
"""

from django.db.models import Q, QuerySet
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from audiences.identity import identities_with_value
from audiences.models import Segment
from campaigns import service
from campaigns.models import Campaign, Enrollment, EnrollmentStatus
from campaigns.service import EDITABLE, CampaignInvalid, CampaignRefused
from config.params import int_param
from integrations.api import InWorkspace, WorkspaceScopedViewSet
from integrations.api_auth import CanAct, ManagementAccess
from integrations.api_errors import json_error
from integrations.delivery.models import Destination


class CampaignSerializer(serializers.ModelSerializer):
    segment = InWorkspace(queryset=Segment.objects.all())
    destination = InWorkspace(queryset=Destination.objects.all(), help_text="A CleverTap destination.")
    send_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="First send when `when` is `at`; a time without an offset is read in the workspace's time zone.",
    )
    marker = serializers.CharField(read_only=True, help_text="Tag in every CleverTap campaign name it creates.")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "kind",
            "segment",
            "destination",
            "channel",
            "content",
            "when",
            "send_at",
            "repeat",
            "reentry",
            "status",
            "status_reason",
            "status_changed_at",
            "reach",
            "reach_checked_at",
            "next_run_at",
            "report",
            "report_refreshed_at",
            "marker",
            "progress",
            "launched_at",
            "last_activity_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [f for f in fields if f not in EDITABLE]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        workspace = getattr(self.context.get("request"), "workspace", None)
        if workspace is not None and "send_at" in self.fields:
            self.fields["send_at"].timezone = workspace.tz  # DRF reads a naive time in this zone

    def get_progress(self, obj: Campaign) -> dict:
        return service.progress(obj)

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            for name in ("name", "kind", "segment", "destination", "channel"):
                if name not in attrs:
                    raise ValidationError({name: ["This field is required."]})
        return attrs

    def create(self, validated_data: dict) -> Campaign:
        request = self.context["request"]
        user = request.user if getattr(request.user, "pk", None) else None  # a key is not a person
        try:
            return service.create_campaign(request.workspace, user=user, **validated_data)
        except CampaignInvalid as exc:
            raise ValidationError(exc.errors) from None

    def update(self, instance: Campaign, validated_data: dict) -> Campaign:
        try:
            return service.update_campaign(instance, **validated_data)
        except CampaignInvalid as exc:
            raise ValidationError(exc.errors) from None


class EnrollmentSerializer(serializers.ModelSerializer):
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    change = serializers.IntegerField(source="change_id", read_only=True, help_text="The ledger change's id.")
    profile = serializers.IntegerField(source="profile_id", read_only=True)

    class Meta:
        model = Enrollment
        # The partner's parsed answer only: the raw one (answer_raw) is for ops in the admin.
        fields = [
            "id",
            "profile",
            "change",
            "change_at",
            "to_kind",
            "to_value",
            "status",
            "status_label",
            "answer",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class EstimateSerializer(serializers.Serializer):
    reach = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


def _reads_or_acts():
    class Permission(CanAct):
        def has_permission(self, request, view) -> bool:
            return request.method in SAFE_METHODS or super().has_permission(request, view)

    return Permission


class CampaignViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    WorkspaceScopedViewSet,
):
    """CleverTap campaigns on synced segments. Marketers, ops and owners act; viewers read."""

    model = Campaign
    serializer_class = CampaignSerializer
    permission_classes = [ManagementAccess, _reads_or_acts()]

    def get_queryset(self) -> QuerySet[Campaign]:
        queryset = super().get_queryset().select_related("segment", "destination")
        if getattr(self, "swagger_fake_view", False) or self.action != "list":
            return queryset
        params = self.request.query_params
        for name in ("status", "kind", "channel"):
            if params.get(name):
                queryset = queryset.filter(**{name: params[name]})
        segment = int_param(params, "segment")
        return queryset if segment is None else queryset.filter(segment_id=segment)

    def update(self, request, *args, **kwargs) -> Response | JsonResponse:
        try:
            return super().update(request, *args, **kwargs)
        except CampaignRefused as exc:
            return json_error(409, "not_a_draft", str(exc))

    def destroy(self, request, *args, **kwargs) -> Response | JsonResponse:
        try:
            service.delete_campaign(self.get_object())
        except CampaignRefused as exc:
            return json_error(409, "not_a_draft", str(exc))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: EstimateSerializer})
    @action(detail=True, methods=["post"])
    def estimate(self, request, pk=None) -> Response:
        result = service.estimate(self.get_object())
        return Response({"reach": result.reach, "message": result.message})

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def launch(self, request, pk=None) -> Response:
        try:
            campaign = service.launch(self.get_object(), user=request.user)
        except CampaignInvalid as exc:
            raise ValidationError(exc.errors) from None
        except CampaignRefused as exc:
            return json_error(409, "refused", str(exc))
        return Response(CampaignSerializer(campaign, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None) -> Response:
        try:
            campaign = service.stop(self.get_object(), user=request.user)
        except CampaignRefused as exc:
            return json_error(409, "refused", str(exc))
        return Response(CampaignSerializer(campaign, context=self.get_serializer_context()).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=EnrollmentStatus.values, description="Only this status."),
            OpenApiParameter("person", str, description="Any identity value of the person, or their profile id."),
        ],
        responses={200: EnrollmentSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def enrollments(self, request, pk=None) -> Response | JsonResponse:
        campaign = self.get_object()
        rows = Enrollment.objects.filter(campaign=campaign)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in EnrollmentStatus.values:
                return json_error(
                    400, "invalid", "Unknown status.", {"status": [f"Choose from {EnrollmentStatus.values}."]}
                )
            rows = rows.filter(status=wanted)
        person = (request.query_params.get("person") or "").strip()
        if person:
            profiles = list(identities_with_value(campaign.workspace_id, person).values_list("profile_id", flat=True))
            match = Q(profile_id__in=profiles) | Q(to_value=person)
            if person.isdigit():
                match |= Q(profile_id=int(person))
            rows = rows.filter(match)
        page = self.paginate_queryset(rows.order_by("id"))
        return self.get_paginated_response(EnrollmentSerializer(page, many=True).data)
