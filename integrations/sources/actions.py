"""What people and the scheduler ask of imports: queue a run (overlap guard, quota), retry a failed one.

The run itself is executed by a worker (integrations.sources.tasks -> integrations.sources.execution).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from integrations.sources import quota
from integrations.sources.cohorts import count_cohorts_to_import
from integrations.sources.models import Cadence, CohortImportJob, EventImportJob, ImportRun, RunStatus
from integrations.sources.runs import RunStateError, active_run, is_lost, job_filter, mark_lost, record_skipped
from integrations.sources.tasks import execute_run_task


def create_run(
    job: CohortImportJob | EventImportJob,
    *,
    trigger: str = "manual",
    now: datetime | None = None,
    retry_of: ImportRun | None = None,
    enqueue: bool = True,
) -> ImportRun:
    """Queue a run of `job`, or record it as skipped when one is still running (the overlap guard) or
    when it is a one-time job that already ran.

    A one-time job runs once: a run queued by hand takes the place of its scheduled start, and once
    a run of it succeeded no trigger (schedule, "Run now", the API, the admin) starts it again, so it
    never spends a second download. A failed one-time run can be retried.

    Raises quota.QuotaExceeded (nothing recorded) when a cohort run would not fit this month's budget.
    """
    now = now or timezone.now()
    if isinstance(job, CohortImportJob):
        count_cohorts_to_import(job)  # outside the transaction: it asks Amplitude
    with transaction.atomic():
        # The row lock serialises overlap checks per job; the fresh row has the latest cohort count.
        job = type(job).objects.select_for_update().select_related("project").get(pk=job.pk)
        running = active_run(job, now)
        if running is not None:
            return record_skipped(
                job, f"Skipped: run {running.pk} of this job is still {running.status}.", now=now, trigger=trigger
            )
        if job.cadence == Cadence.ONE_TIME:
            done = ImportRun.objects.filter(**job_filter(job), status=RunStatus.SUCCEEDED).order_by("id").first()
            if done is not None:
                return record_skipped(
                    job,
                    f"Skipped: this one-time job already ran (run {done.pk}); one time means once. Make it hourly "
                    "or daily, or create another job, to import again.",
                    now=now,
                    trigger=trigger,
                )
        if isinstance(job, CohortImportJob):
            quota.check(job.project, job.downloads_per_run, now)
        run = ImportRun.objects.create(
            workspace_id=job.workspace_id, **job_filter(job), trigger=trigger, retry_of=retry_of, phase="queued"
        )
        if job.cadence == Cadence.ONE_TIME and job.next_run_at is not None:
            # This run is the job's one run, whoever asked for it: its scheduled start is used up.
            type(job).objects.filter(pk=job.pk).update(next_run_at=None)
        if enqueue:
            transaction.on_commit(lambda: execute_run_task.delay(run.pk))
    return run


def retry_run(run: ImportRun, *, enqueue: bool = True) -> ImportRun:
    """A new run of a failed (or lost) run's job, linked to it by retry_of.

    A run still shown running whose worker is gone (heartbeat older than RUN_LOST_SECONDS) is lost:
    it is marked so here, without waiting for beat's lost-run check, and retried.
    """
    now = timezone.now()
    if is_lost(run, now):
        with transaction.atomic():
            run = ImportRun.objects.select_for_update().get(pk=run.pk)
            if is_lost(run, now):
                mark_lost(run, now)
    if run.status != RunStatus.FAILED:
        raise RunStateError(f"Only failed runs can be retried; run {run.pk} is {run.status}.")
    return create_run(run.job, trigger="retry", retry_of=run, enqueue=enqueue)
