"""Demo workspace: an Amplitude project on the sandbox, a daily cohort import and an hourly event import.

Runs when SANDBOX_AMPLITUDE_URL is set (the run command starts the sandbox); otherwise it says so
and skips. Idempotent: objects are found by label, and the first import runs only once.
"""

import os
from datetime import time, timedelta

from django.utils import timezone

from integrations.models import Authorization
from integrations.sources.actions import create_run, retry_run
from integrations.sources.amplitude import AmplitudeError
from integrations.sources.cohorts import list_project_cohorts
from integrations.sources.execution import execute_run
from integrations.sources.models import (
    AmplitudeProject,
    Cadence,
    CohortImportJob,
    EventImportJob,
    ImportRun,
    RunStatus,
)
from integrations.sources.runs import mark_lost_runs
from integrations.sources.scheduling import first_run_at


def populate_demo(workspace, state: dict, out) -> None:
    base_url = os.environ.get("SANDBOX_AMPLITUDE_URL")
    if not base_url:
        out.write("  Amplitude sources: SANDBOX_AMPLITUDE_URL is not set, skipping the import demo.")
        return
    auth = Authorization.objects.filter(workspace=workspace, label="Amplitude sandbox").first()
    if auth is None:
        auth = Authorization(workspace=workspace, provider="amplitude", label="Amplitude sandbox")
        auth.set_secrets(
            {
                "api_key": os.environ.get("SANDBOX_AMPLITUDE_API_KEY", "demo"),
                "secret_key": os.environ.get("SANDBOX_AMPLITUDE_SECRET_KEY", "demo-secret"),
            }
        )
        auth.save()
    project, _ = AmplitudeProject.objects.update_or_create(
        workspace=workspace, label="Music app (sandbox)", defaults={"base_url": base_url, "authorization": auth}
    )
    now = timezone.now()
    cohort_job, created = CohortImportJob.objects.get_or_create(
        workspace=workspace,
        project=project,
        label="All cohorts, daily",
        defaults={"cadence": Cadence.DAILY, "time_of_day": time(6), "timezone": workspace.timezone},
    )
    if created:
        cohort_job.next_run_at = first_run_at(cohort_job, now)
        cohort_job.save(update_fields=["next_run_at"])
    event_job, created = EventImportJob.objects.get_or_create(
        workspace=workspace, project=project, label="Events, hourly", defaults={"backfill_days": 2}
    )
    if created:
        event_job.next_run_at = now
        event_job.save(update_fields=["next_run_at"])
    try:  # the cohort picker's listing (Load cohorts does the same in the console)
        out.write(f"  Amplitude lists {len(list_project_cohorts(project))} cohorts (the picker on the source page).")
    except AmplitudeError as exc:
        out.write(f"  Amplitude cohort listing failed: {exc}")
    for job in (cohort_job, event_job):
        if not job.runs.filter(status=RunStatus.SUCCEEDED).exists():
            run = create_run(job, trigger="manual", enqueue=False)
            execute_run(run.pk)
            run.refresh_from_db()
            out.write(f"  {job.label}: run {run.pk} {run.status} {run.error[:200]}")
    _lost_worker(event_job, out)
    out.write(f"  Amplitude sandbox imports: {project.label} at {base_url}")


def _lost_worker(job: EventImportJob, out) -> None:
    """A run whose worker died mid-import (as after kill -9 or an OOM kill): it stopped beating, the
    same lost-run check beat runs every RUN_LOST_CHECK_SECONDS marks it lost, and its retry runs.
    The event job's history then shows both, as ops would see them after a lost host."""
    if job.runs.filter(phase="lost").exists():
        return
    run = create_run(job, trigger="manual", enqueue=False)
    gone = timezone.now() - timedelta(minutes=10)  # its last heartbeat, long before RUN_LOST_SECONDS
    ImportRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, phase="loading", started_at=gone, heartbeat_at=gone
    )
    mark_lost_runs(timezone.now())
    run.refresh_from_db()
    retry = retry_run(run, enqueue=False)
    execute_run(retry.pk)
    retry.refresh_from_db()
    out.write(
        f"  Lost worker: run {run.pk} {run.status} ({run.error[:120]}); its retry, run {retry.pk}, {retry.status}."
    )
