"""Ops screens: Kochava event streams and Send Users links."""

from django.contrib import admin
from unfold.admin import ModelAdmin

from integrations.connectors.kochava.models import KochavaStream, KochavaUserLink


@admin.register(KochavaStream)
class KochavaStreamAdmin(ModelAdmin):
    list_display = [
        "destination",
        "last_event_id",
        "events_sent",
        "events_skipped",
        "events_rejected",
        "next_run_at",
        "last_error",
    ]
    readonly_fields = [
        "workspace",
        "destination",
        "last_event_id",
        "last_swept_row_id",
        "events_sent",
        "events_skipped",
        "events_rejected",
        "last_error",
    ]


@admin.register(KochavaUserLink)
class KochavaUserLinkAdmin(ModelAdmin):
    list_display = [
        "destination",
        "profile_id",
        "kochava_device_id",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "destination"]
    search_fields = ["kochava_device_id"]
    readonly_fields = [
        "workspace",
        "destination",
        "profile_id",
        "kochava_device_id",
        "identities",
        "attempts",
        "linked_at",
    ]
