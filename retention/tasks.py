"""The daily pruning (beat: config/celery.py, at RETENTION_HOUR_UTC)."""

import logging

from celery import shared_task
from django.utils import timezone

from retention.models import PruneRun
from retention.prune import PruneBusy, Report, prune

logger = logging.getLogger(__name__)


def run_and_record(
    *, dry_run: bool = False, trigger: str = "schedule", batch_size: int | None = None
) -> tuple[PruneRun, Report]:
    """Prune (or count), keep what it removed as a PruneRun, and return (run, report)."""
    record = PruneRun.objects.create(dry_run=dry_run, trigger=trigger)
    try:
        report = prune(dry_run=dry_run, batch_size=batch_size)
    except PruneBusy as exc:
        record.error, record.finished_at = str(exc), timezone.now()
        record.save(update_fields=["error", "finished_at"])
        raise
    except Exception as exc:  # recorded for ops, then raised for the worker's log
        record.error, record.finished_at = f"{type(exc).__name__}: {exc}"[:2000], timezone.now()
        record.save(update_fields=["error", "finished_at"])
        raise
    record.removed, record.dropped_partitions = dict(report.removed), report.dropped_partitions
    record.finished_at = timezone.now()
    record.save(update_fields=["removed", "dropped_partitions", "finished_at"])
    return record, report


@shared_task(name="retention.tasks.prune_daily")
def prune_daily() -> None:
    try:
        _, report = run_and_record()
    except PruneBusy:
        logger.info("pruning skipped: another one is running")
        return
    logger.info("pruning done: %s", "; ".join(report.lines()))
