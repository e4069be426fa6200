"""The beat tick (scheduled every minute by config/celery.py's beat_schedule). Due work is found in
the database (next_run_at), never held by the scheduler.

Each capability exposes `dispatch_due(now)` which claims its due rows (SELECT … FOR UPDATE SKIP
LOCKED, then moves next_run_at) and queues their tasks; the tick just calls them in turn, so a
second beat or a restarted one never runs a job twice. The dispatchers are named, not imported, so
this wiring module loads before the apps do (the worker imports it through the Celery app's include).
"""

import logging
import time

from celery import shared_task
from django.utils import timezone
from django.utils.module_loading import import_string

from integrations.connectors.registry import PARTNER_DISPATCHERS, PARTNER_LOST_RUN_CHECKS
from integrations.redis_client import redis_client

logger = logging.getLogger(__name__)

TICK_KEY = "scheduler:last_tick"

DISPATCHERS: tuple[str, ...] = (
    "integrations.inbound.tasks.dispatch_pending",
    "integrations.delivery.scheduling.dispatch_due",
    "integrations.sources.scheduling.dispatch_due",
    "campaigns.scheduling.dispatch_due",
    *PARTNER_DISPATCHERS,  # the partners' own (their streams, their lost exports)
)

# Runs whose worker was lost (heartbeat older than RUN_LOST_SECONDS; integrations.run_heartbeat),
# checked every RUN_LOST_CHECK_SECONDS by their own beat entry, not by the minute's tick.
LOST_RUN_CHECKS: tuple[str, ...] = (
    "integrations.sources.runs.mark_lost_runs",
    "integrations.delivery.scheduling.mark_lost_runs",
    *PARTNER_LOST_RUN_CHECKS,  # the partners' own runs (the Kochava stream's passes)
)


@shared_task(name="config.scheduler.tick")
def tick() -> None:
    now = timezone.now()
    for path in DISPATCHERS:
        try:
            import_string(path)(now)
        except Exception:  # one broken dispatcher must not starve the others
            logger.exception("scheduler dispatcher %s failed", path)
    # The timestamp lets ops (/metrics, the beat container's health check) see that the scheduler is alive.
    redis_client().set(TICK_KEY, str(time.time()))


@shared_task(name="config.scheduler.find_lost_runs")
def find_lost_runs() -> dict[str, list[int]]:
    """Say so on every run whose worker was lost; imports fail (retry them), syncs and streams resume."""
    now = timezone.now()
    found = {}
    for path in LOST_RUN_CHECKS:
        try:
            found[path] = import_string(path)(now)
        except Exception:  # one broken check must not starve the others
            logger.exception("lost-run check %s failed", path)
    return found


def last_tick() -> float | None:
    """Unix time of the last completed tick, or None when none was recorded."""
    raw = redis_client().get(TICK_KEY)
    return float(raw) if raw else None
