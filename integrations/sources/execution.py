"""Executing an import run: claim its execution lock, run the cohort or event import, record the end.

Called by the imports queue's task (integrations.sources.tasks) and, in tests and benchmarks, directly.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from integrations.run_heartbeat import RunHeartbeat
from integrations.sources import quota
from integrations.sources.amplitude import AmplitudeError
from integrations.sources.cohorts import CohortFileError, run_cohort_import
from integrations.sources.exports import UP_TO_DATE, ExportFileError, run_event_import
from integrations.sources.models import FINISHED, ImportRun, RunStatus
from integrations.sources.runs import RunStateError, execution_lock, transition

logger = logging.getLogger(__name__)


def execute_run(run_id: int, **runner_options) -> ImportRun | None:
    """Run (or redo, after a crashed worker) one import run. Idempotent for finished runs."""
    with execution_lock(run_id) as held:
        if not held:
            logger.info("import run %s is already being executed elsewhere", run_id)
            return None
        run = (
            ImportRun.objects.select_related("cohort_job__project__authorization", "event_job__project__authorization")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.status in FINISHED:
            return run
        if run.status == RunStatus.RUNNING:
            logger.warning("import run %s was interrupted; redoing it from the start", run_id)
            counts = {**run.counts, "restarts": run.counts.get("restarts", 0) + 1}
            transition(run, phase="restarting", counts=counts)
        else:
            transition(run, RunStatus.RUNNING, phase="starting")
        # The heartbeat tells beat's lost-run check that this worker is alive (integrations.run_heartbeat).
        ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
        with RunHeartbeat(ImportRun._meta.db_table, run.pk, owned="status = 'running'"):
            try:
                _execute(run, **runner_options)
            except RunStateError as exc:  # declared lost meanwhile (this worker was silent too long)
                logger.warning("import run %s was finished elsewhere: %s", run_id, exc)
        return run


def _execute(run: ImportRun, **runner_options) -> None:
    runner = run_cohort_import if run.cohort_job_id else run_event_import
    try:
        error = runner(run, **runner_options)
    except (AmplitudeError, CohortFileError, ExportFileError, quota.QuotaExceeded) as exc:
        transition(run, RunStatus.FAILED, phase=f"failed while {run.phase}", error=str(exc))
        return
    except Exception as exc:
        logger.exception("import run %s crashed", run.pk)
        transition(
            run,
            RunStatus.FAILED,
            phase=f"failed while {run.phase}",
            error=f"Internal error: {exc.__class__.__name__}: {exc}",
        )
        return
    if error:
        transition(run, RunStatus.FAILED, phase="finished with errors", error=error)
    else:
        # A run that found nothing new keeps saying so: "done" would look like a run that imported.
        transition(run, RunStatus.SUCCEEDED, phase=UP_TO_DATE if run.phase == UP_TO_DATE else "done")
