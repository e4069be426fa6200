"""When import jobs run, and the beat dispatcher that starts them.

Daily runs are HH:MM local time in the job's IANA zone (integrations.schedules explains the DST
rules); hourly runs are at the top of each UTC hour. Every time is passed in (`now`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from integrations.schedules import next_daily, next_utc_hour
from integrations.sources.models import Cadence, CohortImportJob, EventImportJob

logger = logging.getLogger(__name__)

BATCH = 100  # jobs claimed per tick and kind


def next_hour(after: datetime) -> datetime:
    return next_utc_hour(after)


def next_run_after(job: CohortImportJob | EventImportJob, after: datetime) -> datetime | None:
    """The job's next run time after `after`, or None when it should not run again by itself."""
    if isinstance(job, EventImportJob):
        return next_hour(after) if job.keep_updated else None
    if job.cadence == Cadence.HOURLY:
        return next_hour(after)
    if job.cadence == Cadence.DAILY:
        return next_daily(after, job.time_of_day, job.timezone)
    return None


def first_run_at(job: CohortImportJob | EventImportJob, now: datetime) -> datetime:
    """Where a new or re-enabled job starts: one-time and event jobs right away, daily at the next time."""
    if isinstance(job, CohortImportJob) and job.cadence == Cadence.DAILY:
        return next_daily(now, job.time_of_day, job.timezone)
    return now


def dispatch_due(now: datetime) -> int:
    """Claim due jobs (SELECT … FOR UPDATE SKIP LOCKED), move next_run_at on, queue one run each.

    Called by the beat tick. Two ticks at once claim disjoint jobs; a job's next_run_at moves in the
    same transaction as its run is created, so a crash between them runs nothing twice.
    """
    from integrations.sources.quota import QuotaExceeded
    from integrations.sources.runs import create_run, record_skipped

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
