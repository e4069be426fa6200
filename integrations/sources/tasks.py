"""Celery tasks of the imports queue (routed by the `integrations.sources.tasks.` name prefix)."""

from celery import shared_task

from integrations.sources.execution import execute_run


@shared_task(name="integrations.sources.tasks.execute_run")
def execute_run_task(run_id: int) -> None:
    # Idempotent: a finished run is left alone; a redelivered one (its worker died) is redone.
    execute_run(run_id)
