"""Ops screens: destinations with their health, syncs, run history and the partner-call log."""

from django.contrib import admin, messages
from unfold.admin import ModelAdmin

from integrations.delivery import actions
from integrations.delivery.models import Destination, PartnerCall, SyncJob, SyncRun


@admin.register(Destination)
class DestinationAdmin(ModelAdmin):
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
    def sync_now(self, request, queryset):
        self._start(request, queryset, "auto")

    @admin.action(description="Full resync")
    def full_resync(self, request, queryset):
        self._start(request, queryset, "full")

    @admin.action(description="Retry failed rows")
    def retry_failed(self, request, queryset):
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
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "mode"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PartnerCall)
class PartnerCallAdmin(ModelAdmin):
    list_display = ["created_at", "destination", "method", "url", "status_code", "duration_ms", "request_summary"]
    list_filter = ["status_code"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
