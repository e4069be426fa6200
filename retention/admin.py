"""Ops see each pruning, the tables' sizes and when the next pruning runs (docs/operations.md)."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from unfold.admin import ModelAdmin

from retention.models import PruneRun
from retention.prune import next_pruning, table_sizes


@admin.register(PruneRun)
class PruneRunAdmin(ModelAdmin):
    list_display = ["started_at", "trigger", "dry_run", "removed_summary", "finished_at", "error"]
    list_filter = ["dry_run", "trigger"]
    readonly_fields = ["started_at", "finished_at", "dry_run", "trigger", "removed", "dropped_partitions", "error"]
    change_list_template = "admin/retention/prunerun/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False  # `manage.py prune` or the daily task make them

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Removed")
    def removed_summary(self, obj: PruneRun) -> str:
        parts = [f"{table}: {count}" for table, count in sorted((obj.removed or {}).items())]
        return "; ".join(parts) or "nothing"

    def changelist_view(self, request, extra_context=None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "table_sizes": table_sizes(),
            "next_pruning": next_pruning(),
            "default_windows": sorted(settings.RETENTION_DEFAULT_DAYS.items()),
            "batch_size": settings.RETENTION_BATCH_SIZE,
        }
        return super().changelist_view(request, extra_context)
