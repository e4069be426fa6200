"""Inbound benchmark: Amplitude's list-based cohort sync against a real gunicorn server.

    python -m bench.inbound [--size 1000000] [--lists 1] [--appliers 2]

Needs only DATABASE_URL and REDIS_URL. It starts gunicorn on a free port, creates a throw-away
workspace and inbound key, and 4 concurrent senders push `--size` ids in 10,000-id add batches
(Amplitude's batch size and parallelism), then 100,000 removes (at most half the ids). It reports
the acknowledgement latency (client-side, over HTTP) p50/p99, then applies the backlog with
`--appliers` applier processes (the same apply_pending the Celery task runs; every applier takes
every scope, as Celery workers do) and reports applied ledger changes per second, timed from the
moment every applier is up (Django set up), as long-running workers are. Baseline, same run: a raw COPY of the same ids into a plain
table. Everything it created is deleted at the end. Targets: p99 ≤ 250 ms; ≥ 50,000 changes/s.
"""

import argparse
import json
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

# Third-party and project modules are imported inside functions, on purpose: the environment is set
# first (_environment), Django models only after django.setup(), and the spawned appliers import
# only what they use.
ROOT = Path(__file__).resolve().parent.parent
BATCH = 10_000
SENDERS = 4


def _environment() -> None:
    """Production-like settings (DEBUG off) unless the caller set them."""
    from cryptography.fernet import Fernet

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "0")
    os.environ.setdefault("INBOUND_BACKLOG_LIMIT", "100000")
    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} is required")


def _setup_django() -> None:
    _environment()
    import django

    django.setup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port: int, workers: int) -> subprocess.Popen:
    import requests

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--timeout",
            "120",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # Any HTTP answer means a worker is up (an unauthenticated push is a quick 401).
            requests.post(f"http://127.0.0.1:{port}/api/amplitude/lists", timeout=2)
            return server
        except requests.RequestException:
            time.sleep(0.2)
    server.kill()
    sys.exit("gunicorn did not start")


def _send(base: str, key: str, jobs: list[tuple[str, bytes]], latencies: list[float], errors: list[str]) -> None:
    import requests

    session = requests.Session()
    session.auth = (key, "")
    headers = {"Content-Type": "application/json"}
    for path, body in jobs:
        started = time.perf_counter()
        response = session.post(base + path, data=body, headers=headers, timeout=60)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            errors.append(f"{response.status_code} {response.text[:200]}")


def _push_phase(base: str, key: str, jobs: list[tuple[str, bytes]]) -> tuple[list[float], float, list[str]]:
    """4 senders share the jobs round-robin, like Amplitude's 4 parallel requests."""
    latencies: list[float] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=_send, args=(base, key, jobs[n::SENDERS], latencies, errors)) for n in range(SENDERS)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, errors


_started_workers = None


def _start_worker(barrier) -> None:
    """Pool initializer: a worker that is already running (Django set up, imports done), as a Celery
    worker is when pushes arrive; the clock starts once every applier is ready."""
    global _started_workers
    _setup_django()
    _started_workers = barrier


def _ready(_n: int) -> None:
    _started_workers.wait()  # one task per worker: neither returns before both are up


def _apply_worker(scopes: list[tuple[int, int | None]]) -> int:
    from integrations.inbound.apply import apply_pending

    return sum(apply_pending(workspace_id, segment_id) for workspace_id, segment_id in scopes)


def _copy_baseline(ids: list[str]) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_copy_ids (value text)")
        started = time.perf_counter()
        with cursor.copy("COPY bench_copy_ids (value) FROM STDIN") as copy:
            for value in ids:
                copy.write_row((value,))
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_copy_ids")
    return elapsed


def _cleanup(workspace_id: int, started_at) -> None:
    """Raw deletes: an ORM cascade over a million profiles would take longer than the benchmark."""
    from django.db import connection

    statements = [
        "DELETE FROM inbound_inboundrequest WHERE workspace_id = %s",
        "DELETE FROM inbound_inboundbatch WHERE workspace_id = %s",
        "DELETE FROM audiences_membershipchange WHERE workspace_id = %s",
        "DELETE FROM audiences_segmentmember WHERE segment_id IN (SELECT id FROM audiences_segment WHERE workspace_id = %s)",
        "DELETE FROM audiences_identity WHERE workspace_id = %s",
        "DELETE FROM audiences_profilemerge WHERE workspace_id = %s",
        "DELETE FROM audiences_profile WHERE workspace_id = %s",
        "DELETE FROM audiences_segment WHERE workspace_id = %s",
        "DELETE FROM integrations_apikey WHERE workspace_id = %s",
        "DELETE FROM workspaces_workspace WHERE id = %s",
    ]
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql, [workspace_id])
        # The readiness probes were unauthenticated requests: logged without a workspace.
        cursor.execute(
            "DELETE FROM inbound_inboundrequest WHERE workspace_id IS NULL AND key_prefix = '' AND received_at >= %s",
            [started_at],
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="ids added (default 1,000,000)")
    parser.add_argument("--lists", type=int, default=1, help="cohorts the ids are spread over (default 1)")
    parser.add_argument("--appliers", type=int, default=2, help="applier processes (default 2)")
    parser.add_argument("--server-workers", type=int, default=4, help="gunicorn workers (default 4)")
    args = parser.parse_args()
    _setup_django()
    from django.db import connection
    from django.utils import timezone

    from integrations.inbound.apply import pending_scopes
    from integrations.models import ApiKey
    from workspaces.models import Workspace

    bench_started_at = timezone.now()
    removes = min(100_000, args.size // 2)
    ids = [f"bench-user-{n:09d}" for n in range(args.size)]
    slug = f"bench-inbound-{secrets.token_hex(4)}"
    workspace = Workspace.objects.create(name="Inbound benchmark", slug=slug)
    _, key = ApiKey.issue(workspace, scope="inbound", name="bench")
    connection.close()
    port = _free_port()
    server = _start_server(port, args.server_workers)
    base = f"http://127.0.0.1:{port}"
    try:
        import requests

        list_ids = [
            requests.post(
                f"{base}/api/amplitude/lists",
                json={"name": f"[Amplitude] Bench {n}: bench{n}"},
                auth=(key, ""),
                timeout=30,
            ).json()["listId"]
            for n in range(args.lists)
        ]
        add_jobs, remove_jobs = [], []
        for number, start in enumerate(range(0, args.size, BATCH)):
            list_id = list_ids[number % args.lists]
            add_jobs.append(
                (f"/api/amplitude/lists/{list_id}/add", json.dumps({"userIds": ids[start : start + BATCH]}).encode())
            )
        # Removes go to the list each id was added to, after every add was acknowledged (as Amplitude's diff would).
        for number, start in enumerate(range(0, removes, BATCH)):
            list_id = list_ids[number % args.lists]
            chunk = ids[start : min(start + BATCH, removes)]
            remove_jobs.append((f"/api/amplitude/lists/{list_id}/remove", json.dumps({"userIds": chunk}).encode()))

        # Warm every gunicorn worker (imports, DB connection) so the figures are the steady state.
        warmup = json.dumps({"name": "[Amplitude] Bench 0: bench0"}).encode()
        _push_phase(base, key, [("/api/amplitude/lists", warmup)] * (4 * args.server_workers))
        add_latencies, add_wall, errors = _push_phase(base, key, add_jobs)
        remove_latencies, remove_wall, remove_errors = _push_phase(base, key, remove_jobs)
        errors += remove_errors
        if errors:
            print(f"{len(errors)} request(s) failed, first: {errors[0]}", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    scopes = [scope for scope in pending_scopes() if scope[0] == workspace.pk]
    connection.close()
    # As under Celery: every push queues an apply of its scope and any worker may take it, so every
    # applier gets every scope (one applies a segment in order; the others prepare its later batches).
    shares = [scopes] * args.appliers
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.appliers, initializer=_start_worker, initargs=(context.Barrier(args.appliers),)) as pool:
        pool.map(_ready, range(args.appliers), chunksize=1)
        started = time.perf_counter()
        applied_batches = sum(pool.map(_apply_worker, shares, chunksize=1))
        apply_wall = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audiences_membershipchange WHERE workspace_id = %s", [workspace.pk])
        changes = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(sum(size), 0) FROM audiences_segment WHERE workspace_id = %s", [workspace.pk])
        final_size = cursor.fetchone()[0]
    copy_wall = _copy_baseline(ids + ids[:removes])
    _cleanup(workspace.pk, bench_started_at)

    latencies = add_latencies + remove_latencies
    quantiles = statistics.quantiles(latencies, n=100)
    p50, p99 = statistics.median(latencies), quantiles[98]
    apply_rate = changes / apply_wall
    copy_rate = (args.size + removes) / copy_wall
    print()
    print(
        f"Inbound benchmark: {args.size:,} adds + {removes:,} removes in {len(latencies)} requests of ≤{BATCH:,} ids, "
        f"{SENDERS} senders, {args.lists} list(s), gunicorn ×{args.server_workers}, {args.appliers} applier(s)"
    )
    print(f"{'measure':<34}{'value':>16}{'target':>14}")
    print(f"{'ack latency p50':<34}{_ms(p50):>16}")
    print(f"{'ack latency p99':<34}{_ms(p99):>16}{'≤ 250 ms':>14}")
    print(f"{'ack throughput (ids/s)':<34}{(args.size + removes) / (add_wall + remove_wall):>16,.0f}")
    print(f"{'applied batches':<34}{applied_batches:>16,}")
    print(f"{'applied ledger changes':<34}{changes:>16,}")
    print(f"{'applied changes/s':<34}{apply_rate:>16,.0f}{'≥ 50,000':>14}")
    print(f"{'baseline: raw COPY rows/s':<34}{copy_rate:>16,.0f}")
    print(f"{'ratio apply / COPY':<34}{apply_rate / copy_rate:>16.2f}")
    print(f"{'final segment size (expected)':<34}{final_size:>16,} ({args.size - removes:,})")


if __name__ == "__main__":
    main()
