"""Invariant 2: a worker killed in the middle of applying a batch leaves work that, redone, ends in
exactly the state of an uninterrupted run — and pushes accepted with no worker are applied when one starts."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audiences.models import MembershipChange, Segment
from integrations.inbound.models import BatchStatus, InboundBatch
from integrations.models import ApiKey
from tests.conftest import test_database_url
from tests.inbound.conftest import drain, fixture, push

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    env["PYTHONPATH"] = str(ROOT)
    return env


def push_sequence(raw_key: str) -> tuple[int, list[int]]:
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), raw_key).json()["listId"]
    batches = [
        push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [f"u{n}" for n in range(300)]}, raw_key),
        push(f"/api/amplitude/lists/{list_id}/remove", {"userIds": [f"u{n}" for n in range(0, 300, 3)]}, raw_key),
        push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [f"u{n}" for n in range(250, 400)]}, raw_key),
    ]
    return list_id, [b.json()["batchId"] for b in batches]


def end_state(list_id: int) -> tuple:
    segment = Segment.objects.get(pk=list_id)
    members = sorted(segment.members.values_list("profile__identities__value", flat=True))
    ledger = sorted(
        MembershipChange.objects.filter(segment=segment).values_list("profile__identities__value", "action")
    )
    return segment.size, members, ledger


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_apply_ends_like_an_uninterrupted_run(acme, globex, tmp_path):
    from config.celery import app

    app.conf.task_always_eager = False  # nothing applies at receipt: only our processes apply
    try:
        _, acme_key = ApiKey.issue(acme, scope="inbound", name="a")
        _, globex_key = ApiKey.issue(globex, scope="inbound", name="g")
        acme_list, acme_batches = push_sequence(acme_key)
        globex_list, _ = push_sequence(globex_key)
    finally:
        app.conf.task_always_eager = True

    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("killable_apply.py")),
            str(acme.pk),
            str(acme_batches[1]),
            str(ready),
        ],
        cwd=ROOT,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "the apply process died before reaching the kill point"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()

    statuses = dict(InboundBatch.objects.filter(pk__in=acme_batches).values_list("pk", "status"))
    assert [statuses[pk] for pk in acme_batches] == [BatchStatus.APPLIED, BatchStatus.ACCEPTED, BatchStatus.ACCEPTED]
    assert not MembershipChange.objects.filter(cause_id=acme_batches[1]).exists()  # the half-apply rolled back

    drain()  # the restarted worker (and, for globex, an uninterrupted one)
    acme_state, globex_state = end_state(acme_list), end_state(globex_list)
    assert acme_state == globex_state
    # 300 in, every third removed (200 left), then 250..399: 100 new and 16 removed ones back.
    assert acme_state[0] == 200 + 100 + 16
    assert InboundBatch.objects.exclude(status=BatchStatus.APPLIED).count() == 0


@pytest.mark.django_db(transaction=True)
def test_pushes_accepted_with_no_worker_are_applied_when_a_worker_starts(acme, acme_inbound_key):
    from config.celery import app

    queue_client = app.connection_for_write()
    app.conf.task_always_eager = False
    try:
        with queue_client:
            queue_client.default_channel.queue_purge("inbound")
        list_id = push(
            "/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key
        ).json()["listId"]
        response = push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["a", "b", "c"]}, acme_inbound_key)
        assert response.status_code == 200
    finally:
        app.conf.task_always_eager = True
    assert InboundBatch.objects.get().status == BatchStatus.ACCEPTED  # accepted while no worker runs

    worker = subprocess.Popen(
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
            "inbound",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env={**child_env(), "CELERY_TASK_ALWAYS_EAGER": "0"},
    )
    try:
        deadline = time.monotonic() + 60
        while InboundBatch.objects.get().status != BatchStatus.APPLIED:
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker never applied the batch"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(30)
    assert Segment.objects.get(pk=list_id).size == 3
