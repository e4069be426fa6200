"""Management API for Amplitude sources: projects (test connection, quota), import jobs, runs."""

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.params import int_param
from integrations.api import InWorkspace, WorkspaceScopedViewSet
from integrations.api_auth import CanAct, CanManageCredentials, ManagementAccess
from integrations.api_errors import error_body
from integrations.models import Authorization
from integrations.sources import quota
from integrations.sources.actions import create_run, retry_run
from integrations.sources.amplitude import AmplitudeError
from integrations.sources.cohorts import list_project_cohorts
from integrations.sources.models import AmplitudeProject, CohortImportJob, EventImportJob, ImportRun
from integrations.sources.runs import RunStateError
from integrations.sources.scheduling import first_run_at

_CRUD = (
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
)


class AmplitudeProjectSerializer(serializers.ModelSerializer):
    serializer_related_field = InWorkspace
    download_budget = serializers.SerializerMethodField()

    class Meta:
        model = AmplitudeProject
        fields = ["id", "label", "region", "base_url", "authorization", "project_id", "download_budget", "created_at"]
        read_only_fields = ["id", "created_at"]

    def get_download_budget(self, obj) -> dict:
        return quota.budget(obj).as_dict()

    def validate_authorization(self, value: Authorization) -> Authorization:
        if value.provider != "amplitude":
            raise serializers.ValidationError("Choose an Amplitude authorization (API key and secret key).")
        return value

    def validate(self, attrs: dict) -> dict:
        # The project as it would be saved: its host (region or override) and its authorization.
        project = AmplitudeProject(**{**(self._saved_values()), **attrs})
        errors = project.host_errors()
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _saved_values(self) -> dict:
        if self.instance is None:
            return {}
        return {name: getattr(self.instance, name) for name in ("region", "base_url", "authorization", "label")} | {
            "pk": self.instance.pk
        }


class AmplitudeProjectViewSet(*_CRUD, WorkspaceScopedViewSet):
    """Amplitude projects. Owners and ops only (they carry credentials)."""

    model = AmplitudeProject
    serializer_class = AmplitudeProjectSerializer
    permission_classes = [ManagementAccess, CanManageCredentials]

    def perform_create(self, serializer) -> None:
        serializer.save(workspace=self.request.workspace)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None) -> Response:
        """Lists the project's cohorts: proves the keys and the region are right."""
        try:
            cohorts = list_project_cohorts(self.get_object())
        except AmplitudeError as exc:
            return Response(error_body("amplitude_error", str(exc)), status=status.HTTP_502_BAD_GATEWAY)
        return Response({"ok": True, "cohorts": cohorts})

    @action(detail=True, methods=["get"])
    def quota(self, request, pk=None) -> Response:
        return Response(quota.budget(self.get_object()).as_dict())


class _JobSerializer(serializers.ModelSerializer):
    serializer_related_field = InWorkspace  # the project: of this workspace, or "Not found" either way


class CohortImportJobSerializer(_JobSerializer):
    class Meta:
        model = CohortImportJob
        fields = [
            "id",
            "project",
            "label",
            "cohort_ids",
            "include_properties",
            "prop_keys",
            "amplitude_id_field",
            "cohort_names_field",
            "cadence",
            "time_of_day",
            "timezone",
            "enabled",
            "next_run_at",
        ]
        read_only_fields = ["id", "next_run_at"]

    def validate(self, attrs) -> dict:
        instance = CohortImportJob(
            **{
                **(
                    {}
                    if self.instance is None
                    else {f: getattr(self.instance, f) for f in self.Meta.fields if f != "project"}
                ),
                **attrs,
            }
        )
        instance.clean()
        return attrs


class EventImportJobSerializer(_JobSerializer):
    class Meta:
        model = EventImportJob
        fields = ["id", "project", "label", "backfill_days", "keep_updated", "enabled", "cursor", "next_run_at"]
        read_only_fields = ["id", "cursor", "next_run_at"]


class ImportRunSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True)

    class Meta:
        model = ImportRun
        fields = [
            "id",
            "kind",
            "cohort_job",
            "event_job",
            "status",
            "phase",
            "trigger",
            "rows_expected",
            "rows_done",
            "counts",
            "error",
            "retry_of",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


def _queue(job, trigger: str = "manual", retry_of=None):
    try:
        run = retry_run(retry_of) if retry_of else create_run(job, trigger=trigger)
    except quota.QuotaExceeded as exc:
        return Response(error_body("quota_exceeded", str(exc)), status=status.HTTP_409_CONFLICT)
    except RunStateError as exc:
        return Response(error_body("invalid_state", str(exc)), status=status.HTTP_409_CONFLICT)
    return Response(ImportRunSerializer(run).data, status=status.HTTP_201_CREATED)


class _JobViewSet(*_CRUD, WorkspaceScopedViewSet):
    permission_classes = [ManagementAccess, CanAct]

    def perform_create(self, serializer):
        job = serializer.save(workspace=self.request.workspace)
        if job.enabled:
            job.next_run_at = first_run_at(job, timezone.now())
            job.save(update_fields=["next_run_at"])

    @extend_schema(request=None, responses={201: ImportRunSerializer})
    @action(detail=True, methods=["post"], url_path="run-now")
    def run_now(self, request, pk=None):
        """Queue a run now (skipped if one is running; refused with 409 when over the download quota)."""
        return _queue(self.get_object())


class CohortImportJobViewSet(_JobViewSet):
    model = CohortImportJob
    serializer_class = CohortImportJobSerializer


class EventImportJobViewSet(_JobViewSet):
    model = EventImportJob
    serializer_class = EventImportJobSerializer


class ImportRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Runs of import jobs; filter with ?status=, ?kind=cohort|event, ?job=<id>."""

    model = ImportRun
    serializer_class = ImportRunSerializer
    permission_classes = [ManagementAccess, CanAct]

    def get_queryset(self) -> QuerySet[ImportRun]:
        queryset = super().get_queryset()
        params = self.request.query_params
        if params.get("status"):
            queryset = queryset.filter(status=params["status"])
        kind = params.get("kind")
        if kind == "cohort":
            queryset = queryset.filter(cohort_job__isnull=False)
        elif kind == "event":
            queryset = queryset.filter(event_job__isnull=False)
        job = int_param(params, "job")
        if job is not None:
            queryset = queryset.filter(**{"event_job_id" if kind == "event" else "cohort_job_id": job})
        return queryset

    @extend_schema(request=None, responses={201: ImportRunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None) -> Response:
        run = self.get_object()
        return _queue(run.job, retry_of=run)
