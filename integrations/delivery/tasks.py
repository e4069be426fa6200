"""Celery tasks of the deliveries queue (routed by the integrations.delivery.tasks.* name prefix)."""

from celery import shared_task

from integrations.delivery.engine import execute_run


@shared_task(name="integrations.delivery.tasks.execute_run")
def execute_run_task(run_id: int) -> None:
    # Idempotent: a redelivered message finds the run no longer queued and returns at once.
    execute_run(run_id)
