"""Management API for audiences: segments with their 24-hour movement, a segment's members, and a
profile looked up by any identity value (identities, properties, memberships, ledger history)."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from audiences.identity import identities_with_value
from audiences.models import Identity, MembershipChange, Profile, ProfileMerge, Segment, SegmentMember
from audiences.stats import activity_24h
from integrations.api import WorkspaceScopedViewSet
from integrations.api_auth import ManagementAccess

HISTORY_LIMIT = 200


class SegmentSerializer(serializers.ModelSerializer):
    type_label = serializers.CharField(source="get_type_display", read_only=True)
    # Same numbers as the console: both read audiences.stats (the view fills "activity" per page).
    added_24h = serializers.SerializerMethodField()
    removed_24h = serializers.SerializerMethodField()

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "type",
            "type_label",
            "external_id",
            "partner_name",
            "size",
            "last_changed_at",
            "last_computed_at",
            "added_24h",
            "removed_24h",
            "created_at",
        ]

    def _activity(self, obj: Segment):
        activity = self.context.get("activity")
        if activity is None or obj.pk not in activity:
            activity = activity_24h([obj.pk])
        return activity[obj.pk]

    def get_added_24h(self, obj: Segment) -> int:
        return self._activity(obj).added_24h

    def get_removed_24h(self, obj: Segment) -> int:
        return self._activity(obj).removed_24h


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = ["kind", "value", "source", "created_at"]


class MemberSerializer(serializers.ModelSerializer):
    identities = IdentitySerializer(source="profile.identities", many=True, read_only=True)

    class Meta:
        model = SegmentMember
        fields = ["id", "profile_id", "added_at", "identities"]


class LedgerRowSerializer(serializers.ModelSerializer):
    segment_name = serializers.CharField(source="segment.name", read_only=True)
    partner_sync = serializers.SerializerMethodField()

    class Meta:
        model = MembershipChange
        fields = [
            "id",
            "segment_id",
            "segment_name",
            "action",
            "source",
            "cause_type",
            "cause_id",
            "occurred_at",
            "partner_sync",
        ]

    def get_partner_sync(self, obj: MembershipChange) -> dict:
        return obj.partner_sync_properties()


class SegmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Segments with size (maintained by the ledger) and adds/removals over the last 24 hours."""

    model = Segment
    serializer_class = SegmentSerializer
    permission_classes = [ManagementAccess]

    def get_queryset(self) -> QuerySet[Segment]:
        queryset = super().get_queryset()
        if self.request.query_params.get("type"):
            queryset = queryset.filter(type=self.request.query_params["type"])
        return queryset

    def list(self, request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(), "activity": activity_24h([segment.pk for segment in page])}
        return self.get_paginated_response(SegmentSerializer(page, many=True, context=context).data)

    @extend_schema(
        parameters=[OpenApiParameter("identity", str, description="Only members holding this identity value.")],
        responses={200: MemberSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None) -> Response:
        segment = self.get_object()
        members = (
            SegmentMember.objects.filter(segment=segment)
            .select_related("profile")
            .prefetch_related("profile__identities")
        )
        value = request.query_params.get("identity")
        if value:
            members = members.filter(
                profile__in=identities_with_value(request.workspace.pk, value).values("profile_id")
            )
        page = self.paginate_queryset(members)
        return self.get_paginated_response(MemberSerializer(page, many=True).data)


class ProfileDetailSerializer(serializers.Serializer):
    """The shape profile_detail() returns (documents the API; the view builds the dict itself)."""

    id = serializers.IntegerField()
    identities = serializers.ListField(child=serializers.DictField())
    properties = serializers.DictField()
    event_counts = serializers.DictField()
    memberships = serializers.ListField(child=serializers.DictField())
    ledger = serializers.ListField(child=serializers.DictField())
    merges = serializers.ListField(child=serializers.DictField())
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ProfileViewSet(mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """A person: identities, properties, memberships, ledger history and merges."""

    model = Profile
    permission_classes = [ManagementAccess]
    serializer_class = ProfileDetailSerializer  # responses are built by profile_detail

    def retrieve(self, request, pk=None) -> Response:
        return Response(profile_detail(self.get_object()))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "identity", str, required=True, description="Any identity value (user id, email, device id…)."
            ),
            OpenApiParameter("kind", str, description="Restrict to one identity kind."),
        ],
    )
    @action(detail=False, methods=["get"])
    def lookup(self, request) -> Response:
        value = request.query_params.get("identity")
        if not value:
            raise ValidationError({"identity": ["required: the identity value to look up"]})
        identities = identities_with_value(request.workspace.pk, value, request.query_params.get("kind") or None)
        profiles = Profile.objects.filter(workspace=request.workspace, pk__in=identities.values("profile_id"))
        # Identities move with merges, so the value always leads to the surviving profile.
        return Response({"results": [profile_detail(profile) for profile in profiles[:20]]})


def profile_detail(profile: Profile) -> dict:
    memberships = SegmentMember.objects.filter(profile=profile).select_related("segment")
    history = (
        MembershipChange.objects.filter(profile_id=profile.pk).select_related("segment").order_by("-id")[:HISTORY_LIMIT]
    )
    merges = ProfileMerge.objects.filter(kept_profile=profile).order_by("-id")
    return {
        "id": profile.pk,
        "identities": IdentitySerializer(profile.identities.order_by("kind", "value"), many=True).data,
        "properties": profile.properties,
        "event_counts": profile.event_counts,
        "memberships": [
            {"segment_id": m.segment_id, "segment_name": m.segment.name, "type": m.segment.type, "added_at": m.added_at}
            for m in memberships
        ],
        "ledger": LedgerRowSerializer(history, many=True).data,
        "merges": [
            {
                "removed_profile_id": m.removed_profile_id,
                "identities": m.identities,
                "reason": m.reason,
                "at": m.created_at,
            }
            for m in merges
        ],
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
    }
