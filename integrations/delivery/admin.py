"""Ops screens: destinations with their health, syncs, run history and the partner-call log."""

from django import forms
from django.contrib import admin, messages
from rest_framework import serializers
from unfold.admin import ModelAdmin

from integrations.connectors.registry import connector_class
from integrations.credential_hosts import destination_problem
from integrations.delivery import actions
from integrations.delivery.models import Destination, PartnerCall, SyncJob, SyncRun


class DestinationAdminForm(forms.ModelForm):
    """The config is checked by the connector here too (its URLs pass the outgoing-request policy),
    as it is in the console and the API."""

    class Meta:
        model = Destination
        fields = "__all__"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("kind") and "config" in data:
            try:
                data["config"] = connector_class(data["kind"]).validate_config(data["config"] or {})
            except serializers.ValidationError as exc:
                detail = exc.detail if isinstance(exc.detail, dict) else {"config": exc.detail}
                self.add_error("config", [f"{name}: {' '.join(map(str, errors))}" for name, errors in detail.items()])
                return data
            # A new URL or host with the saved credentials would send them there (credential_hosts).
            problem = destination_problem(self.instance, data["kind"], data["config"], data.get("authorization"))
            if problem:
                self.add_error("authorization", problem)
        return data


@admin.register(Destination)
class DestinationAdmin(ModelAdmin):
    form = DestinationAdminForm
    list_display = ["name", "workspace", "kind", "health", "health_changed_at", "last_error"]
    list_filter = ["health", "kind", "workspace"]
    readonly_fields = ["health", "last_error", "health_changed_at"]
    actions = ["test_connection"]

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset) -> None:
        for destination in queryset:
            ok, message = actions.run_connection_test(destination)
            self.message_user(request, f"{destination.name}: {message}", messages.SUCCESS if ok else messages.ERROR)


@admin.register(SyncJob)
class SyncJobAdmin(ModelAdmin):
    list_display = ["__str__", "workspace", "cadence", "next_run_at", "paused", "cursor", "last_run_at"]
    list_filter = ["cadence", "paused", "workspace"]
    readonly_fields = ["partner_state", "cursor", "last_run_at"]
    actions = ["sync_now", "full_resync", "retry_failed"]

    def _start(self, request, queryset, mode: str) -> None:
        for job in queryset:
            run = actions.run_now(job, trigger="admin", mode=mode)
            self.message_user(request, f"{job}: run #{run.pk} {run.status} {run.error}")

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset) -> None:
        self._start(request, queryset, "auto")

    @admin.action(description="Full resync")
    def full_resync(self, request, queryset) -> None:
        self._start(request, queryset, "full")

    @admin.action(description="Retry failed rows")
    def retry_failed(self, request, queryset) -> None:
        self._start(request, queryset, "retry")


@admin.register(SyncRun)
class SyncRunAdmin(ModelAdmin):
    list_display = [
        "id",
        "job",
        "mode",
        "status",
        "rows_done",
        "rows_total",
        "delivered",
        "invalid",
        "rejected",
        "failed",
        "retried",
        "resend_bound",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "mode"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PartnerCall)
class PartnerCallAdmin(ModelAdmin):
    """The raw start of each answer and the exact connection error are shown here, to ops only: the
    console and the API show the parsed summary."""

    list_display = [
        "created_at",
        "destination",
        "method",
        "url",
        "status_code",
        "duration_ms",
        "request_summary",
        "response_summary",
    ]
    list_filter = ["status_code"]
    fields = [
        "destination",
        "run",
        "created_at",
        "method",
        "url",
        "request_summary",
        "status_code",
        "duration_ms",
        "response_summary",
        "error",
        "response_excerpt",
        "error_detail",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
