"""The per-person trace: everything that touched one person, in one timeline, and why they are
(or are not) in each segment and destination — answered in words.

Each capability contributes its own entries through TRACE_SOURCES: a function
`(profile) -> list[TraceEntry]`. Inbound batches and deliveries register theirs in their apps.
"""

from dataclasses import dataclass
from datetime import date, datetime

from django.utils.module_loading import import_string

from audiences.models import Event, MembershipChange, ProfileMerge
from campaigns.models import Enrollment, EnrollmentStatus
from console import timefmt
from integrations.delivery.models import DeliveryRow, SyncJob
from integrations.inbound.models import InboundBatch

TIMELINE_LIMIT = 200


@dataclass
class TraceEntry:
    at: datetime
    kind: str  # ledger, merge, event, inbound, delivery
    title: str
    detail: str = ""
    link: str = ""


def _ledger_entries(profile) -> list[TraceEntry]:
    rows = (
        MembershipChange.objects.filter(profile_id=profile.pk)
        .select_related("segment")
        .order_by("-id")[:TIMELINE_LIMIT]
    )
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
        TraceEntry(
            at=event.event_time or event.loaded_at,
            kind="event",
            title=f"Event “{event.event_type}”",
            detail=f"{event.source} · {event.platform or ''} {event.country or ''}".strip(),
        )
        for event in events
    ]


def _inbound_entries(profile) -> list[TraceEntry]:
    """The pushes that changed this person's memberships (the ledger names its inbound batch)."""
    batch_ids = MembershipChange.objects.filter(profile_id=profile.pk, cause_type="inbound_batch").values("cause_id")
    batches = InboundBatch.objects.filter(pk__in=batch_ids).select_related("api_key").order_by("-id")[:TIMELINE_LIMIT]
    return [
        TraceEntry(
            at=batch.received_at,
            kind="inbound",
            title=f"Inbound push #{batch.pk} on {batch.get_endpoint_display()}",
            detail=f"key {batch.api_key.prefix if batch.api_key else '—'}… · {batch.item_count} ids · "
            f"+{batch.added} −{batch.removed} · {batch.get_status_display()}",
        )
        for batch in batches
    ]


def _delivery_entries(profile) -> list[TraceEntry]:
    rows = (
        DeliveryRow.objects.filter(profile_id=profile.pk)
        .select_related("run__job__destination", "run__job__segment")
        .order_by("-id")[:TIMELINE_LIMIT]
    )
    return [
        TraceEntry(
            at=row.run.finished_at or row.run.started_at or row.run.created_at,
            kind="delivery",
            title=f"{row.get_status_display()}: {row.action} “{row.run.job.segment.name}” → {row.run.job.destination.name}",
            detail=f"run #{row.run_id} · id sent {row.user_id or row.device_id or '—'}"
            + (f" · partner said: {row.reason}" if row.reason else "")
            + (f" (code {row.partner_code})" if row.partner_code else ""),
            link=f"/syncs/{row.job_id}/",
        )
        for row in rows
    ]


def _clock(moment: datetime, tz, day: date) -> str:
    """A moment in the workspace's zone: the time alone on `day`, else with its date."""
    local = moment.astimezone(tz)
    return f"{local:%H:%M}" if local.date() == day else timefmt.when(moment, tz_name=tz.key)


def _campaign_entries(profile) -> list[TraceEntry]:
    """Each campaign the person entered, with the ledger change that put them there, and each send
    ("entered 'Cart drop-off push' because they were added to 'Cart drop off' at 10:02, sent 10:03"),
    times in the workspace's zone."""
    tz = profile.workspace.tz
    rows = (
        Enrollment.objects.filter(profile_id=profile.pk)
        .select_related("campaign__segment")
        .order_by("-id")[:TIMELINE_LIMIT]
    )
    entries = []
    for row in rows:
        campaign = row.campaign
        day = row.created_at.astimezone(tz).date()
        because = f"because they were added to “{campaign.segment.name}” at {_clock(row.change_at, tz, day)}"
        if row.status == EnrollmentStatus.SENT and row.sent_at:
            outcome = f"sent {_clock(row.sent_at, tz, day)}"
        elif row.status == EnrollmentStatus.FAILED:
            outcome = f"not sent: {row.answer or 'CleverTap refused it'}"
        else:
            outcome = row.get_status_display().lower()
        entries.append(
            TraceEntry(
                at=row.created_at,
                kind="campaign",
                title=f"Entered “{campaign.name}” {because}, {outcome}",
                detail=f"{campaign.get_kind_display()} · {campaign.get_channel_display()} · "
                f"ledger change #{row.change_id} · to {row.to_kind} {row.to_value}",
                link=f"/campaigns/{campaign.pk}/",
            )
        )
        if row.sent_at:
            entries.append(
                TraceEntry(
                    at=row.sent_at,
                    kind="send",
                    title=f"Sent “{campaign.name}” ({campaign.get_channel_display()}) through CleverTap",
                    detail=f"to {row.to_kind} {row.to_value}"
                    + (f" · CleverTap said: {row.answer}" if row.answer else ""),
                    link=f"/campaigns/{campaign.pk}/",
                )
            )
    return entries


TRACE_SOURCES: list[str] = [
    "console.trace._ledger_entries",
    "console.trace._merge_entries",
    "console.trace._event_entries",
    "console.trace._inbound_entries",
    "console.trace._delivery_entries",
    "console.trace._campaign_entries",
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
        how = (
            f"added by {change.get_source_display().lower()} ({change.cause_type} #{change.cause_id})"
            if change
            else "added"
        )
        lines.append(f"In “{membership.segment.name}” since {timefmt.when(membership.added_at)} — {how}.")
    if not lines:
        lines.append("Not in any segment now.")
    lines.extend(destination_lines(profile, memberships))
    return lines


def destination_lines(profile, memberships) -> list[str]:
    """For each sync of a segment the person is in: were they delivered, and if not, why not."""
    lines = []
    segment_ids = [membership.segment_id for membership in memberships]
    for job in SyncJob.objects.filter(segment_id__in=segment_ids).select_related("destination", "segment"):
        where = f"“{job.destination.name}” (sync of “{job.segment.name}”)"
        row = DeliveryRow.objects.filter(job_id=job.pk, profile_id=profile.pk).order_by("-id").first()
        if row is None:
            when = f"the next run ({timefmt.when(job.next_run_at)})" if job.next_run_at else "the next run"
            state = "paused — resume it to send" if job.paused else f"{when} will send them"
            lines.append(f"Not yet in {where}: no run has covered them since they joined; {state}.")
        elif row.status == "delivered":
            lines.append(
                f"In {where}: delivered ({row.action}) by run #{row.run_id} as {row.user_id or row.device_id}."
            )
        elif row.status == "invalid":
            lines.append(f"Not in {where}: not sent, invalid — {row.reason}.")
        elif row.status == "rejected":
            code = f" (code {row.partner_code})" if row.partner_code else ""
            lines.append(f"Not in {where}: the partner rejected them — {row.reason}{code}.")
        else:
            lines.append(f"Not yet in {where}: {row.get_status_display().lower()} — {row.reason or 'will be retried'}.")
    return lines
