"""Real Celery worker processes for tests that kill them: `kill -9` of a worker's whole process group
(its main process and its pool child), as an OOM killer or a lost host would end it.

Each worker is `celery -A config worker` with one prefork child, prefetch 1 (the production
settings), started in a session of its own so one killpg takes every process of it. Tasks reach it
through the test's Redis broker (`send`); the test process itself stays eager for everything else,
and non-eager while `broker_tasks` is in use, so what the code queues (a resumed sync) goes to the
workers too. Heartbeats are short (RUN_HEARTBEAT_SECONDS=1, RUN_LOST_SECONDS=2) to keep tests fast.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from config.celery import QUEUES, app
from config.heartbeat import WORKERS_KEY
from integrations.redis_client import redis_client

ROOT = Path(__file__).resolve().parents[1]
WORKER_QUEUES = "imports,deliveries,default"
FAST = {
    "RUN_HEARTBEAT_SECONDS": "1",
    "RUN_LOST_SECONDS": "2",
    "SOURCES_POLL_INTERVAL": "0",
    "SOURCES_RETRY_BACKOFF": "0",
    "DELIVERY_BACKOFF_BASE_MS": "5",
    "DELIVERY_BACKOFF_CAP_MS": "40",
    "DELIVERY_SEMAPHORE_LEASE_SECONDS": "2",
    "HEALTH_HEARTBEAT_SECONDS": "1",
}


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90.0, every: float = 0.05):
    """Poll until `condition()` is truthy (and return it); fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(every)


class Worker:
    def __init__(self, name: str, log_dir: Path, *, queues: str = WORKER_QUEUES, **env: str) -> None:
        from tests.conftest import test_database_url  # here: tests.conftest imports this module

        self.node = f"{name}@{socket.gethostname()}"
        self.log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()/kill()
        environment = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "PYTHONPATH": str(ROOT),
            **FAST,
            **env,
        }
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-n", self.node]
        command += ["-c", "1", "--without-gossip", "--without-mingle", "-l", "WARNING"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready(self) -> Worker:
        """Wait until the worker is consuming (it writes its health heartbeat when ready)."""
        wait_for(lambda: self.alive() and redis_client().zscore(WORKERS_KEY, self.node), f"worker {self.node}")
        return self

    def alive(self) -> bool:
        assert self.process.poll() is None, f"worker {self.node} exited ({self.process.returncode}): see its log"
        return True

    def kill(self) -> None:
        """kill -9 of the worker's whole process group: nothing of it runs another instruction."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        redis_client().zrem(WORKERS_KEY, self.node)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def send(task: str, *args, queue: str) -> None:
    """Queue a task on the broker (never eager), as the console or beat would."""
    app.send_task(task, args=list(args), queue=queue)


@pytest.fixture
def broker_tasks():
    """Tasks go through Redis (not eager) for the test; queues left by other tests are emptied."""
    with app.connection_for_write() as conn:
        for queue in QUEUES:
            conn.default_channel.client.delete(queue)
        conn.default_channel.client.delete("unacked", "unacked_index")
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield
    finally:
        app.conf.task_always_eager = eager


@pytest.fixture
def workers(tmp_path, broker_tasks):
    """Start workers with `workers("name")`; every one still running is stopped at teardown."""
    started: list[Worker] = []

    def start(name: str, **env: str) -> Worker:
        worker = Worker(name, tmp_path, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if not worker.log.closed:
            worker.kill()  # what it did is the test's business, and a warm shutdown takes seconds
