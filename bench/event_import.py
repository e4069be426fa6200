"""Benchmark: events imported from a sandbox Export API zip, against a raw COPY baseline.

    python -m bench.event_import [--size 2000000] [--profile]

Needs only DATABASE_URL / REDIS_URL. The export holds `size` events over 24 hourly files, loaded in
6-hour windows; prints events/s, the importer's peak RSS and the ratio to a raw COPY of the same
JSON lines into a one-column table, then deletes what it made.

The sandbox Amplitude runs in a child process (like the real one, it is another machine): its
line generation does not compete with the importer for the GIL, and "peak RSS" is the importer's
own (measured right after the import, before the baseline and the clean-up).

--profile: SQL time per statement (summed over the windows, slowest first), and what is not SQL
(COPY of the files, commits, waiting for the download).
"""

import argparse
import multiprocessing
import os
import resource
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Project modules are imported inside functions, on purpose: the spawned sandbox child imports only
# the sandbox, and the parent imports Django models only after django.setup().
os.environ.setdefault("DEBUG", "1")

HOURS = 24


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_source(size: int, now: datetime):
    """The seeded sandbox and its events: the same in the child (serving) and the parent (baseline)."""
    from integrations.sandbox.amplitude import AmplitudeSandbox
    from integrations.sandbox.datagen import EventSource

    per_hour = -(-size // HOURS)
    source = EventSource(
        start=now - timedelta(hours=HOURS + 2),
        hours=HOURS,
        events_per_hour=per_hour,
        users=max(size // 20, 1000),
        seed=3,
    )
    return AmplitudeSandbox(seed=3, events=source), source


def serve_sandbox(size: int, now: datetime, pipe) -> None:
    """Child process: serve the sandbox until told to stop; answers with this process's peak RSS."""
    from integrations.sandbox.amplitude import running_amplitude_sandbox

    sandbox, _source = make_source(size, now)
    with running_amplitude_sandbox(sandbox) as amp:
        pipe.send((amp.base_url, amp.auth))
        pipe.recv()
        pipe.send(peak_rss_mb())


def vacuum(connection) -> None:
    """Reclaim what the run deleted: the next run must not pay for this one's dead index entries."""
    with connection.cursor() as cursor:
        for table in ("audiences_event", "audiences_profile", "audiences_identity"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def delete_scratch(connection, workspace) -> None:
    """The hot tables by SQL (the ORM's cascade would load every id into this process), then the rest."""
    with connection.cursor() as cursor:
        for table in ("audiences_event", "audiences_identity", "audiences_profilemerge"):
            cursor.execute(f"DELETE FROM {table} WHERE workspace_id = %s", [workspace.pk])
        cursor.execute("DELETE FROM audiences_profile WHERE workspace_id = %s", [workspace.pk])
    workspace.delete()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument("--profile", action="store_true", help="print where the time goes, SQL statement by statement")
    args = parser.parse_args(argv)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    # Started before Django sets up: the child imports only the sandbox.
    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    child = context.Process(
        target=serve_sandbox, args=(args.size, now, child_pipe), name="amplitude-sandbox", daemon=True
    )
    child.start()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from integrations.models import Authorization
    from integrations.sources import exports
    from integrations.sources.actions import create_run
    from integrations.sources.execution import execute_run
    from integrations.sources.models import AmplitudeProject, EventImportJob
    from workspaces.models import Workspace

    settings.SOURCES_EXPORT_WINDOW_HOURS = 6
    base_url, (api_key, secret_key) = pipe.recv()
    workspace = Workspace.objects.create(name="bench event import", slug=f"bench-events-{os.getpid()}")
    try:
        auth = Authorization(workspace=workspace, provider="amplitude", label="bench")
        auth.set_secrets({"api_key": api_key, "secret_key": secret_key})
        auth.save()
        project = AmplitudeProject.objects.create(
            workspace=workspace, label="bench", base_url=base_url, authorization=auth
        )
        job = EventImportJob.objects.create(workspace=workspace, project=project, label="bench", backfill_days=2)
        spent = defaultdict(lambda: [0.0, 0])  # statement → [seconds, calls]

        def timed(execute, sql, params, many, context):
            begun = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                entry = spent[" ".join(sql.split())[:100]]
                entry[0] += time.perf_counter() - begun
                entry[1] += 1

        def timed_call(name, function):
            def wrapper(*a, **kw):
                begun = time.perf_counter()
                try:
                    return function(*a, **kw)
                finally:
                    entry = spent[name]
                    entry[0] += time.perf_counter() - begun
                    entry[1] += 1

            return wrapper

        originals = (exports.store_export, exports.Prefetch.result)
        if args.profile:
            connection.execute_wrappers.append(timed)
            exports.store_export = timed_call(
                "(store_export: the whole window's load, SQL included)", exports.store_export
            )
            exports.Prefetch.result = timed_call("(waiting for the window's download)", exports.Prefetch.result)
        run = create_run(job, enqueue=False)
        started = time.perf_counter()
        execute_run(run.pk)
        elapsed = time.perf_counter() - started
        importer_rss = peak_rss_mb()
        exports.store_export, exports.Prefetch.result = originals
        if args.profile:
            connection.execute_wrappers.remove(timed)
        pipe.send("stop")
        sandbox_rss = pipe.recv()
        child.join(10)
        run.refresh_from_db()
        if run.status != "succeeded":
            sys.exit(f"run failed: {run.error}")
        loaded = run.counts["events_loaded"]
        if args.profile:
            sql_total = sum(seconds for name, (seconds, _calls) in spent.items() if not name.startswith("("))
            print(f"{'seconds':>8} {'calls':>6}  statement")
            for name, (seconds, calls) in sorted(spent.items(), key=lambda item: -item[1][0])[:16]:
                print(f"{seconds:8.2f} {calls:6d}  {name}")
            print(f"{sql_total:8.2f}         all SQL statements (COPY and COMMIT are not statements here)")
            print(f"{elapsed - sql_total:8.2f}         the rest of the run: COPY of the files, commits, downloads")
        sandbox, source = make_source(args.size, now)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE bench_raw (line text)")
            started = time.perf_counter()
            with cursor.copy("COPY bench_raw FROM STDIN") as copy:
                for hour in source.hours_between(source.start, now):
                    for part in range(source.parts(hour)):
                        for line in source.lines(sandbox.population, 187520, hour, part):
                            copy.write_row((line,))
            baseline = time.perf_counter() - started
            cursor.execute("SELECT count(*) FROM bench_raw")
            copied = cursor.fetchone()[0]
            cursor.execute("DROP TABLE bench_raw")
    finally:
        if child.is_alive():
            child.terminate()
        AmplitudeProject.objects.filter(workspace=workspace).delete()
        delete_scratch(connection, workspace)
        vacuum(connection)
    print(
        f"\nEvent import benchmark — {loaded:,} events, {HOURS} hourly files in 6-hour export windows "
        "(sandbox in a child process)"
    )
    print(f"{'step':<34}{'events':>12}{'seconds':>10}{'events/s':>12}")
    print(f"{'import (zip→gunzip→COPY→dedupe→link)':<34}{loaded:>12,}{elapsed:>10.1f}{loaded / elapsed:>12,.0f}")
    print(f"{'baseline: raw COPY of the lines':<34}{copied:>12,}{baseline:>10.1f}{copied / baseline:>12,.0f}")
    print(f"ratio: {elapsed / baseline:.1f}x the raw COPY; target >= 30,000 events/s")
    print(
        f"peak RSS of the importer (this process, after the import): {importer_rss:.0f} MB "
        "(bounded: files are streamed, windows are fixed-size)"
    )
    print(f"peak RSS of the sandbox Amplitude (child process): {sandbox_rss:.0f} MB")


if __name__ == "__main__":
    main()
