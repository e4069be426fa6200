"""Kahuna's Celery tasks (default queue) and its scheduler dispatcher."""

import datetime as dt

from celery import shared_task

from integrations.connectors.kahuna.export import run_export
from integrations.connectors.kahuna.models import ExportStatus, KahunaExport


# The task keeps the name it had in the campaigns app: messages already queued carry it.
@shared_task(name="campaigns.tasks.run_kahuna_export")
def run_kahuna_export(export_id: int) -> None:
    run_export(export_id)


def dispatch_due(now: dt.datetime) -> None:
    """Scheduler hook (the registry adds it to config.scheduler's dispatchers): re-queues exports
    whose task was lost."""
    stale = now - dt.timedelta(minutes=5)
    for export_id in KahunaExport.objects.filter(status=ExportStatus.QUEUED, created_at__lt=stale).values_list(
        "pk", flat=True
    ):
        run_kahuna_export.delay(export_id)
