"""Live-campaign benchmark: a segment gains 100,000 people in one push; each is sent once.

    DATABASE_URL=... REDIS_URL=... python -m bench.campaigns [--size 100000] [--rate 10] [--workers 2]

Generates a scratch workspace and a segment synced to the CleverTap sandbox (its own process; the
targeted-send endpoint answers at most `--accept` calls a second, 429 above), launches a live
campaign on it, then adds `--size` people in one ledger write (through audiences.ledger), runs the
sync that delivers them to CleverTap, enrolls them and sends with `--workers` senders paced to
`--rate` targeted sends a second (1,000 people each). Prints the time from each person's ledger change
to CleverTap accepting their send (p50/p99), sends/s (calls and people), the ratio of calls/s to the
pacing limit (target ≥ 80 %), 429s, and duplicate sends counted by the sandbox (must be 0). Cleans up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
django.setup()

import requests
from django.conf import settings
from django.db import connection

from audiences.models import Segment
from bench.outbound import cleanup, make_members
from campaigns import engine, service
from campaigns.models import Campaign
from integrations.delivery.actions import start_run
from integrations.delivery.engine import execute_run, sync_run_finished
from integrations.delivery.models import Destination, SyncJob
from integrations.models import Authorization
from workspaces.models import Workspace


def start_partner(accept: int, latency: float) -> tuple[subprocess.Popen, str]:
    options = {
        "record_bodies": False,
        "history": 1000,
        "keep_data": False,
        "latency": latency,
        "campaign_rates": {"send": accept, "create": 0, "other": 0},
    }
    argv = [sys.executable, "-m", "integrations.sandbox.partners", "clevertap"]
    for key, value in options.items():
        argv += ["-o", f"{key}={json.dumps(value)}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().split(" on ")[1].split()[0]


def sync(job: SyncJob) -> float:
    started = time.perf_counter()
    run = start_run(job, trigger="bench")
    execute_run(run.pk)
    return time.perf_counter() - started


def explain_enrollment(campaign_id: int) -> None:
    """BENCH_EXPLAIN=1: the enrollment statement's plan, executed and rolled back."""
    from django.db import transaction

    from integrations.delivery.models import SyncRun

    campaign = Campaign.objects.get(pk=campaign_id)
    run = SyncRun.objects.filter(job__segment=campaign.segment).order_by("-pk").first()
    params = {
        "workspace": campaign.workspace_id,
        "campaign": campaign.pk,
        "segment": campaign.segment_id,
        "snapshot": run.snapshot_cursor,
        "run": run.pk,
        "start_after": campaign.start_after_change_id or 0,
        "reentry": False,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_nestloop = off")  # as enroll_from_runs does
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + engine._ENROLL_SQL, params)
        print("\n".join(row[0] for row in cursor.fetchall()))
        transaction.set_rollback(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=10.0, help="pacing limit: targeted sends per second")
    parser.add_argument("--accept", type=int, default=12, help="the sandbox's own accept rate (calls/s)")
    parser.add_argument("--workers", type=int, default=2, help="senders working the campaign at once")
    parser.add_argument("--latency", type=float, default=0.02, help="sandbox seconds per call")
    args = parser.parse_args()
    settings.CAMPAIGN_SENDS_PER_SECOND = args.rate
    settings.CAMPAIGN_SEND_BATCH_SIZE = 1000
    # The bench drives enrollment and sending itself, with its own workers (no broker round trip).
    sync_run_finished.disconnect(dispatch_uid="campaigns.after_sync_run")
    proc, base_url = start_partner(args.accept, args.latency)
    workspace = None
    try:
        workspace = Workspace.objects.create(name="bench campaigns", slug=f"bench-campaigns-{os.getpid()}")
        segment = Segment.objects.create(workspace=workspace, name="Cart drop off", type="manual", external_id="b1")
        auth = Authorization(
            workspace=workspace, provider="clevertap", label="bench", fields={"account_id": "TEST-ACCOUNT"}
        )
        auth.set_secrets({"passcode": "TEST-PASSCODE"})
        auth.save()
        config = Destination(kind="clevertap").connector_class.validate_config({"base_url": base_url})
        dest = Destination.objects.create(
            workspace=workspace, kind="clevertap", name="bench ct", authorization=auth, config=config
        )
        job = SyncJob.objects.create(workspace=workspace, segment=segment, destination=dest, cadence="one_time")
        sync(job)  # the segment, empty, synced once: the campaign may launch
        campaign = service.launch(
            service.create_campaign(
                workspace,
                name="Cart drop-off push",
                kind="live",
                segment=segment,
                destination=dest,
                channel="push",
                content={"title": "Still thinking?", "body": "Your cart is waiting"},
            )
        )

        t0 = time.perf_counter()
        make_members(workspace, segment, args.size)  # the push: one ledger write of `size` Added changes
        push = time.perf_counter() - t0
        sync_seconds = sync(job)
        if os.environ.get("BENCH_EXPLAIN"):
            explain_enrollment(campaign.pk)
        t1 = time.perf_counter()
        enrolled = engine.enroll_from_runs(campaign.pk)
        enroll_seconds = time.perf_counter() - t1

        errors: list[BaseException] = []

        def sender() -> None:
            try:
                engine.send_pending(campaign.pk)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        t2 = time.perf_counter()
        threads = [threading.Thread(target=sender) for _ in range(args.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        send_seconds = time.perf_counter() - t2
        if errors:
            raise errors[0]

        progress = service.progress(Campaign.objects.get(pk=campaign.pk))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.99) WITHIN GROUP (ORDER BY s)"
                " FROM (SELECT extract(epoch FROM sent_at - change_at) AS s FROM campaigns_enrollment"
                " WHERE campaign_id = %s AND status = 'sent') t",
                [campaign.pk],
            )
            p50, p99 = cursor.fetchone()
            cursor.execute(
                "SELECT count(*) FROM campaigns_sendbatch WHERE campaign_id = %s AND state = 'accepted'", [campaign.pk]
            )
            calls = cursor.fetchone()[0]
        stats = requests.get(f"{base_url}/_sandbox/stats", timeout=5).json()
        calls_per_s = calls / send_seconds
        print(
            f"\npush: {args.size:,} Added changes written in {push:.2f}s; sync to CleverTap {sync_seconds:.2f}s; "
            f"enrollment of {enrolled:,} in {enroll_seconds:.2f}s"
        )
        print(f"sending: {calls} targeted sends of ≤1,000 people in {send_seconds:.2f}s with {args.workers} workers")
        print(f"\n{'figure':<44}{'value':>14}")
        print(f"{'ledger change → send accepted, p50':<44}{p50:>13.2f}s")
        print(f"{'ledger change → send accepted, p99':<44}{p99:>13.2f}s")
        print(f"{'sends/s (calls)':<44}{calls_per_s:>14.2f}")
        print(f"{'people sent/s':<44}{progress['sent'] / send_seconds:>14,.0f}")
        print(f"{'pacing limit (calls/s)':<44}{args.rate:>14.2f}")
        print(f"{'ratio to the pacing limit (target ≥ 80 %)':<44}{calls_per_s / args.rate:>13.0%}")
        print(f"{'sandbox accept rate (calls/s)':<44}{args.accept:>14}")
        print(f"{'ratio to the sandbox accept rate':<44}{calls_per_s / args.accept:>13.0%}")
        print(f"{'429s from the sandbox':<44}{stats['by_status'].get('429', 0):>14}")
        print(f"{'people sent (of enrolled)':<44}{progress['sent']:>8,} / {progress['enrolled']:,}")
        print(f"{'duplicate sends counted by the sandbox':<44}{stats['duplicate_sends']:>14}")
    finally:
        if workspace is not None:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM campaigns_enrollment WHERE workspace_id = %s", [workspace.pk])
            Campaign.objects.filter(workspace=workspace).delete()
            cleanup(workspace)
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
