"""Worker liveness for /healthz: each Celery worker's main process writes a heartbeat into Redis.

A sorted set (worker node name -> time of its last heartbeat), written every
HEALTH_HEARTBEAT_SECONDS by a thread config/celery.py starts when the worker is ready and stops
when it shuts down. /healthz (integrations.health) reads it: no broadcast ping to the workers.
"""

import logging
import threading
import time

from django.conf import settings

from integrations.redis_client import redis_client

logger = logging.getLogger(__name__)

WORKERS_KEY = "health:workers"  # sorted set: worker node name -> time of its last heartbeat


def worker_freshness() -> float:
    """A worker whose last heartbeat is older than this is counted as gone."""
    return 3 * settings.HEALTH_HEARTBEAT_SECONDS


# --- the worker's side -----------------------------------------------------------------------------


def beat_once(node: str) -> None:
    now = time.time()
    client = redis_client()
    pipe = client.pipeline()
    pipe.zadd(WORKERS_KEY, {node: now})
    pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - worker_freshness())  # forget workers long gone
    pipe.execute()


def start_heartbeat(node: str) -> threading.Event:
    """Write `node`'s heartbeat now and then every HEALTH_HEARTBEAT_SECONDS until the event is set."""
    stop = threading.Event()

    def run() -> None:
        failing = False
        while True:
            try:
                beat_once(node)
                failing = False
            except Exception:  # Redis away for a moment: /healthz says so; say it once here
                if not failing:
                    logger.warning("worker heartbeat could not be written", exc_info=True)
                failing = True
            if stop.wait(settings.HEALTH_HEARTBEAT_SECONDS):
                return

    threading.Thread(target=run, name="health-heartbeat", daemon=True).start()
    return stop


def stop_heartbeat(node: str, stop: threading.Event | None) -> None:
    """A worker that shuts down cleanly leaves the set at once instead of ageing out of it."""
    if stop is not None:
        stop.set()
    try:
        redis_client().zrem(WORKERS_KEY, node)
    except Exception:  # shutting down anyway; it ages out
        logger.warning("worker heartbeat could not be removed", exc_info=True)
