"""What people and the scheduler do to a sync job: start a run, pause, resume, schedule, reset the
diff, test a destination's connection.

The console (console/views/syncs.py), the management API (integrations/delivery/api.py), the admin,
the demo and the scheduler's dispatcher (integrations/delivery/scheduling.py) call these, so a rule
such as "a one-time sync starts now" is written once.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from integrations.connectors.base import ConnectorError, Policy, SegmentInfo
from integrations.delivery.calls import CallLog, log_calls
from integrations.delivery.health import set_health
from integrations.delivery.models import (
    ACTIVE_STATUSES,
    Cadence,
    Destination,
    Health,
    RunMode,
    RunStatus,
    SyncJob,
    SyncRun,
)
from integrations.delivery.planning import destination_connector, ledger_high_water
from integrations.delivery.tasks import execute_run_task
from integrations.schedules import next_run_after

# ---- starting runs -------------------------------------------------------------------------------

DID_ITS_WORK = (RunStatus.SUCCEEDED, RunStatus.PARTIALLY_FAILED)  # a one-time sync's run that counts as its one


def start_run(
    job: SyncJob, *, trigger: str = "manual", mode: str = RunMode.AUTO, now: dt.datetime | None = None
) -> SyncRun:
    """Create a queued run, or a skipped one saying why (overlap guard, disabled destination, a
    one-time sync that already ran).

    A one-time sync runs once: a run started by hand takes the place of its scheduled start, and once
    a run of it delivered (succeeded or partially failed) neither the schedule nor "Sync now" starts
    it again. "Full resync" and "Retry failed rows" still do: they say what they send again.

    The caller enqueues queued runs (`enqueue`) after its transaction commits.
    """
    now = now or timezone.now()
    with transaction.atomic():
        job = SyncJob.objects.select_for_update().select_related("destination").get(pk=job.pk)
        active = SyncRun.objects.filter(job=job, status__in=ACTIVE_STATUSES).order_by("id").first()
        done = (
            SyncRun.objects.filter(job=job, status__in=DID_ITS_WORK).order_by("id").first()
            if job.cadence == Cadence.ONE_TIME and mode == RunMode.AUTO
            else None
        )
        reason = ""
        if active is not None:
            reason = f"Skipped: run #{active.pk} is still {active.status}; runs of one sync never overlap."
        elif done is not None:
            reason = (
                f"Skipped: this one-time sync already ran (run #{done.pk}); one time means once. Full resync or "
                "retry failed rows to send again, or make it hourly or daily."
            )
        elif job.destination.health == Health.DISABLED:
            reason = f"Skipped: the destination is disabled ({job.destination.last_error or 'no error recorded'})."
        if reason:
            return SyncRun.objects.create(
                workspace_id=job.workspace_id,
                job=job,
                mode=mode,
                trigger=trigger,
                status=RunStatus.SKIPPED,
                error=reason,
                finished_at=now,
            )
        if job.cadence == Cadence.ONE_TIME and job.next_run_at is not None:
            # This run is the sync's one run, whoever asked for it: its scheduled start is used up.
            SyncJob.objects.filter(pk=job.pk).update(next_run_at=None)
        return SyncRun.objects.create(workspace_id=job.workspace_id, job=job, mode=mode, trigger=trigger)


def enqueue(run_id: int) -> None:
    """Hand a queued run to a worker once the current transaction commits."""
    transaction.on_commit(lambda: execute_run_task.delay(run_id))


def run_now(job: SyncJob, *, trigger: str, mode: str = RunMode.AUTO) -> SyncRun:
    """Start a run of `job` and hand it to a worker; a skipped run comes back with its reason."""
    run = start_run(job, trigger=trigger, mode=mode)
    if run.status == RunStatus.QUEUED:
        enqueue(run.pk)
    return run


# ---- the schedule --------------------------------------------------------------------------------


def schedule_new_job(job: SyncJob, now: dt.datetime | None = None) -> SyncJob:
    """A new job's first run: one-time and real-time syncs start now, the others at their next slot."""
    now = now or timezone.now()
    job.next_run_at = now if job.cadence in (Cadence.ONE_TIME, Cadence.REALTIME) else next_run_after(job, now)
    job.save(update_fields=["next_run_at"])
    return job


STARTS_AT_ONCE = (Cadence.ONE_TIME, Cadence.REALTIME)


def start_new_job(job: SyncJob, now: dt.datetime | None = None) -> SyncRun | None:
    """The wizard's "Save and sync now": a new one-time or real-time sync's first run is queued at
    once, not at the scheduler's next tick. Returns that run (skipped, with its reason, if it could not start), or
    None for hourly and daily syncs, which start at their first slot.

    A one-time sync's run now is its one run, so nothing is left for the scheduler (next_run_at
    None); a real-time sync's next run is the minute after.
    """
    now = now or timezone.now()
    if job.cadence not in STARTS_AT_ONCE:
        schedule_new_job(job, now)
        return None
    job.next_run_at = next_run_after(job, now)  # None for one time
    job.save(update_fields=["next_run_at"])
    return run_now(job, trigger="manual")


def pause(job: SyncJob) -> SyncJob:
    """Scheduled runs stop until `resume` (a run in progress finishes; manual runs still start)."""
    job.paused = True
    job.save(update_fields=["paused"])
    return job


def resume(job: SyncJob, now: dt.datetime | None = None) -> SyncJob:
    """Scheduled runs start again: the next one at the next slot, not at once for every slot missed."""
    now = now or timezone.now()
    job.paused = False
    if job.cadence != Cadence.ONE_TIME and (job.next_run_at is None or job.next_run_at < now):
        job.next_run_at = next_run_after(job, now)
    job.save(update_fields=["paused", "next_run_at"])
    return job


# ---- operator actions ----------------------------------------------------------------------------


def reset_diff(job: SyncJob) -> int:
    """Move the cursor to now without sending, and drop carried failures. Returns the new cursor."""
    high = ledger_high_water()
    with transaction.atomic():
        job = SyncJob.objects.select_for_update().get(pk=job.pk)
        if SyncRun.objects.filter(job=job, status__in=ACTIVE_STATUSES).exists():
            raise ValueError("A run of this sync is in progress; wait for it to finish.")
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE delivery_deliveryrow SET status = 'carried', carry_over = false, reason = 'dropped by reset diff' "
                "WHERE job_id = %s AND carry_over AND status = 'failed'",
                [job.pk],
            )
        SyncJob.objects.filter(pk=job.pk).update(cursor=high)
    return high


def trial_connection_test(destination: Destination) -> tuple[bool, str]:
    """The connector's probe for a destination not saved yet, or saved with changes not yet kept (the
    console's "test before save"): the same outgoing-request policy and masking, nothing recorded."""
    connector = destination_connector(destination, segment=SegmentInfo(0, "connection test", "0"))
    try:
        return True, connector.mask(connector.test_connection())
    except ConnectorError as error:
        return False, connector.mask(error.message)


def run_connection_test(destination: Destination) -> tuple[bool, str]:
    """Runs the connector's probe; success restores a disabled/degraded destination to healthy."""
    calls = CallLog()
    connector = destination_connector(destination, segment=SegmentInfo(0, "connection test", "0"), on_call=calls)
    try:
        message = connector.mask(connector.test_connection())
        ok = True
    except ConnectorError as error:
        ok, message = False, connector.mask(error.message)
        if error.policy == Policy.AUTH:
            set_health(destination, Health.DISABLED, message)
    log_calls(destination.pk, None, calls.drain())
    if ok:
        set_health(destination, Health.HEALTHY)
    return ok, message
