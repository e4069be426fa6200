"""/healthz: database, Redis and Celery worker liveness as JSON; 503 when any is down."""

import time

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from config.celery import app
from integrations.redis_client import redis_client


def _check(probe) -> dict:
    started = time.monotonic()
    try:
        detail = probe()
    except Exception as exc:  # noqa: BLE001 - a health probe reports every failure, whatever its type
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    if detail:
        result.update(detail)
    return result


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis():
    redis_client().ping()


def _workers():
    # A broadcast ping over the broker: answered only by live workers.
    replies = app.control.ping(timeout=1.0) or []
    if not replies:
        raise RuntimeError("no Celery worker answered a ping within 1 s")
    return {"workers": sorted(name for reply in replies for name in reply)}


@never_cache
def healthz(request):
    checks = {"database": _check(_database), "redis": _check(_redis)}
    # Without a broker there is no way to reach a worker; say so instead of waiting for a timeout.
    checks["worker"] = _check(_workers) if checks["redis"]["ok"] else {"ok": False, "error": "redis is down"}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "down", "checks": checks}, status=200 if healthy else 503)
