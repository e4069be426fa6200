"""Ops screens: Kahuna campaigns (editable, refreshable) and Export to Kahuna."""

from django.contrib import admin, messages
from unfold.admin import ModelAdmin

from integrations.connectors.base import ConnectorError
from integrations.connectors.kahuna.actions import ExportRefused, request_export
from integrations.connectors.kahuna.export import refresh_campaigns
from integrations.connectors.kahuna.models import KahunaCampaign, KahunaExport


@admin.register(KahunaCampaign)
class KahunaCampaignAdmin(ModelAdmin):
    list_display = ["name", "campaign_id", "environment", "enabled", "campaign_type", "destination", "refreshed_at"]
    list_editable = ["enabled"]
    list_filter = ["environment", "enabled", "destination"]
    search_fields = ["name", "campaign_id"]
    actions = ["refresh_from_kahuna"]

    @admin.action(description="Refresh the campaign list from Kahuna (their destinations)")
    def refresh_from_kahuna(self, request, queryset) -> None:
        for destination in {campaign.destination for campaign in queryset}:
            try:
                listed = refresh_campaigns(destination)
                self.message_user(request, f"{destination}: Kahuna listed {listed} campaigns.")
            except ConnectorError as error:
                self.message_user(request, f"{destination}: {error.message}", messages.ERROR)


@admin.register(KahunaExport)
class KahunaExportAdmin(ModelAdmin):
    """Adding an export here sends the segment to the campaign (the same checks as the API)."""

    list_display = [
        "id",
        "segment",
        "campaign",
        "environment",
        "status",
        "job_id",
        "users_sent",
        "invalid",
        "created_at",
    ]
    list_filter = ["status", "environment"]
    fields = [
        "segment",
        "campaign",
        "environment",
        "status",
        "job_id",
        "job_ids",
        "users_total",
        "users_sent",
        "invalid",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    readonly_fields = [f for f in fields if f not in ("segment", "campaign")]
    actions = ["export_again"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return self.fields if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        try:
            export = request_export(obj.segment, obj.campaign, user=request.user)
        except ExportRefused as refused:
            self.message_user(request, refused.message, messages.ERROR)
            return
        obj.pk = export.pk

    @admin.action(description="Export to Kahuna again (same segment and campaign)")
    def export_again(self, request, queryset) -> None:
        for export in queryset.select_related("segment", "campaign"):
            try:
                request_export(export.segment, export.campaign, user=request.user)
            except ExportRefused as refused:
                self.message_user(request, f"Export {export.pk}: {refused.message}", messages.ERROR)
