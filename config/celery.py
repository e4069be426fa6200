"""The Celery app: at-least-once delivery, tuned so a killed worker loses nothing (docs/invariants.md 2 and 5).

- acks_late + reject_on_worker_lost: a task is acknowledged only when it finishes; if the worker
  dies the broker redelivers it. Every task must therefore be idempotent.
- prefetch 1: a worker holds one task at a time, so a crash strands at most one.
- visibility_timeout above the hard time limit: otherwise Redis would hand a still-running task to a
  second worker. Long waits are stored in the database (next_attempt_at), never as countdowns.
- A redelivery cap: a task that keeps killing its worker (poison message) is dropped after
  CELERY_MAX_DELIVERIES deliveries and logged, instead of looping forever.
Settings live in config/settings.py under CELERY_*; they are read lazily here.
"""

import logging
import os

from celery import Celery, Task
from celery.schedules import crontab
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from kombu import Queue

from config.heartbeat import start_heartbeat, stop_heartbeat
from integrations.connectors.registry import PARTNER_APPS
from integrations.redis_client import redis_client

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

QUEUES = ("inbound", "imports", "deliveries", "default")


class ReliableTask(Task):
    """Counts deliveries per task id in Redis and gives up on a poison message after the cap."""

    def __call__(self, *args, **kwargs):
        request = self.request
        if not request.called_directly and not request.is_eager and request.id:
            deliveries = count_delivery(request.id)
            if deliveries > settings.CELERY_MAX_DELIVERIES:
                logger.error(
                    "task %s[%s] dropped after %s deliveries (redelivery cap)", self.name, request.id, deliveries
                )
                return None
        return super().__call__(*args, **kwargs)


def count_delivery(task_id: str) -> int:
    key = f"celery:deliveries:{task_id}"
    pipe = redis_client().pipeline()
    pipe.incr(key)
    pipe.expire(key, 7 * 24 * 3600)
    return int(pipe.execute()[0])


# config.scheduler holds the tick the beat schedule below names.
app = Celery("cohort_console", task_cls=ReliableTask, include=["config.scheduler"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_default_queue="default",
    task_queues=[Queue(name) for name in QUEUES],
    # Queues by module: inbound applies pushes, imports pulls from Amplitude, deliveries talks to partners.
    task_routes={
        "integrations.inbound.tasks.*": {"queue": "inbound"},
        "integrations.sources.tasks.*": {"queue": "imports"},
        "integrations.delivery.tasks.*": {"queue": "deliveries"},
        "campaigns.tasks.*": {"queue": "deliveries"},
    },
    # The scheduler only ticks; what is due lives in the database (next_run_at), so a beat restart
    # or a second beat never runs a job twice (the tick claims due rows with a row lock).
    beat_schedule={"tick": {"task": "config.scheduler.tick", "schedule": 60.0}},
)


@app.on_after_configure.connect
def _lost_run_check(sender, **kwargs) -> None:
    # More often than the tick: a lost worker is told within seconds (RUN_LOST_SECONDS), not hours.
    # Added once the configuration is read, because the interval is a setting.
    sender.add_periodic_task(
        float(settings.RUN_LOST_CHECK_SECONDS), sender.signature("config.scheduler.find_lost_runs"), name="lost-runs"
    )


app.autodiscover_tasks(
    lambda: [
        "integrations.inbound",
        "integrations.sources",
        "integrations.delivery",
        "audiences",
        "retention",
        "campaigns",
        *PARTNER_APPS,
    ],
    related_name="tasks",
)


@app.on_after_configure.connect
def _housekeeping(sender, **kwargs) -> None:
    """Daily: monthly partitions created ahead (audiences.partitions), then the pruning of what is
    past its retention window (retention.prune). Both are harmless when run twice. Added once the
    settings are loaded (the hour is a setting)."""
    hour = settings.RETENTION_HOUR_UTC
    sender.conf.beat_schedule.update(
        {
            "partitions": {"task": "audiences.tasks.maintain_partitions", "schedule": crontab(minute=0, hour=hour)},
            "prune": {"task": "retention.tasks.prune_daily", "schedule": crontab(minute=30, hour=hour)},
        }
    )


# /healthz reads worker liveness from a heartbeat each worker writes (config/heartbeat.py).
_heartbeat = {}


@worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> None:
    _heartbeat[sender.hostname] = start_heartbeat(sender.hostname)


@worker_shutdown.connect
def _stop_heartbeat(sender=None, **kwargs) -> None:
    stop_heartbeat(sender.hostname, _heartbeat.pop(sender.hostname, None))
