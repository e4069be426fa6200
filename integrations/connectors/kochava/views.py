"""The Kochava section of a destination page: the event stream and Send Users (IdentityLink).

Every query here is bounded: lists are LIMITed and read through an index, counts of links are
capped (a destination may have linked millions of people; the page never counts them all). The
stream's event counters are maintained by the stream itself, so they cost nothing to show.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from audiences.models import Event
from integrations.connectors.kochava.models import KochavaEventOutcome, KochavaStream, KochavaUserLink, LinkStatus
from integrations.delivery.models import Destination

OUTCOMES_SHOWN = 20
LINKS_SHOWN = 10
COUNT_CAP = 10_000  # link counts above this show as "10,000+"


@dataclass
class CappedCount:
    value: int
    more: bool  # there are more than `value`

    def __str__(self) -> str:
        return f"{self.value:,}{'+' if self.more else ''}"


def capped_count(queryset, cap: int = COUNT_CAP) -> CappedCount:
    """COUNT over at most cap + 1 rows (a LIMITed subquery), so a huge table costs no more than cap."""
    found = queryset.order_by()[: cap + 1].count()
    return CappedCount(min(found, cap), found > cap)


@dataclass
class OutcomeRow:
    outcome: KochavaEventOutcome
    event: Event | None  # None when the event was deleted since


def destination_section(destination: Destination) -> dict:
    """What the destination page adds for a Kochava destination (its template and what it shows)."""
    now = timezone.now()
    stream = KochavaStream.objects.filter(destination=destination).first()
    outcomes, cursor_event, paused_until = [], None, None
    if stream is not None:
        recent = list(KochavaEventOutcome.objects.filter(stream=stream).order_by("-event_id")[:OUTCOMES_SHOWN])
        events = Event.objects.filter(
            workspace_id=destination.workspace_id, pk__in=[o.event_id for o in recent] + [stream.last_event_id]
        ).only("id", "event_type", "event_time", "profile_id", "device_id")
        by_id = {event.pk: event for event in events}
        outcomes = [OutcomeRow(o, by_id.get(o.event_id)) for o in recent]
        cursor_event = by_id.get(stream.last_event_id)
        # next_run_at is also the scheduler's claim (now + interval); only a stopped pass sets an error.
        if stream.last_error and stream.next_run_at and stream.next_run_at > now:
            paused_until = stream.next_run_at
    links = KochavaUserLink.objects.filter(destination=destination)
    pending = links.filter(status=LinkStatus.PENDING)
    return {
        "partner_template": "kochava/destination.html",
        "kochava_stream": stream,
        "kochava_cursor_event": cursor_event,
        "kochava_paused_until": paused_until,
        "kochava_outcomes": outcomes,
        "kochava_event_types": destination.config.get("event_types", []),
        "kochava_sends_events": destination.config.get("send_events", True),
        "kochava_sends_users": destination.config.get("send_users", True),
        "kochava_interval_minutes": max(1, settings.KOCHAVA_STREAM_INTERVAL_SECONDS // 60),
        "link_counts": {
            "pending": capped_count(pending),
            "linked": capped_count(links.filter(status=LinkStatus.LINKED)),
            "failed": capped_count(links.filter(status=LinkStatus.FAILED)),
        },
        "links_pending": list(pending.order_by("next_attempt_at")[:LINKS_SHOWN]),
        "links_failed": list(links.filter(status=LinkStatus.FAILED).order_by("-updated_at")[:LINKS_SHOWN]),
        "now": now,
    }
