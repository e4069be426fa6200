"""When import jobs start, and the beat dispatcher that starts them.

Next runs are integrations.schedules.next_run_after, the one rule imports and syncs share (daily at
HH:MM and hourly at the top of the hour, both in the job's IANA zone; event imports on UTC hours).
Every time is passed in (`now`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from integrations.schedules import next_run_after
from integrations.sources.actions import create_run
from integrations.sources.models import Cadence, CohortImportJob, EventImportJob, ImportRun
from integrations.sources.quota import QuotaExceeded
from integrations.sources.runs import record_skipped

logger = logging.getLogger(__name__)

BATCH = 100  # jobs claimed per tick and kind


def first_run_at(job: CohortImportJob | EventImportJob, now: datetime) -> datetime:
    """Where a new or re-enabled job starts: daily ones at their next time, all others right away."""
    if job.cadence == Cadence.DAILY:
        return next_run_after(job, now)
    return now


def start_new_job(job: CohortImportJob | EventImportJob, now: datetime | None = None) -> ImportRun | None:
    """A job just saved in the console: when its first slot is now (one time, hourly) its first run
    is queued at once, as the scheduler's tick would a minute later, and the scheduler gets the slot
    after it (none for a one-time job: that run is its one run); a daily job waits for its time.
    Returns the run queued, if any.

    Raises QuotaExceeded (the job saved, nothing queued) when the month's downloads cannot cover it.
    """
    now = now or timezone.now()
    first = first_run_at(job, now) if job.enabled else None
    if first is None or first > now:
        job.next_run_at = first
        job.save(update_fields=["next_run_at"])
        return None
    job.next_run_at = next_run_after(job, now)
    job.save(update_fields=["next_run_at"])
    return create_run(job, trigger="manual", now=now)


def dispatch_due(now: datetime) -> int:
    """Claim due jobs (SELECT … FOR UPDATE SKIP LOCKED), move next_run_at on, queue one run each.

    Called by the beat tick. Two ticks at once claim disjoint jobs; a job's next_run_at moves in the
    same transaction as its run is created, so a crash between them runs nothing twice.
    """
    queued = 0
    for model in (CohortImportJob, EventImportJob):
        with transaction.atomic():
            due = list(
                model.objects.select_for_update(skip_locked=True)
                .filter(enabled=True, next_run_at__lte=now)
                .order_by("next_run_at")[:BATCH]
            )
            for job in due:
                job.next_run_at = next_run_after(job, now)
                job.save(update_fields=["next_run_at"])
                try:
                    create_run(job, trigger="schedule", now=now)
                    queued += 1
                except QuotaExceeded as exc:
                    record_skipped(job, str(exc), now=now)
    return queued
