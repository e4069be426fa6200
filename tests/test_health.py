"""/healthz against the real database, Redis and real Celery worker processes (their heartbeat)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client, override_settings

from config.heartbeat import WORKERS_KEY, beat_once
from integrations.redis_client import redis_client

ROOT = Path(__file__).resolve().parent.parent


def _start_worker(node: str) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "CELERY_TASK_ALWAYS_EAGER": "0"}
    return subprocess.Popen(
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
            node,
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


@pytest.fixture(scope="module")
def live_worker():
    process = _start_worker(f"health-{os.getpid()}@%h")
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


def test_healthz_reports_worker_down_with_503_and_nothing_else_to_anyone(client, db):
    # Runs before the module's worker fixture starts (file order), so no test worker beats.
    redis_client().delete(WORKERS_KEY)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "down"}


def test_ops_see_which_check_is_down(client, oscar):
    redis_client().delete(WORKERS_KEY)
    client.force_login(oscar)
    body = client.get("/healthz").json()
    assert body["status"] == "down" and body["checks"]["database"]["ok"] is True
    assert body["checks"]["worker"] == {"ok": False, "error": "no worker heartbeat in the last 30 s"}


def test_a_worker_that_stopped_beating_ages_out(client, oscar, settings):
    client.force_login(oscar)
    stale = time.time() - 3 * settings.HEALTH_HEARTBEAT_SECONDS - 1  # e.g. killed with -9 half a minute ago
    redis_client().zadd(WORKERS_KEY, {"celery@gone": stale})
    assert client.get("/healthz").json()["checks"]["worker"]["ok"] is False
    beat_once("celery@fresh")
    worker = client.get("/healthz").json()["checks"]["worker"]
    assert worker["ok"] is True and worker["live"] == 1
    assert redis_client().zscore(WORKERS_KEY, "celery@gone") is None, "a long-gone worker is forgotten"
    redis_client().delete(WORKERS_KEY)  # the live-worker tests below must see their own worker


def test_healthz_up_with_database_redis_and_a_worker(client, db, live_worker):
    response = _wait_healthy(client)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # anonymous: up or down, nothing more


def test_details_for_ops_name_no_host_and_no_viewer_sees_them(client, oscar, vera, live_worker):
    assert _wait_healthy(client).status_code == 200
    client.force_login(vera)
    assert client.get("/healthz").json() == {"status": "ok"}
    client.force_login(oscar)
    response = client.get("/healthz")
    body = response.json()
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["worker"]["ok"] and body["checks"]["worker"]["live"] >= 1
    nodes = [node.decode() for node in redis_client().zrange(WORKERS_KEY, 0, -1)]
    assert any(node.startswith("health-") for node in nodes)
    text = response.content.decode()
    assert socket.gethostname() not in text and "health-" not in text


def test_healthz_sends_no_broadcast_to_the_workers(client, oscar, live_worker, monkeypatch):
    from config.celery import app

    def no_broadcast(*args, **kwargs):
        raise AssertionError("/healthz broadcast to the workers")

    monkeypatch.setattr(app.control, "ping", no_broadcast)
    monkeypatch.setattr(app.control, "broadcast", no_broadcast)
    assert _wait_healthy(client).status_code == 200


def test_healthz_reports_redis_down_without_the_exception_text(client, oscar, tmp_path):
    client.force_login(oscar)
    redis_client.cache_clear()
    try:
        with override_settings(REDIS_URL=f"unix://{tmp_path}/no-such.sock"):
            anonymous = Client().get("/healthz")
            response = client.get("/healthz")
    finally:
        redis_client.cache_clear()
    assert anonymous.status_code == 503 and anonymous.json() == {"status": "down"}
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"] == {"ok": False, "error": "unreachable"}
    assert checks["worker"] == {"ok": False, "error": "redis is down"}
    assert "no-such.sock" not in response.content.decode() and "Error" not in response.content.decode()


def test_a_worker_that_stops_cleanly_leaves_at_once(db):
    """The heartbeat is written by a real worker when it is ready, and removed when it shuts down."""
    node = f"leaving-{os.getpid()}@test"
    process = _start_worker(node)
    try:
        deadline = time.monotonic() + 60
        while redis_client().zscore(WORKERS_KEY, node) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert redis_client().zscore(WORKERS_KEY, node) is not None, "the worker wrote no heartbeat"
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert redis_client().zscore(WORKERS_KEY, node) is None


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
