"""The one validator of a campaign's fields: the console form, the API serializer and the admin
form all call validate_campaign, so a refusal reads the same wherever it is made."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from campaigns.models import API_TARGET_MODE, PARTNER_SYNC_NOT_SDK, SDK_CHANNELS, Channel, Kind, Repeat, When
from config.safe_json import value_problem

# What each API-creatable channel's content needs (CleverTap's create call refuses it without).
REQUIRED_CONTENT = {
    Channel.PUSH: ("title", "body"),
    Channel.WEBPUSH: ("title", "body"),
    Channel.EMAIL: ("subject", "body"),
    Channel.SMS: ("body",),
    Channel.WHATSAPP: ("body",),
}


def channel_choices() -> list[tuple[str, str, bool, bool]]:
    """(value, label, creatable through CleverTap's API, may be triggered by Partner Sync)."""
    return [(c.value, c.label, c in API_TARGET_MODE, c not in SDK_CHANNELS) for c in Channel]


def channel_error(kind: str, channel: str) -> str | None:
    """Why `channel` cannot be used for a campaign of `kind`, or None."""
    if channel not in Channel.values:
        return f"Unknown channel {channel!r}; choose from {', '.join(Channel.values)}."
    label = Channel(channel).label
    if kind == Kind.LIVE and channel in SDK_CHANNELS:
        return (
            f"{label} cannot be triggered by Partner Sync: {PARTNER_SYNC_NOT_SDK}. CleverTap shows {label} "
            "only when its SDK raises the trigger inside the app or page; use a push, email, SMS or "
            "WhatsApp message, or a past-behaviour campaign."
        )
    if channel not in API_TARGET_MODE:
        return (
            f"{label} campaigns cannot be created through CleverTap's API; create this one in CleverTap's "
            "dashboard (the segment is there as a profile property)."
        )
    return None


def validate_campaign(data: dict, *, workspace=None) -> dict[str, list[str]]:
    """{field: [reasons]} for a campaign's fields (empty when valid). `data` holds model field values:
    kind, channel, content, when, send_at (aware datetime), repeat, reentry, segment, destination."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    kind = data.get("kind")
    if kind not in Kind.values:
        add("kind", f"Choose {' or '.join(Kind.values)}.")
    channel = data.get("channel")
    problem = channel_error(kind, channel) if channel else "Choose a channel."
    if problem:
        add("channel", problem)
    content = data.get("content") or {}
    if not isinstance(content, dict):
        add("content", "Content must be an object of fields (title, body, subject).")
    elif found := value_problem(content):
        # PostgreSQL's jsonb refuses these; say which field, before anything is saved.
        add("content", f"The content's {found[0]} {found[1]}.")
    elif channel in REQUIRED_CONTENT:
        for name in REQUIRED_CONTENT[channel]:
            value = content.get(name)
            if not isinstance(value, str) or not value.strip():
                add("content", f"{Channel(channel).label} needs a {name}.")
    when = data.get("when") or When.NOW
    send_at = data.get("send_at")
    if when == When.AT:
        if not isinstance(send_at, dt.datetime):
            add("send_at", "Give the time to send (in the workspace's time zone).")
        elif send_at <= timezone.now():
            add("send_at", "That time has passed; choose a later one or send now.")
    repeat = data.get("repeat") or Repeat.ONCE
    if kind == Kind.LIVE and repeat != Repeat.ONCE:
        add("repeat", "A live-behaviour campaign sends as people are added; it does not repeat.")
    segment, destination = data.get("segment"), data.get("destination")
    if destination is not None and getattr(destination, "kind", None) != "clevertap":
        add("destination", "Choose a CleverTap destination.")
    if workspace is not None:
        for name, obj in (("segment", segment), ("destination", destination)):
            if obj is not None and obj.workspace_id != workspace.pk:
                add(name, "Not found in this workspace.")
    return errors
