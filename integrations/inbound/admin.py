"""Ops screens for the inbox: batches (with the backlog) and the last raw requests per API key."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin

from integrations.inbound.models import BatchStatus, InboundBatch, InboundRequest
from integrations.inbound.tasks import enqueue


class SetAsideFilter(admin.SimpleListFilter):
    title = "set-aside rows"
    parameter_name = "set_aside"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Some rows set aside"), ("no", "None")]

    def queryset(self, request, queryset) -> QuerySet[InboundBatch]:
        if self.value() == "yes":
            return queryset.filter(invalid_count__gt=0)
        if self.value() == "no":
            return queryset.filter(invalid_count=0)
        return queryset


@admin.register(InboundBatch)
class InboundBatchAdmin(ModelAdmin):
    list_display = [
        "id",
        "received_at",
        "endpoint",
        "workspace",
        "segment",
        "status",
        "item_count",
        "invalid_count",
        "added",
        "removed",
        "merges",
        "attempts",
        "applied_at",
    ]
    list_filter = ["status", "endpoint", "workspace", SetAsideFilter]
    search_fields = ["=id", "dedupe_key", "segment__name", "last_error"]
    list_select_related = ["workspace", "segment"]
    show_full_result_count = False
    exclude = ["body"]
    readonly_fields = [
        "workspace",
        "api_key",
        "endpoint",
        "segment",
        "identity_kind",
        "dedupe_key",
        "status",
        "item_count",
        "invalid_count",
        "invalid_rows",
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
        "body_preview",
    ]
    actions = ["requeue"]

    def get_queryset(self, request) -> QuerySet[InboundBatch]:
        return super().get_queryset(request).defer("body")

    @admin.display(description="Set-aside rows")
    def invalid_rows(self, obj: InboundBatch) -> str:
        """Rows refused at receipt or set aside while applying, with the reason: never applied."""
        if not obj.invalid:
            return "—"
        return format_html(
            "<table><tr><th>position</th><th>value</th><th>reason</th></tr>{}</table>",
            format_html_join(
                "", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>", (tuple(row) for row in obj.invalid)
            ),
        )

    @admin.display(description="Body (start)")
    def body_preview(self, obj: InboundBatch) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.body_text(20_000))

    def changelist_view(self, request, extra_context=None) -> HttpResponse:
        pending = InboundBatch.objects.filter(status=BatchStatus.ACCEPTED).count()
        failed = InboundBatch.objects.filter(status=BatchStatus.FAILED).count()
        level = messages.WARNING if pending or failed else messages.INFO
        self.message_user(request, f"Backlog: {pending} batch(es) accepted, not applied yet; {failed} failed.", level)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Queue selected batches for applying (failed ones are retried)")
    def requeue(self, request, queryset) -> None:
        queryset.filter(status=BatchStatus.FAILED).update(status=BatchStatus.ACCEPTED, attempts=0)
        scopes = set(queryset.values_list("workspace_id", "segment_id"))
        for workspace_id, segment_id in scopes:
            enqueue(workspace_id, segment_id)
        self.message_user(request, f"Queued {len(scopes)} scope(s).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None  # the changelist (and its actions) yes; editing a received batch, never

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundRequest)
class InboundRequestAdmin(ModelAdmin):
    """The last INBOUND_LOG_SIZE raw requests per API key, accepted or refused. No credential header
    (Authorization, X-Write-Key, anything named like a key, token or secret; config.logging)."""

    list_display = [
        "received_at",
        "key_prefix",
        "workspace",
        "method",
        "path",
        "status_code",
        "error_code",
        "duration_ms",
        "duplicate",
        "batch_id",
    ]
    list_filter = ["status_code", "endpoint", "duplicate", "workspace", "api_key"]
    search_fields = ["key_prefix", "path", "error", "=batch__id"]
    list_select_related = ["workspace"]
    readonly_fields = [
        "workspace",
        "api_key",
        "key_prefix",
        "method",
        "path",
        "endpoint",
        "status_code",
        "error_code",
        "error",
        "duration_ms",
        "body_bytes",
        "body_preview",
        "headers",
        "remote_addr",
        "batch",
        "duplicate",
        "received_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
