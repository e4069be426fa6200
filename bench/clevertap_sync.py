"""CleverTap first-sync benchmark: every member of a big segment uploaded within the 15-concurrent cap.

    DATABASE_URL=... REDIS_URL=... python -m bench.clevertap_sync [--size 1000000] [--latency 0.02]

Generates a scratch workspace and segment (through audiences.ledger), starts the CleverTap sandbox
in its own process (keep_data=false; `--latency` seconds per call so concurrency matters, 15
in-flight uploads per account enforced with 429), runs one full sync (each member = a profile
record + a Partner Sync event; 1,000 records per call) and prints users/s, the max concurrency the
sandbox observed, 429s, and a baseline (SELECT of the members' ids). Cleans up after itself.
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

from audiences.models import Segment
from bench.outbound import cleanup, make_members, select_member_ids
from integrations.delivery.actions import start_run
from integrations.delivery.engine import execute_run
from integrations.delivery.models import Destination, SyncJob
from integrations.models import Authorization
from workspaces.models import Workspace


def start_partner(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integrations.sandbox.partners",
            "clevertap",
            "-o",
            "record_bodies=false",
            "-o",
            "history=1000",
            "-o",
            "keep_data=false",
            "-o",
            f"latency={latency}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().split(" on ")[1].split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--latency", type=float, default=0.02, help="sandbox seconds per call")
    args = parser.parse_args()
    proc, base_url = start_partner(args.latency)
    workspace = None
    try:
        workspace = Workspace.objects.create(name="bench clevertap", slug=f"bench-clevertap-{os.getpid()}")
        segment = Segment.objects.create(workspace=workspace, name="Bench", type="manual", external_id="bench")
        t0 = time.perf_counter()
        make_members(workspace, segment, args.size)
        print(f"generated {args.size:,} members in {time.perf_counter() - t0:.1f}s", flush=True)
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

        baseline_rows, baseline = select_member_ids(segment)

        started = time.perf_counter()
        run = start_run(job, trigger="bench")
        execute_run(run.pk)
        run.refresh_from_db()
        seconds = time.perf_counter() - started
        stats = requests.get(f"{base_url}/_sandbox/stats", timeout=5).json()
        print(f"\n{'case':<30}{'users':>11}{'seconds':>9}{'users/s':>11}{'x baseline':>11}  status")
        print(
            f"{'baseline: SELECT member ids':<30}{baseline_rows:>11,}{baseline:>9.2f}"
            f"{baseline_rows / baseline:>11,.0f}{1:>11.1f}"
        )
        print(
            f"{'CleverTap first sync':<30}{run.delivered:>11,}{seconds:>9.2f}{run.delivered / seconds:>11,.0f}"
            f"{seconds / baseline:>11.1f}  {run.status}, {run.failed} failed, {run.rejected} rejected"
        )
        print(
            f"\nsandbox: {stats['total']} calls, {stats['records_stored']:,} records stored, "
            f"max in flight {stats['max_in_flight']} (cap 15), 429s {stats['by_status'].get('429', 0)}, "
            f"latency {args.latency * 1000:.0f} ms/call"
        )
    finally:
        if workspace is not None:
            cleanup(workspace)
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
