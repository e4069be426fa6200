"""Import run state: THE function that changes it (`transition`), live progress, and whether a run is alive.

A run executes under a PostgreSQL advisory lock keyed by its id (`execution_lock`), held on a
connection of its own (integrations.locks). That lock is how the console knows a "running" run is
alive: when the worker dies its connections close and the lock goes with them. A redelivered task
(acks_late) finds the run still "running" with a free lock and redoes it from the start — safe,
because each cohort and each export window is applied in one transaction, and a half-done one was
rolled back by PostgreSQL.

Queuing runs is integrations.sources.actions; executing them, integrations.sources.execution.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Self

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.locks import held_lock
from integrations.run_heartbeat import lost_before, stopped_at
from integrations.sources.models import FINISHED, CohortImportJob, EventImportJob, ImportRun, RunStatus

logger = logging.getLogger(__name__)

_LOCK_SPACE = 0x5352  # "SR": keeps our advisory lock keys apart from other users of advisory locks
STALE_QUEUED = timedelta(hours=1)
# A task redelivered right after its worker died can find the lock still held for a moment: the dead
# worker's backend notices the closed socket only at its next client check (client_connection_check_interval,
# 1 s) and then rolls back. Wait that long before concluding that the run is really executing elsewhere.
LOCK_WAIT_SECONDS = 5.0  # a queued run whose task never started is considered lost after this

_ALLOWED = {
    RunStatus.QUEUED: {RunStatus.RUNNING, RunStatus.SKIPPED, RunStatus.FAILED},
    RunStatus.RUNNING: {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED},
}


class RunStateError(Exception):
    pass


def fit_phase(phase: str) -> str:
    """A phase cut to fit its column: phases name cohorts, and Amplitude's cohort names can be long."""
    limit = ImportRun._meta.get_field("phase").max_length
    return phase if len(phase) <= limit else phase[: limit - 1] + "…"


def transition(
    run: ImportRun,
    status: str | None = None,
    *,
    phase: str | None = None,
    error: str | None = None,
    counts: dict | None = None,
    rows_expected: int | None = None,
    rows_done: int | None = None,
    now: datetime | None = None,
) -> ImportRun:
    """The one writer of run state. Refuses to move a finished run; stamps start and finish times."""
    now = now or timezone.now()
    changes: dict = {}
    if status is not None and status != run.status:
        if status not in _ALLOWED.get(run.status, set()):
            raise RunStateError(f"run {run.pk}: {run.status} → {status} is not allowed")
        changes["status"] = status
        if status == RunStatus.RUNNING and run.started_at is None:
            changes["started_at"] = now
        if status in FINISHED:
            changes["finished_at"] = now
    if phase is not None:
        phase = fit_phase(phase)
    for name, value in (
        ("phase", phase),
        ("error", error),
        ("counts", counts),
        ("rows_expected", rows_expected),
        ("rows_done", rows_done),
    ):
        if value is not None:
            changes[name] = value
    if changes:
        updated = ImportRun.objects.filter(pk=run.pk).exclude(status__in=FINISHED).update(**changes)
        if not updated and run.status not in FINISHED:
            raise RunStateError(f"run {run.pk} was finished elsewhere")
        for name, value in changes.items():
            setattr(run, name, value)
    return run


class LiveProgress:
    """The phase and rows_done of work running inside one long transaction, visible while it runs.

    A cohort load holds everything it writes until it commits, its run's state included, yet the
    console should see a million-row cohort move. These writes go through a connection of their
    own, one short transaction per report. Best effort: a write that would wait over a second for a lock, or fails, is
    dropped with the ones after it, never the load. The in-memory run keeps its committed values,
    so a failed load's rows can be taken back with transition(run, rows_done=run.rows_done).
    Use it as a context manager (it closes its connection).
    """

    def __init__(self, run: ImportRun) -> None:
        self.run = run
        self._connection = None
        self._broken = False
        self._last = float("-inf")  # when the last report was sent (time.monotonic)

    def report(self, phase: str, rows_done: int | None = None, *, unless_within: float = 0.0) -> None:
        """`unless_within`: skip this report if the last one was sent less than that many seconds ago
        (for reports that come by the hundred, like one per file)."""
        if self._broken or time.monotonic() - self._last < unless_within:
            return
        self._last = time.monotonic()
        try:
            if self._connection is None:
                self._connection = connections.create_connection(DEFAULT_DB_ALIAS)
                self._connection.set_autocommit(False)  # one short transaction per report
            with self._connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '1s'")
                cursor.execute(
                    f"""UPDATE {ImportRun._meta.db_table} SET phase = %s, rows_done = COALESCE(%s, rows_done)
                        WHERE id = %s AND NOT (status = ANY(%s))""",
                    [fit_phase(phase), rows_done, self.run.pk, list(FINISHED)],
                )
            self._connection.commit()
        except DatabaseError as exc:
            logger.info("run %s: live progress dropped (%s)", self.run.pk, exc)
            self._broken = True

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()  # rolls back a report that failed half-way
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def job_filter(job: CohortImportJob | EventImportJob) -> dict:
    """The ImportRun fields naming `job`: ImportRun.objects.filter(**job_filter(job)) are its runs."""
    return {"cohort_job": job} if isinstance(job, CohortImportJob) else {"event_job": job}


def _lock_key(run_id: int) -> int:
    return (_LOCK_SPACE << 40) | run_id


@contextmanager
def execution_lock(run_id: int) -> Iterator[bool]:
    """Hold the run's execution lock for the block; yields False (holding nothing) when another worker
    still holds it after LOCK_WAIT_SECONDS."""
    with connection.cursor() as cursor:
        # If this worker is killed, its backend notices the lost client within seconds and rolls
        # back, instead of finishing a long statement whose row locks would block the redo.
        # (Behind PgBouncer in transaction mode, set it for the role instead: docs/deployment.md.)
        cursor.execute("SELECT set_config('client_connection_check_interval', '1000', false)")
    with held_lock(_lock_key(run_id), wait_seconds=LOCK_WAIT_SECONDS) as held:
        yield held


def is_alive(run: ImportRun) -> bool:
    """Does some worker hold this run's execution lock right now?"""
    key = _lock_key(run.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                              AND classid = %s AND objid = %s AND objsubid = 1)""",
            [key >> 32, key & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


def active_run(job: CohortImportJob | EventImportJob, now: datetime) -> ImportRun | None:
    """The job's queued or running run that is really still alive; dead ones are failed on the way."""
    for run in ImportRun.objects.filter(**job_filter(job), status__in=[RunStatus.QUEUED, RunStatus.RUNNING]):
        if run.status == RunStatus.RUNNING and not is_alive(run):
            transition(
                run,
                RunStatus.FAILED,
                phase="abandoned",
                now=now,
                error="The worker running this import stopped (killed or restarted); nothing of the "
                "unfinished part was applied. Retry the run.",
            )
            continue
        if run.status == RunStatus.QUEUED and run.created_at < now - STALE_QUEUED:
            transition(
                run,
                RunStatus.FAILED,
                phase="abandoned",
                now=now,
                error="The run was queued but never started (no worker on the imports queue?).",
            )
            continue
        return run
    return None


def lost_message(run: ImportRun, now: datetime) -> str:
    # First what matters (the console shows 200 characters): when, and what to do.
    return (
        f"The worker running this stopped at {stopped_at(run.heartbeat_at, now, run.workspace.tz)}; retry the run. Nothing "
        f"unfinished was applied (it was {run.phase or 'starting'}; each cohort and export window is applied "
        "whole or not at all). The worker was killed, ran out of memory or lost its host."
    )


def mark_lost(run: ImportRun, now: datetime) -> ImportRun:
    """A running run whose worker is gone: failed, phase "lost", saying when its worker stopped."""
    return transition(run, RunStatus.FAILED, phase="lost", error=lost_message(run, now), now=now)


def is_lost(run: ImportRun, now: datetime) -> bool:
    """A running run whose heartbeat is older than RUN_LOST_SECONDS (or that never had one)."""
    if run.status != RunStatus.RUNNING:
        return False
    since = run.heartbeat_at or run.started_at or run.created_at
    return since < lost_before(now)


def mark_lost_runs(now: datetime) -> list[int]:
    """Beat's lost-run check for imports: running runs with a stale heartbeat become failed, phase "lost".

    Rows locked by a live transaction (the run writing its counts) are skipped, never declared lost.
    """
    threshold = lost_before(now)
    with transaction.atomic():
        lost = list(
            ImportRun.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("workspace")  # its zone writes the note's time
            .filter(status=RunStatus.RUNNING)
            .filter(Q(heartbeat_at__lt=threshold) | Q(heartbeat_at__isnull=True, created_at__lt=threshold))
            .order_by("id")[:200]
        )
        for run in lost:
            mark_lost(run, now)
            logger.warning("import run %s lost its worker (last heartbeat %s)", run.pk, run.heartbeat_at)
    return [run.pk for run in lost]


def record_skipped(
    job: CohortImportJob | EventImportJob, reason: str, *, now: datetime | None = None, trigger: str = "schedule"
) -> ImportRun:
    """A run of `job` that did not happen, saying why."""
    now = now or timezone.now()
    run = ImportRun.objects.create(
        workspace_id=job.workspace_id,
        **job_filter(job),
        trigger=trigger,
        status=RunStatus.SKIPPED,
        phase="skipped",
        error=reason,
        finished_at=now,
    )
    logger.info("import run %s of %s skipped: %s", run.pk, job, reason)
    return run


def bump_counts(run: ImportRun, delta: dict) -> None:
    """Add numbers into run.counts (nested dicts of numbers are added key by key)."""
    counts = dict(run.counts)
    for name, value in delta.items():
        if isinstance(value, dict):
            inner = dict(counts.get(name) or {})
            for key, number in value.items():
                inner[key] = inner.get(key, 0) + number
            counts[name] = inner
        elif isinstance(value, list):
            counts[name] = (list(counts.get(name) or []) + value)[:100]
        else:
            counts[name] = counts.get(name, 0) + value
    transition(run, counts=counts)
