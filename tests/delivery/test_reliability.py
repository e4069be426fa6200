"""What must hold when things go wrong: crashes, concurrent runs, concurrent ledger writers, health."""

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from integrations.delivery.actions import run_connection_test, start_run
from integrations.delivery.engine import execute_run
from integrations.delivery.models import Health, RunStatus, SyncRun
from integrations.delivery.planning import RunNotReady, ledger_high_water
from integrations.delivery.scheduling import mark_lost_runs
from tests.conftest import test_database_url
from tests.delivery.helpers import MANUAL, add_members, destination, job_for, make_profiles, make_segment, sync

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    return test_database_url()


def _mid_flight(run_id: int, fake) -> bool:
    delivered = SyncRun.objects.get(pk=run_id).delivered
    answered = sum(len(r["body"]["userIds"]) for r in fake.find("/lists/1/add") if r["status"] == 200)
    return delivered >= 300 and delivered == answered and fake.stats()["in_flight"] > 0


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_resumes_and_the_list_sees_every_id_exactly_once(acme, partners, settings):
    partner = partners("list_api", latency=0.4)
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1000)))
    dest = destination(
        acme, "list_api", {"base_url": partner.base_url, "batch_size": 50}, secrets={"api_key": "test-api-key"}
    )
    job = job_for(segment, dest)
    run = start_run(job)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DELIVERY_SEMAPHORE_LEASE_SECONDS": "2",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import django; django.setup(); from integrations.delivery.engine import execute_run; "
                f"execute_run({run.pk})"
            ),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        # Kill while requests are in flight at the partner (delayed, unanswered) and every answered
        # one is recorded: the moment a crash must cost nothing. (A crash between an answer and its
        # commit is at-least-once by nature; list partners' add/remove are idempotent for that.)
        while not _mid_flight(run.pk, partner.fake):
            assert worker.poll() is None and time.monotonic() < deadline, "the worker finished or stalled too early"
            time.sleep(0.005)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    killed = SyncRun.objects.get(pk=run.pk)
    assert killed.status == RunStatus.RUNNING and 300 <= killed.delivered < 1000
    # Beat's lost-run check finds the run's heartbeat stale and resumes it (Celery is eager here).
    settings.RUN_LOST_SECONDS = 0
    time.sleep(0.5)  # let the partner notice the killed worker's abandoned requests
    assert mark_lost_runs(timezone.now() + dt.timedelta(seconds=1)) == [run.pk]
    done = SyncRun.objects.get(pk=run.pk)
    assert (done.status, done.delivered, done.failed) == (RunStatus.SUCCEEDED, 1000, 0)
    # At most what was in flight may have been re-sent (list_api: 4 requests of 50 rows), and the run says so.
    assert done.attempt == 2 and 0 < done.resend_bound <= done.in_flight_limit == 4 * 50
    assert (
        "The worker running this stopped at" in done.lost_note and f"up to {done.resend_bound:,} rows" in done.lost_note
    )
    applied = Counter(
        uid for r in partner.fake.find("/lists/1/add") if r["status"] == 200 for uid in r["body"]["userIds"]
    )
    assert set(applied) == {f"u{i}" for i in range(1000)}
    assert max(applied.values()) == 1, [uid for uid, n in applied.items() if n > 1]
    assert partner.fake.members("1") == set(applied)


@pytest.mark.django_db(transaction=True)
def test_two_runs_on_one_destination_stay_under_its_concurrency_cap(acme, partners):
    # Both runs create their list (a setup call) while the other may be sending: those count too.
    partner = partners("list_api", latency=0.05, concurrency_cap=4)  # the fake 429s above 4 in flight
    dest = destination(
        acme, "list_api", {"base_url": partner.base_url, "batch_size": 20}, secrets={"api_key": "test-api-key"}
    )
    jobs = []
    for n in range(2):
        segment = make_segment(acme, name=f"Segment {n}", external_id=str(n))
        add_members(segment, make_profiles(acme, range(n * 1000, n * 1000 + 300)))
        jobs.append(job_for(segment, dest))
    runs = [start_run(job) for job in jobs]

    def execute(run_id):
        try:
            execute_run(run_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=execute, args=(run.pk,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [SyncRun.objects.get(pk=r.pk).status for r in runs] == [RunStatus.SUCCEEDED] * 2
    stats = partner.fake.stats()
    assert stats["max_in_flight"] <= 4 and stats["concurrency_rejections"] == 0, stats
    assert stats["max_in_flight"] >= 2, stats  # the runs did work in parallel


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_waits_for_ledger_writers_still_in_flight(acme):
    segment = make_segment(acme)
    (profile,) = make_profiles(acme, range(1))
    with psycopg.connect(_database_url()) as other:
        other.execute(  # a writer that took a ledger id but has not committed yet
            "INSERT INTO audiences_membershipchange (workspace_id, segment_id, profile_id, action, source, cause_type,"
            " occurred_at) VALUES (%s, %s, %s, 'added', 'manual', 'test', now()) RETURNING id",
            [acme.pk, segment.pk, profile],
        )
        with pytest.raises(RunNotReady):
            ledger_high_water(max_wait=0.2)
        other.commit()
    add_members(segment, [])  # no-op; the writer is done
    assert ledger_high_water(max_wait=0.2) >= 1
    assert MANUAL.source == "manual"


def test_health_changes_email_owners_and_ops_including_recovery(
    acme, alice, bob, oscar, partners, django_capture_on_commit_callbacks
):
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(3)))
    dest = destination(acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "wrong"})
    with django_capture_on_commit_callbacks(execute=True):
        run = sync(job_for(segment, dest))
    dest.refresh_from_db()
    assert run.status == RunStatus.FAILED and dest.health == Health.DISABLED
    (notice,) = mail.outbox
    assert sorted(notice.to) == ["alice@example.com", "oscar@example.com"]  # not bob the marketer
    assert "disabled" in notice.subject and "invalid api_key" in notice.body
    skipped = start_run(run.job)
    assert skipped.status == RunStatus.SKIPPED and "disabled" in skipped.error
    dest.authorization.set_secrets({"api_key": "test-api-key"})
    dest.authorization.save()
    with django_capture_on_commit_callbacks(execute=True):
        ok, message = run_connection_test(dest)
    assert ok, message
    dest.refresh_from_db()
    assert dest.health == Health.HEALTHY and dest.last_error == ""
    assert "recovered" in mail.outbox[-1].subject and len(mail.outbox) == 2
