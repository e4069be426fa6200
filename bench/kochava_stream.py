"""Kochava event-stream benchmark: selected events streamed one request each to the Kochava sandbox.

    DATABASE_URL=... REDIS_URL=... python -m bench.kochava_stream [--size 20000] [--concurrency 8] [--latency 0]

Generates a scratch workspace with `--size` events (90% of a selected type), starts the Kochava
sandbox in its own process, runs one stream pass (events, then the Send Users queueing) and prints
events/s against a baseline (reading the same events from PostgreSQL). Cleans up after itself.

Two in-flight figures: the client's (requests the stream had sent and not yet had answered) and the
sandbox's. With --latency 0 the sandbox answers in microseconds while holding the GIL, so it almost
never sees two requests at once even when the client has 8 out; `--latency 0.02` (a real round
trip) makes its figure meaningful.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from typing import Self

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
django.setup()

import requests
from django.db import connection

from integrations.connectors.kochava.connector import KochavaConnector
from integrations.connectors.kochava.stream import _read_events, stream_events
from integrations.delivery.models import Destination
from workspaces.models import Workspace

MAPPING = {
    "kochava_device_id": "device_id",
    "origination_ip": "ip_address",
    "adid": "data.adid",
    "device_ua": "user_properties.ua",
}


def start_partner(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integrations.sandbox.partners",
            "kochava",
            "-o",
            "record_bodies=false",
            "-o",
            "history=1000",
            "-o",
            f"latency={latency}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().split(" on ")[1].split()[0]


class InFlight:
    """Counts the stream's requests between send and answer (wraps KochavaConnector.send_record)."""

    def __init__(self) -> None:
        self.now = self.max = 0
        self.lock = threading.Lock()
        self.original = KochavaConnector.send_record

    def __enter__(self) -> Self:
        counter, original = self, self.original

        def send_record(connector, body, summary):
            with counter.lock:
                counter.now += 1
                counter.max = max(counter.max, counter.now)
            try:
                return original(connector, body, summary)
            finally:
                with counter.lock:
                    counter.now -= 1

        KochavaConnector.send_record = send_record
        return self

    def __exit__(self, *exc: object) -> None:
        KochavaConnector.send_record = self.original


def make_events(workspace: Workspace, size: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audiences_event (workspace_id, source, uuid, event_type, event_time, user_id, device_id,"
            " ip_address, event_properties, user_properties, group_properties, data, loaded_at)"
            " SELECT %s, 'bench', 'bench-' || g, CASE WHEN g %% 10 = 0 THEN 'Login' ELSE 'Purchase' END, now(),"
            " 'u' || g, 'kdev-' || g, '104.219.46.66', jsonb_build_object('price', g %% 100),"
            " '{\"ua\": \"Mozilla/5.0\"}', '{}', jsonb_build_object('adid', 'adid-' || g), now()"
            " FROM generate_series(1, %s) g",
            [workspace.pk, size],
        )


def cleanup(workspace: Workspace) -> None:
    with connection.cursor() as cursor:
        for sql in (
            (
                "DELETE FROM campaigns_kochavaeventoutcome WHERE stream_id IN"
                " (SELECT id FROM campaigns_kochavastream WHERE workspace_id = %s)"
            ),
            "DELETE FROM campaigns_kochavastream WHERE workspace_id = %s",
            "DELETE FROM campaigns_kochavauserlink WHERE workspace_id = %s",
            (
                "DELETE FROM delivery_partnercall WHERE destination_id IN"
                " (SELECT id FROM delivery_destination WHERE workspace_id = %s)"
            ),
            "DELETE FROM delivery_destination WHERE workspace_id = %s",
            "DELETE FROM audiences_event WHERE workspace_id = %s",
        ):
            cursor.execute(sql, [workspace.pk])
    workspace.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the sandbox adds to every call")
    args = parser.parse_args()
    proc, base_url = start_partner(args.latency)
    workspace = None
    try:
        workspace = Workspace.objects.create(name="bench kochava", slug=f"bench-kochava-{os.getpid()}")
        make_events(workspace, args.size)
        config = Destination(kind="kochava").connector_class.validate_config(
            {
                "base_url": base_url,
                "app_guid": "koapp-bench",
                "mapping": MAPPING,
                "event_types": ["Purchase"],
                "concurrency": args.concurrency,
            }
        )
        dest = Destination.objects.create(workspace=workspace, kind="kochava", name="bench kochava", config=config)
        started = time.perf_counter()
        read, after = 0, 0
        while events := _read_events(dest, after, ["Purchase"], 1000):
            read, after = read + len(events), events[-1]["id"]
        baseline = time.perf_counter() - started
        started = time.perf_counter()
        with InFlight() as in_flight:
            result = stream_events(dest)
        seconds = time.perf_counter() - started
        stats = requests.get(f"{base_url}/_sandbox/stats", timeout=5).json()
        print(f"\n{'case':<32}{'events':>9}{'seconds':>9}{'events/s':>10}{'x baseline':>11}")
        print(f"{'baseline: read selected events':<32}{read:>9,}{baseline:>9.2f}{read / baseline:>10,.0f}{1:>11.1f}")
        print(
            f"{'stream to Kochava (1/request)':<32}{result.sent:>9,}{seconds:>9.2f}{result.sent / seconds:>10,.0f}"
            f"{seconds / baseline:>11.1f}"
        )
        print(
            f"\nmax in flight: {in_flight.max} at the client, {stats['max_in_flight']} seen by the sandbox "
            f"(concurrency {args.concurrency}, sandbox latency {args.latency * 1000:g} ms)"
        )
        print(
            f"sandbox: {stats['total']} calls, {stats['events']:,} events stored, by status {stats['by_status']}; "
            f"skipped {result.skipped}, rejected {result.rejected}, stopped {result.stopped!r}"
        )
    finally:
        if workspace is not None:
            cleanup(workspace)
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
