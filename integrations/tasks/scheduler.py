"""The beat tick. Due work is found in the database (next_run_at), never held by the scheduler."""

import time

from celery import shared_task

from integrations.redis_client import redis_client

TICK_KEY = "scheduler:last_tick"


@shared_task(name="integrations.tasks.scheduler.tick")
def tick() -> None:
    # The timestamp lets /healthz and ops see that the scheduler is alive.
    redis_client().set(TICK_KEY, str(time.time()))
