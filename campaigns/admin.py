"""Ops screens: campaigns (filters, a stop action, the same field checks as the console and the API),
their enrollments (search by any identity of the person; CleverTap's raw answer on each, for ops
only), launches and targeted-send batches."""

from collections.abc import Iterator

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from unfold.admin import ModelAdmin

from audiences.identity import identities_with_value
from campaigns import service
from campaigns.models import Campaign, Enrollment, Launch, SendBatch, Status
from campaigns.service import EDITABLE, CampaignRefused
from campaigns.validation import validate_campaign
from workspaces.models import Workspace


class CampaignAdminForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["workspace", *EDITABLE]

    def clean(self) -> dict:
        data = super().clean()
        workspace = data.get("workspace")
        for field, errors in validate_campaign(data, workspace=workspace).items():
            target = field if field in self.fields else None
            for error in errors:
                self.add_error(target, error)
        return data


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    form = CampaignAdminForm
    list_display = ["name", "workspace", "kind", "channel", "segment", "status", "reach", "last_activity_at"]
    list_filter = ["status", "kind", "channel", "workspace"]
    search_fields = ["name"]
    readonly_fields = [
        "status",
        "status_reason",
        "reach",
        "next_run_at",
        "report",
        "report_refreshed_at",
        "launched_at",
    ]
    actions = ["stop_campaigns"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # Only a draft changes; afterwards the status moves through the stop action alone.
        if obj is not None and obj.status != Status.DRAFT:
            return [*EDITABLE, "workspace", *self.readonly_fields]
        return self.readonly_fields

    @admin.action(description="Stop (Stop Campaign at CleverTap; nothing more is sent)")
    def stop_campaigns(self, request, queryset) -> None:
        for campaign in queryset:
            try:
                service.stop(campaign, user=request.user)
                self.message_user(request, f"{campaign}: stopped.")
            except CampaignRefused as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.WARNING)


@admin.register(Enrollment)
class EnrollmentAdmin(ModelAdmin):
    """The raw partner answer (answer_raw) is shown here only: the console and the API show the summary."""

    list_display = ["id", "campaign", "profile_id", "to_value", "change_id", "change_at", "status", "sent_at", "answer"]
    list_filter = ["status", "campaign__kind", "campaign__channel", "workspace"]
    search_fields = ["to_value"]
    search_help_text = "Any identity value of the person (user id, email, device id …) or their profile id."
    fields = [
        "campaign",
        "workspace",
        "profile_id",
        "change_id",
        "change_at",
        "to_kind",
        "to_value",
        "status",
        "batch",
        "answer",
        "answer_raw",
        "created_at",
        "sent_at",
    ]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term) -> tuple[QuerySet[Enrollment], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        profiles = list(identities_with_value_any(term))
        match = Q(to_value=term) | Q(profile_id__in=profiles)
        if term.isdigit():
            match |= Q(profile_id=int(term))
        return queryset.filter(match), False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def identities_with_value_any(value: str) -> Iterator[int]:
    """Profile ids holding `value` under any kind, in every workspace (ops see them all)."""
    for workspace_id in Workspace.objects.values_list("pk", flat=True):
        yield from identities_with_value(workspace_id, value).values_list("profile_id", flat=True)


@admin.register(Launch)
class LaunchAdmin(ModelAdmin):
    list_display = ["id", "campaign", "occurrence", "state", "partner_id", "attempts", "answer", "answered_at"]
    list_filter = ["state"]
    readonly_fields = [f.name for f in Launch._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SendBatch)
class SendBatchAdmin(ModelAdmin):
    list_display = ["id", "campaign", "name", "state", "size", "partner_id", "answer", "answered_at"]
    list_filter = ["state"]
    readonly_fields = [f.name for f in SendBatch._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
