"""Outbound sync benchmark: a first (full) sync and an incremental sync to the sandbox list partner.

    DATABASE_URL=... REDIS_URL=... python -m bench.outbound [--size 1000000] [--changes 10000]

Generates its own workspace, profiles, identities and segment (through audiences.ledger), starts
the list partner sandbox in a separate process (so it does not share our GIL) with
record_bodies=False, runs:
  1. baseline: SELECT of the members' user ids (the least any sync must do);
  2. first sync of every member;
  3. incremental sync of `--changes` ledger changes (half removes, half new members);
  4. the first sync again to a second list with 10% of calls answered 429 (Retry-After: 1);
and prints users/s and the ratio to the baseline. Cleans up after itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
django.setup()

import requests
from django.db import connection

from audiences.ledger import Cause, replace_members
from audiences.models import Segment
from integrations.connectors.list_api import ListApiConnector
from integrations.delivery.actions import start_run
from integrations.delivery.engine import execute_run
from integrations.delivery.models import Destination, SyncJob, SyncRun
from integrations.delivery.planning import plan_run
from integrations.models import Authorization
from workspaces.models import Workspace

CAUSE = Cause("manual", "bench")


def start_partner() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integrations.sandbox.partners",
            "list_api",
            "-o",
            "record_bodies=false",
            "-o",
            "history=1000",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    return proc, line.split(" on ")[1].split()[0]


def make_members(workspace: Workspace, segment: Segment, size: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_profiles AS WITH p AS ("
            " INSERT INTO audiences_profile (workspace_id, properties, event_counts, created_at, updated_at)"
            " SELECT %s, '{}', '{}', now(), now() FROM generate_series(1, %s) RETURNING id) SELECT id AS profile_id FROM p",
            [workspace.pk, size],
        )
        cursor.execute(
            "INSERT INTO audiences_identity (workspace_id, profile_id, kind, value, source, created_at)"
            " SELECT %s, profile_id, 'user_id', 'bench-user-' || profile_id, 'bench', now() FROM bench_profiles",
            [workspace.pk],
        )
    replace_members(segment, "bench_profiles", cause=CAUSE)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_profiles")


def select_member_ids(segment: Segment) -> tuple[int, float]:
    """The baseline: (rows, seconds) of reading the members' user ids, the least any sync must do."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.value FROM audiences_segmentmember m JOIN audiences_identity i"
            " ON i.profile_id = m.profile_id AND i.kind = 'user_id' WHERE m.segment_id = %s",
            [segment.pk],
        )
        rows = len(cursor.fetchall())
    return rows, time.perf_counter() - started


def incremental_changes(workspace: Workspace, segment: Segment, changes: int) -> None:
    half = changes // 2
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_next AS SELECT profile_id FROM audiences_segmentmember WHERE segment_id = %s"
            " ORDER BY profile_id OFFSET %s",
            [segment.pk, half],
        )
        cursor.execute(
            "WITH p AS (INSERT INTO audiences_profile (workspace_id, properties, event_counts, created_at, updated_at)"
            " SELECT %s, '{}', '{}', now(), now() FROM generate_series(1, %s) RETURNING id),"
            " i AS (INSERT INTO audiences_identity (workspace_id, profile_id, kind, value, source, created_at)"
            " SELECT %s, id, 'user_id', 'bench-user-' || id, 'bench', now() FROM p RETURNING profile_id)"
            " INSERT INTO bench_next SELECT profile_id FROM i",
            [workspace.pk, changes - half, workspace.pk],
        )
    replace_members(segment, "bench_next", cause=CAUSE)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_next")


def timed_sync(job: SyncJob) -> tuple[SyncRun, float]:
    started = time.perf_counter()
    run = start_run(job, trigger="bench")
    plan_run(run, ListApiConnector)  # the same call execute_run makes first; timed apart for the summary
    planned = time.perf_counter()
    execute_run(run.pk)
    run.refresh_from_db()
    done = time.perf_counter()
    print(f"  run {run.pk}: plan {planned - started:.2f}s, send+record {done - planned:.2f}s", flush=True)
    return run, done - started


def cleanup(workspace: Workspace) -> None:
    with connection.cursor() as cursor:
        jobs = list(SyncJob.objects.filter(workspace=workspace).values_list("pk", flat=True))
        cursor.execute("DELETE FROM delivery_deliveryrow WHERE job_id = ANY(%s)", [jobs])
        cursor.execute(
            "DELETE FROM delivery_partnercall WHERE destination_id IN "
            "(SELECT id FROM delivery_destination WHERE workspace_id = %s)",
            [workspace.pk],
        )
        cursor.execute("DELETE FROM delivery_syncrun WHERE workspace_id = %s", [workspace.pk])
        cursor.execute("DELETE FROM delivery_syncjob WHERE workspace_id = %s", [workspace.pk])
        cursor.execute("DELETE FROM delivery_destination WHERE workspace_id = %s", [workspace.pk])
        cursor.execute("DELETE FROM audiences_membershipchange WHERE workspace_id = %s", [workspace.pk])
        cursor.execute(
            "DELETE FROM audiences_segmentmember WHERE segment_id IN "
            "(SELECT id FROM audiences_segment WHERE workspace_id = %s)",
            [workspace.pk],
        )
        cursor.execute("DELETE FROM audiences_identity WHERE workspace_id = %s", [workspace.pk])
        cursor.execute("DELETE FROM audiences_profile WHERE workspace_id = %s", [workspace.pk])
    Authorization.objects.filter(workspace=workspace).delete()
    Segment.objects.filter(workspace=workspace).delete()
    workspace.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=10_000)
    args = parser.parse_args()
    proc, base_url = start_partner()
    workspace = Workspace.objects.create(name="bench outbound", slug=f"bench-outbound-{os.getpid()}")
    try:
        segment = Segment.objects.create(workspace=workspace, name="Bench", type="manual", external_id="bench")
        t0 = time.perf_counter()
        make_members(workspace, segment, args.size)
        print(f"generated {args.size:,} members in {time.perf_counter() - t0:.1f}s", flush=True)
        auth = Authorization(workspace=workspace, provider="list_api", label="bench")
        auth.set_secrets({"api_key": "test-api-key"})
        auth.save()

        def job(name: str) -> SyncJob:
            dest = Destination.objects.create(
                workspace=workspace,
                kind="list_api",
                name=name,
                authorization=auth,
                config=Destination(kind="list_api").connector_class.validate_config({"base_url": base_url}),
            )
            # Hourly (never scheduled here: no next_run_at), so it can sync again: a one-time sync runs once.
            return SyncJob.objects.create(
                workspace=workspace, segment=segment, destination=dest, cadence="hourly", device_id_kind=""
            )

        baseline_rows, baseline = select_member_ids(segment)
        results = [("baseline: SELECT member ids", baseline_rows, baseline, None)]
        first_job = job("bench list")
        run, seconds = timed_sync(first_job)
        results.append(("first sync (full)", run.delivered, seconds, run))
        incremental_changes(workspace, segment, args.changes)
        run, seconds = timed_sync(first_job)
        results.append((f"incremental ({args.changes:,} changes)", run.delivered, seconds, run))
        requests.post(
            f"{base_url}/_sandbox/faults",
            json={"seed": 7, "rate": 0.1, "rate_headers": {"Retry-After": "1"}},
            timeout=5,
        )
        run, seconds = timed_sync(job("bench list 429"))
        results.append(("first sync, 10% answered 429", run.delivered, seconds, run))
        stats = requests.get(f"{base_url}/_sandbox/stats", timeout=5).json()
        print(f"\n{'case':<34}{'rows':>11}{'seconds':>9}{'users/s':>11}{'x baseline':>11}  status")
        for name, rows, secs, run in results:
            rate = rows / secs if secs else 0
            ratio = secs / baseline if baseline else 0
            status = f"{run.status}, {run.failed} failed, retried {run.retried}" if run else ""
            print(f"{name:<34}{rows:>11,}{secs:>9.2f}{rate:>11,.0f}{ratio:>11.1f}  {status}")
        print(
            f"\npartner: {stats['total']} calls, max in flight {stats['max_in_flight']}, by status {stats['by_status']}"
        )
    finally:
        try:
            cleanup(workspace)
        finally:
            proc.terminate()  # even when cleanup fails: never leave a sandbox process behind
            proc.wait()


if __name__ == "__main__":
    main()
