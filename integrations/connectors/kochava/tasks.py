"""Kochava's Celery task (default queue) and its scheduler dispatcher."""

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from integrations.connectors.kochava.models import KochavaStream
from integrations.connectors.kochava.stream import run_stream
from integrations.delivery.models import Destination, Health
from integrations.run_heartbeat import lost_before, stopped_at


# The task keeps the name it had in the campaigns app: messages already queued carry it.
@shared_task(name="campaigns.tasks.run_kochava_stream")
def run_kochava_stream(destination_id: int) -> dict:
    return run_stream(destination_id)


def dispatch_due(now: dt.datetime) -> None:
    """Scheduler hook (the registry adds it to config.scheduler's dispatchers).

    Claims each Kochava stream that is due by moving its next_run_at first (one UPDATE per stream,
    so two ticks never queue the same pass twice).
    """
    interval = dt.timedelta(seconds=settings.KOCHAVA_STREAM_INTERVAL_SECONDS)
    for destination in Destination.objects.filter(kind="kochava").exclude(health=Health.DISABLED):
        stream, _ = KochavaStream.objects.get_or_create(
            destination=destination, defaults={"workspace_id": destination.workspace_id}
        )
        claimed = (
            KochavaStream.objects.filter(pk=stream.pk)
            .filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
            .update(next_run_at=now + interval)
        )
        if claimed:
            run_kochava_stream.delay(destination.pk)


def mark_lost_runs(now: dt.datetime) -> list[int]:
    """Beat's lost-run check (config.scheduler.find_lost_runs): a pass whose heartbeat is older than
    RUN_LOST_SECONDS lost its worker. Say so, count what it may have sent twice (at most the events it
    had in flight) into resend_bound, and let the next pass start now; it resumes after the last
    answered event. Returns the destinations whose pass was lost."""
    with transaction.atomic():
        lost = list(
            KochavaStream.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("destination__workspace")  # its zone writes the note's time
            .filter(heartbeat_at__lt=lost_before(now))
        )
        for stream in lost:
            stream.lost_note = (
                f"The worker streaming this stopped at {stopped_at(stream.heartbeat_at, now, stream.destination.workspace.tz)}; the next pass "
                f"resumes after event {stream.last_event_id}, the last one answered: up to "
                f"{stream.in_flight_limit:,} events may have been sent to Kochava twice."
            )
            stream.resend_bound += stream.in_flight_limit
            stream.heartbeat_at, stream.next_run_at = None, now
            stream.save(update_fields=["lost_note", "resend_bound", "heartbeat_at", "next_run_at", "updated_at"])
    return [stream.destination_id for stream in lost]
