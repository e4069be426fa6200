"""Management API for destinations, sync jobs, runs (with their rows) and the partner-call log."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from audiences.models import Segment
from config.params import int_param
from integrations.api import InWorkspace, WorkspaceScopedViewSet
from integrations.api_auth import CanAct, CanManageCredentials, ManagementAccess
from integrations.api_errors import json_error
from integrations.connectors.registry import connector_class, kind_choices
from integrations.credential_hosts import destination_problem
from integrations.delivery import actions, planning
from integrations.delivery.models import (
    Cadence,
    DeliveryRow,
    Destination,
    PartnerCall,
    RunMode,
    RunStatus,
    SyncJob,
    SyncRun,
)
from integrations.models import Authorization
from integrations.schedules import next_run_after
from workspaces.models import validate_timezone


def _reads_or(permission):
    class Permission(permission):
        def has_permission(self, request, view) -> bool:
            return request.method in SAFE_METHODS or super().has_permission(request, view)

    return Permission


class DestinationSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=kind_choices())
    authorization = InWorkspace(queryset=Authorization.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Destination
        fields = [
            "id",
            "kind",
            "name",
            "config",
            "authorization",
            "health",
            "last_error",
            "health_changed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "health", "last_error", "health_changed_at", "created_at", "updated_at"]

    def validate(self, attrs) -> dict:
        kind = attrs.get("kind") or self.instance.kind
        if self.instance and attrs.get("kind", kind) != self.instance.kind:
            raise ValidationError({"kind": ["The kind of a saved destination cannot change."]})
        cls = connector_class(kind)
        try:
            attrs["config"] = cls.validate_config(attrs.get("config", self.instance.config if self.instance else {}))
        except ValidationError as exc:
            raise ValidationError({"config": exc.detail}) from None
        auth = attrs.get("authorization", self.instance.authorization if self.instance else None)
        if auth is not None and auth.provider != cls.kind:
            raise ValidationError({"authorization": [f"Choose a {cls.kind} authorization of this workspace."]})
        # A new URL or host with the saved credentials would send them there: refused (credential_hosts).
        problem = destination_problem(self.instance, kind, attrs["config"], auth)
        if problem:
            raise ValidationError({"authorization": [problem]})
        return attrs

    def save(self, **kwargs) -> Destination:
        try:
            return super().save(**kwargs)
        except IntegrityError:
            raise ValidationError({"name": ["A destination with this name already exists."]}) from None


class DestinationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    WorkspaceScopedViewSet,
):
    """Where segments go. Owners and ops change them (they hold credentials); everyone reads."""

    model = Destination
    serializer_class = DestinationSerializer
    permission_classes = [ManagementAccess, _reads_or(CanManageCredentials)]

    def perform_create(self, serializer) -> None:
        serializer.save(workspace=self.request.workspace)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None) -> Response:
        ok, message = actions.run_connection_test(self.get_object())
        return Response({"ok": ok, "message": message}, status=status.HTTP_200_OK)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def calls(self, request, pk=None) -> Response:
        calls = PartnerCall.objects.filter(destination=self.get_object()).order_by("-id")[:100]
        return Response([PartnerCallSerializer(c).data for c in calls])


class SyncJobSerializer(serializers.ModelSerializer):
    segment = InWorkspace(queryset=Segment.objects.all())
    destination = InWorkspace(queryset=Destination.objects.all())

    class Meta:
        model = SyncJob
        fields = [
            "id",
            "segment",
            "destination",
            "cadence",
            "time_of_day",
            "timezone",
            "next_run_at",
            "paused",
            "user_id_kind",
            "device_id_kind",
            "partner_state",
            "cursor",
            "last_run_at",
            "created_at",
        ]
        read_only_fields = ["id", "next_run_at", "partner_state", "cursor", "last_run_at", "created_at"]

    def validate(self, attrs: dict) -> dict:
        cadence = attrs.get("cadence", self.instance.cadence if self.instance else Cadence.DAILY)
        if cadence == Cadence.DAILY and not attrs.get("time_of_day", getattr(self.instance, "time_of_day", None)):
            raise ValidationError({"time_of_day": ["A daily sync needs a time of day."]})
        tz = attrs.get("timezone")
        if tz is not None:
            try:
                validate_timezone(tz)
            except DjangoValidationError:
                raise ValidationError({"timezone": [f"{tz!r} is not an IANA time zone."]}) from None
        return attrs


class SyncRunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "job",
            "mode",
            "trigger",
            "status",
            "error",
            "full",
            "from_cursor",
            "snapshot_cursor",
            "rows_total",
            "rows_done",
            "to_add",
            "to_remove",
            "delivered",
            "invalid",
            "rejected",
            "failed",
            "retried",
            "carried_in",
            "attempt",
            "resend_bound",
            "lost_note",
            "next_attempt_at",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields


class DeliveryRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryRow
        fields = ["id", "profile_id", "action", "user_id", "device_id", "status", "reason", "partner_code", "attempts"]


class PartnerCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = PartnerCall
        fields = [
            "id",
            "run",
            "created_at",
            "method",
            "url",
            "request_summary",
            "status_code",
            "response_summary",
            "duration_ms",
            "error",
        ]  # never the raw answer (response_excerpt) nor error_detail: those are for ops in the admin


class SyncJobViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    WorkspaceScopedViewSet,
):
    """Segment → destination syncs and their actions. Marketers, ops and owners act; viewers read."""

    model = SyncJob
    serializer_class = SyncJobSerializer
    permission_classes = [ManagementAccess, _reads_or(CanAct)]

    def perform_create(self, serializer: SyncJobSerializer) -> None:
        actions.schedule_new_job(serializer.save(workspace=self.request.workspace))

    def perform_update(self, serializer) -> None:
        job = serializer.save()
        if job.cadence != Cadence.ONE_TIME:
            job.next_run_at = next_run_after(job, timezone.now())
            job.save(update_fields=["next_run_at"])

    def _start(self, mode: str) -> Response:
        job = self.get_object()
        run = actions.run_now(job, trigger="api", mode=mode)
        code = status.HTTP_202_ACCEPTED if run.status == RunStatus.QUEUED else status.HTTP_409_CONFLICT
        return Response(SyncRunSerializer(run).data, status=code)

    @extend_schema(request=None, responses={202: SyncRunSerializer, 409: SyncRunSerializer})
    @action(detail=True, methods=["post"], url_path="sync-now")
    def sync_now(self, request, pk=None) -> Response:
        return self._start(RunMode.AUTO)

    @extend_schema(request=None, responses={202: SyncRunSerializer, 409: SyncRunSerializer})
    @action(detail=True, methods=["post"], url_path="full-resync")
    def full_resync(self, request, pk=None) -> Response:
        return self._start(RunMode.FULL)

    @extend_schema(request=None, responses={202: SyncRunSerializer, 409: SyncRunSerializer})
    @action(detail=True, methods=["post"], url_path="retry-failed")
    def retry_failed(self, request, pk=None) -> Response:
        return self._start(RunMode.RETRY)

    @extend_schema(request=None, responses={200: SyncJobSerializer})
    @action(detail=True, methods=["post"], url_path="reset-diff")
    def reset_diff(self, request, pk=None) -> Response:
        job = self.get_object()
        try:
            actions.reset_diff(job)
        except ValueError as exc:
            return json_error(409, "run_in_progress", str(exc))
        job.refresh_from_db()
        return Response(SyncJobSerializer(job).data)

    @extend_schema(request=None, responses={200: SyncJobSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None) -> Response:
        return Response(SyncJobSerializer(actions.pause(self.get_object())).data)

    @extend_schema(request=None, responses={200: SyncJobSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None) -> Response:
        return Response(SyncJobSerializer(actions.resume(self.get_object())).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="dry-run")
    def dry_run(self, request, pk=None) -> Response:
        mode = request.data.get("mode", RunMode.AUTO) if hasattr(request, "data") else RunMode.AUTO
        if mode not in RunMode.values:
            return json_error(400, "invalid", "Unknown mode.", {"mode": [f"Choose one of {RunMode.values}."]})
        return Response(planning.dry_run(self.get_object(), mode=mode))


class SyncRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Run history; filter with ?job=<id>. Rows of a run: /runs/<id>/rows/?status=rejected."""

    model = SyncRun
    serializer_class = SyncRunSerializer
    permission_classes = [ManagementAccess]

    def get_queryset(self) -> QuerySet[SyncRun]:
        queryset = super().get_queryset()
        job = int_param(self.request.query_params, "job") if getattr(self, "request", None) else None
        return queryset if job is None else queryset.filter(job_id=job)

    @extend_schema(responses={200: DeliveryRowSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def rows(self, request, pk=None) -> Response:
        run = self.get_object()
        rows = DeliveryRow.objects.filter(run_id=run.pk).order_by("id")
        wanted = request.query_params.get("status")
        if wanted:
            rows = rows.filter(status=wanted)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(DeliveryRowSerializer(page, many=True).data)
