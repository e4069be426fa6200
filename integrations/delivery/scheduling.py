"""When sync jobs run next and the beat dispatcher that starts due ones.

Next runs are integrations.schedules.next_run_after, the one rule syncs and imports share: daily at
HH:MM and hourly at the top of the hour, both in the job's IANA zone (DST-correct, zoneinfo), real
time every minute.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from integrations.connectors.registry import connector_class
from integrations.delivery.actions import enqueue, start_run
from integrations.delivery.models import (
    ACTIVE_STATUSES,
    Cadence,
    DeliveryRow,
    Health,
    RowStatus,
    RunStatus,
    SyncJob,
    SyncRun,
)
from integrations.run_heartbeat import clock_in, lost_before, stopped_at
from integrations.schedules import next_run_after

logger = logging.getLogger(__name__)
UTC = dt.UTC


def schedule_if_unscheduled(job: SyncJob, now: dt.datetime | None = None) -> None:
    """Give a job made outside the API and the wizard (the demo) its next scheduled run."""
    if job.next_run_at is None and job.cadence != Cadence.ONE_TIME:
        job.next_run_at = next_run_after(job, now or dt.datetime.now(UTC))
        SyncJob.objects.filter(pk=job.pk).update(next_run_at=job.next_run_at)


def dispatch_due(now: dt.datetime) -> list[int]:
    """Beat hook: start due jobs, resume waiting runs and queued runs never picked up. Returns queued
    run ids. (Runs whose worker died are found by `mark_lost_runs`, every RUN_LOST_CHECK_SECONDS.)

    Jobs are claimed with FOR UPDATE SKIP LOCKED and their next_run_at moved in the same
    transaction, so two schedulers never start the same job twice.
    """
    queued: list[int] = []
    with transaction.atomic():
        due = list(
            SyncJob.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("destination", "segment")
            .filter(next_run_at__lte=now, paused=False)
            .exclude(destination__health=Health.DISABLED)
            .order_by("next_run_at")[:200]
        )
        for job in due:
            run = start_run(job, trigger="schedule", now=now)
            job.next_run_at = next_run_after(job, now)
            job.save(update_fields=["next_run_at"])
            if run.status == RunStatus.QUEUED:
                queued.append(run.pk)
        stale = now - dt.timedelta(seconds=settings.DELIVERY_STALE_RUN_SECONDS)
        # Rate-limited runs whose wait is over, and queued runs whose task never started.
        resumable = list(
            SyncRun.objects.select_for_update(skip_locked=True)
            .filter(status__in=ACTIVE_STATUSES)
            .filter(
                Q(status=RunStatus.WAITING, next_attempt_at__lte=now) | Q(status=RunStatus.QUEUED, created_at__lt=stale)
            )
            .values_list("pk", flat=True)[:200]
        )
        if resumable:
            SyncRun.objects.filter(pk__in=resumable).update(status=RunStatus.QUEUED, next_attempt_at=None)
            queued.extend(resumable)
    for run_id in queued:
        enqueue(run_id)
    return queued


def mark_lost_runs(now: dt.datetime) -> list[int]:
    """Beat's lost-run check for syncs: a running run whose heartbeat is older than RUN_LOST_SECONDS
    lost its worker. It says so (lost_note), counts what the lost worker may have sent twice (at most
    its requests in flight: in_flight_limit rows, fewer when fewer rows were left) into resend_bound,
    and resumes: queued again, the next worker sends the rows not yet recorded.

    Rows locked by a live transaction are skipped, never declared lost. Returns the resumed run ids.
    """
    threshold = lost_before(now)
    resumed: list[int] = []
    with transaction.atomic():
        lost = list(
            SyncRun.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("job__destination__workspace")
            .filter(status=RunStatus.RUNNING)
            .filter(Q(heartbeat_at__lt=threshold) | Q(heartbeat_at__isnull=True, created_at__lt=threshold))
            .order_by("id")[:200]
        )
        for run in lost:
            pending = DeliveryRow.objects.filter(run=run, status=RowStatus.PENDING).count()
            resent = min(pending, run.in_flight_limit)
            destination = run.job.destination
            effect = connector_class(destination.kind).resend_note(resent, destination.config)
            tz = destination.workspace.tz  # the note is text: written in the zone its readers use
            run.lost_note = (
                f"The worker running this stopped at {stopped_at(run.heartbeat_at, now, tz)}; resumed at "
                f"{clock_in(now, tz)} with the {pending:,} rows not yet recorded: {effect}."
            )
            run.resend_bound += resent
            run.status, run.next_attempt_at = RunStatus.QUEUED, None
            run.save(update_fields=["lost_note", "resend_bound", "status", "next_attempt_at"])
            logger.warning("sync run %s lost its worker (last heartbeat %s); resumed", run.pk, run.heartbeat_at)
            resumed.append(run.pk)
    for run_id in resumed:
        enqueue(run_id)
    return resumed
