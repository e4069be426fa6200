"""Ops screens for Amplitude sources: projects with their download budget, jobs, and runs with filters."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from unfold.admin import ModelAdmin

from integrations.sources import quota
from integrations.sources.actions import create_run, retry_run
from integrations.sources.models import AmplitudeProject, CohortImportJob, DownloadQuota, EventImportJob, ImportRun
from integrations.sources.runs import RunStateError


@admin.register(AmplitudeProject)
class AmplitudeProjectAdmin(ModelAdmin):
    list_display = ["label", "workspace", "region", "base_url", "downloads_remaining"]
    list_filter = ["region", "workspace"]
    search_fields = ["label"]

    @admin.display(description="Cohort downloads left this month")
    def downloads_remaining(self, obj) -> str:
        budget = quota.budget(obj)
        return f"{budget.remaining} of {budget.limit}"


class _JobAdmin(ModelAdmin):
    actions = ["run_now"]
    readonly_fields = ["next_run_at"]

    @admin.action(description="Run selected jobs now")
    def run_now(self, request, queryset):
        for job in queryset:
            try:
                run = create_run(job, trigger="manual")
                self.message_user(request, f"{job}: run {run.pk} {run.status}.", messages.SUCCESS)
            except quota.QuotaExceeded as exc:
                self.message_user(request, f"{job}: {exc}", messages.ERROR)


@admin.register(CohortImportJob)
class CohortImportJobAdmin(_JobAdmin):
    list_display = ["label", "workspace", "project", "cadence", "time_of_day", "timezone", "enabled", "next_run_at"]
    list_filter = ["cadence", "enabled", "workspace"]


@admin.register(EventImportJob)
class EventImportJobAdmin(_JobAdmin):
    list_display = [
        "label",
        "workspace",
        "project",
        "backfill_days",
        "keep_updated",
        "enabled",
        "cursor",
        "next_run_at",
    ]
    list_filter = ["keep_updated", "enabled", "workspace"]
    readonly_fields = ["next_run_at", "cursor"]


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [("cohort", "Cohort import"), ("event", "Event import")]

    def queryset(self, request, queryset) -> QuerySet[ImportRun]:
        if self.value() == "cohort":
            return queryset.filter(cohort_job__isnull=False)
        if self.value() == "event":
            return queryset.filter(event_job__isnull=False)
        return queryset


@admin.register(ImportRun)
class ImportRunAdmin(ModelAdmin):
    list_display = ["id", "kind", "job", "status", "phase", "progress", "trigger", "started_at", "finished_at"]
    list_filter = ["status", KindFilter, "trigger", "workspace"]
    search_fields = ["error", "phase"]
    readonly_fields = [f.name for f in ImportRun._meta.fields]
    actions = ["retry_failed"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Progress")
    def progress(self, obj) -> str:
        return f"{obj.rows_done:,} / {obj.rows_expected:,}" if obj.rows_expected else f"{obj.rows_done:,}"

    @admin.action(description="Retry selected failed runs")
    def retry_failed(self, request, queryset) -> None:
        for run in queryset:
            try:
                new = retry_run(run)
                self.message_user(request, f"Run {run.pk}: retry queued as run {new.pk} ({new.status}).")
            except (RunStateError, quota.QuotaExceeded) as exc:
                self.message_user(request, str(exc), messages.ERROR)


@admin.register(DownloadQuota)
class DownloadQuotaAdmin(ModelAdmin):
    list_display = ["project", "month", "used", "limit"]
    list_filter = ["month"]
    readonly_fields = ["project", "month", "used"]
