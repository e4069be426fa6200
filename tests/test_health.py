"""/healthz against the real database, Redis and a real Celery worker process."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import override_settings

from integrations.redis_client import redis_client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def live_worker():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "CELERY_TASK_ALWAYS_EAGER": "0"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "-Q",
            "default",
            "-n",
            f"health-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    process.terminate()
    process.wait(timeout=20)


def _wait_healthy(client, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        response = client.get("/healthz")
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def test_healthz_reports_worker_down_with_503(client, db):
    # Runs before the module's worker fixture starts (file order), so no test worker answers.
    response = client.get("/healthz")
    if response.status_code == 200:  # a developer's own worker may be running on the same broker
        pytest.skip("a Celery worker outside the test suite answers on this broker")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["checks"]["worker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_healthz_up_with_database_redis_and_a_worker(client, db, live_worker):
    response = _wait_healthy(client)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert any(name.startswith("health-") for name in body["checks"]["worker"]["workers"])


def test_healthz_reports_redis_down_with_503(client, db, tmp_path):
    redis_client.cache_clear()
    try:
        with override_settings(REDIS_URL=f"unix://{tmp_path}/no-such.sock"):
            response = client.get("/healthz")
    finally:
        redis_client.cache_clear()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and "error" in checks["redis"]
    assert checks["worker"] == {"ok": False, "error": "redis is down"}


def test_redelivery_cap_drops_a_poison_task_and_runs_a_fresh_one(live_worker, settings):
    """A task delivered more than CELERY_MAX_DELIVERIES times is dropped by the worker, not run."""
    from config.celery import app
    from config.scheduler import TICK_KEY, tick

    client = redis_client()
    client.delete(TICK_KEY)
    poisoned = "poison-" + str(time.time())
    client.set(f"celery:deliveries:{poisoned}", settings.CELERY_MAX_DELIVERIES)  # already delivered that often
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        app.conf.task_always_eager = False
        try:
            tick.apply_async(task_id=poisoned)
            time.sleep(3)
            assert client.get(TICK_KEY) is None, "the capped task ran"
            tick.apply_async()
            deadline = time.monotonic() + 30
            while client.get(TICK_KEY) is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            app.conf.task_always_eager = True
    assert client.get(TICK_KEY) is not None, "a fresh task was not run by the worker"
