"""The per-person trace: everything that touched one person, in one timeline, and why they are
(or are not) in each segment and destination — answered in words.

Each capability contributes its own entries through TRACE_SOURCES: a function
`(profile) -> list[TraceEntry]`. Inbound batches and deliveries register theirs in their apps.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils.module_loading import import_string

from audiences.models import Event, MembershipChange, ProfileMerge

TIMELINE_LIMIT = 200


@dataclass
class TraceEntry:
    at: datetime
    kind: str  # ledger, merge, event, inbound, delivery
    title: str
    detail: str = ""
    link: str = ""


def _ledger_entries(profile) -> list[TraceEntry]:
    rows = MembershipChange.objects.filter(profile_id=profile.pk).select_related("segment").order_by("-id")[:TIMELINE_LIMIT]
    return [
        TraceEntry(
            at=row.occurred_at,
            kind="ledger",
            title=f"{row.get_action_display()} {'to' if row.action == 'added' else 'from'} segment “{row.segment.name}”",
            detail=f"Partner Sync · source {row.get_source_display()} · cause {row.cause_type} #{row.cause_id or '—'}",
            link=f"/segments/{row.segment_id}/",
        )
        for row in rows
    ]


def _merge_entries(profile) -> list[TraceEntry]:
    return [
        TraceEntry(
            at=merge.created_at,
            kind="merge",
            title=f"Merged anonymous profile #{merge.removed_profile_id} into this person",
            detail=f"{merge.reason} · identities moved: "
            + ", ".join(f"{kind}={value}" for kind, value in merge.identities),
        )
        for merge in ProfileMerge.objects.filter(kept_profile=profile).order_by("-id")[:TIMELINE_LIMIT]
    ]


def _event_entries(profile) -> list[TraceEntry]:
    events = Event.objects.filter(profile=profile).order_by("-event_time")[:50]
    return [
        TraceEntry(at=event.event_time or event.loaded_at, kind="event", title=f"Event “{event.event_type}”",
                   detail=f"{event.source} · {event.platform or ''} {event.country or ''}".strip())
        for event in events
    ]


TRACE_SOURCES: list[str] = [
    "console.trace._ledger_entries",
    "console.trace._merge_entries",
    "console.trace._event_entries",
]


def person_timeline(profile) -> list[TraceEntry]:
    entries: list[TraceEntry] = []
    for path in TRACE_SOURCES:
        entries.extend(import_string(path)(profile))
    return sorted(entries, key=lambda entry: entry.at, reverse=True)[:TIMELINE_LIMIT]


def why_lines(profile, memberships) -> list[str]:
    """One sentence per current segment: since when, and which change put them there."""
    lines = []
    for membership in memberships:
        change = (
            MembershipChange.objects.filter(profile_id=profile.pk, segment=membership.segment, action="added")
            .order_by("-id")
            .first()
        )
        how = f"added by {change.get_source_display().lower()} ({change.cause_type} #{change.cause_id})" if change else "added"
        lines.append(
            f"In “{membership.segment.name}” since {membership.added_at:%Y-%m-%d %H:%M} UTC — {how}."
        )
    if not lines:
        lines.append("Not in any segment now.")
    return lines
