"""/healthz: database, Redis and Celery worker liveness; 503 when any is down.

Anyone (a load balancer) gets only {"status": "ok"} or {"status": "down"}. Signed-in staff and the
owners and ops of a workspace also get each check's state and timing, with fixed reasons instead of
exception text; the exception itself goes to the log.

Worker liveness is a heartbeat each worker writes into Redis every HEALTH_HEARTBEAT_SECONDS (a
thread of its main process, started when the worker is ready): a health check reads one sorted set,
it never broadcasts a ping to the workers.
"""

import logging
import time

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from config.heartbeat import WORKERS_KEY, worker_freshness
from config.scheduler import TICK_KEY
from integrations.redis_client import redis_client
from workspaces.models import CREDENTIAL_ROLES, Membership

logger = logging.getLogger(__name__)

# --- the checks ------------------------------------------------------------------------------------


class CheckFailed(Exception):
    """A probe's own verdict, with a reason fit to show (unlike an arbitrary exception's text)."""


def _check(name: str, probe) -> dict:
    started = time.monotonic()
    try:
        detail = probe()
    except CheckFailed as failed:
        return {"ok": False, "error": str(failed)}
    except Exception:  # a health probe reports every failure, whatever its type
        # Exception text can name hosts, sockets or users: it goes to the (scrubbed) log only.
        logger.warning("healthz: the %s check failed", name, exc_info=True)
        return {"ok": False, "error": "unreachable"}
    result = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    result.update(detail or {})
    return result


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis() -> None:
    redis_client().ping()


def _workers() -> dict:
    newest = redis_client().zrevrange(WORKERS_KEY, 0, -1, withscores=True)
    now = time.time()
    live = [score for _node, score in newest if now - score <= worker_freshness()]
    if not live:
        raise CheckFailed(f"no worker heartbeat in the last {worker_freshness():.0f} s")
    # A count and an age: worker node names are host names, which are nobody's business here.
    return {"live": len(live), "last_heartbeat_s": round(now - max(live), 1)}


def _scheduler() -> dict:
    """Informational (not part of up/down): seconds since the beat's last tick, None if never seen."""
    try:
        raw = redis_client().get(TICK_KEY)
    except Exception:  # noqa: BLE001 - Redis being down is reported by its own check
        return {"last_tick_s": None}
    return {"last_tick_s": round(time.time() - float(raw), 1) if raw else None}


def may_see_details(user) -> bool:
    """Staff (the admin's users) and the owners and ops of any workspace."""
    if user is None or not user.is_authenticated:
        return False
    return user.is_staff or Membership.objects.filter(user=user, role__in=CREDENTIAL_ROLES).exists()


@never_cache
def healthz(request) -> JsonResponse:
    checks = {"database": _check("database", _database), "redis": _check("redis", _redis)}
    if checks["redis"]["ok"]:
        checks["worker"] = _check("worker", _workers)
    else:  # the heartbeats live in Redis
        checks["worker"] = {"ok": False, "error": "redis is down"}
    healthy = all(check["ok"] for check in checks.values())
    body: dict = {"status": "ok" if healthy else "down"}
    if may_see_details(getattr(request, "user", None)):
        body["checks"] = {**checks, "scheduler": _scheduler()}
    return JsonResponse(body, status=200 if healthy else 503)
