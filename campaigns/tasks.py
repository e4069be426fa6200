"""Celery tasks of the partner features (default queue) and their scheduler dispatcher."""

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db.models import Q

from campaigns.kahuna import run_export
from campaigns.kochava_stream import run_stream
from campaigns.models import ExportStatus, KahunaExport, KochavaStream
from integrations.delivery.models import Destination, Health


@shared_task(name="campaigns.tasks.run_kahuna_export")
def run_kahuna_export(export_id: int) -> None:
    run_export(export_id)


@shared_task(name="campaigns.tasks.run_kochava_stream")
def run_kochava_stream(destination_id: int) -> dict:
    return run_stream(destination_id)


def dispatch_due(now) -> None:
    """Scheduler hook (add "campaigns.tasks.dispatch_due" to config.scheduler.DISPATCHERS).

    Claims each Kochava stream that is due by moving its next_run_at first (one UPDATE per stream,
    so two ticks never queue the same pass twice), and re-queues exports whose task was lost.
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
    stale = now - dt.timedelta(minutes=5)
    for export_id in KahunaExport.objects.filter(status=ExportStatus.QUEUED, created_at__lt=stale).values_list(
        "pk", flat=True
    ):
        run_kahuna_export.delay(export_id)
