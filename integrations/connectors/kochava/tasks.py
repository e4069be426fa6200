"""Kochava's Celery task (default queue) and its scheduler dispatcher."""

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db.models import Q

from integrations.connectors.kochava.models import KochavaStream
from integrations.connectors.kochava.stream import run_stream
from integrations.delivery.models import Destination, Health


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
