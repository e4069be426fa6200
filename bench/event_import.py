"""Benchmark: events imported from a sandbox Export API zip, against a raw COPY baseline.

    python -m bench.event_import [--size 2000000]

Needs only DATABASE_URL / REDIS_URL. One export window holds `size` events (10,000 per hour file);
prints events/s, peak RSS of this process and the ratio to a raw COPY of the same JSON lines into
a one-column table, then deletes what it made.
"""

import argparse
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")


def vacuum(connection) -> None:
    """Reclaim what the run deleted: the next run must not pay for this one's dead index entries."""
    with connection.cursor() as cursor:
        for table in ("audiences_event", "audiences_profile", "audiences_identity"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument("--profile", action="store_true", help="print the slowest SQL statements")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from audiences.models import Event
    from integrations.models import Authorization
    from integrations.sandbox.amplitude import AmplitudeSandbox, running_amplitude_sandbox
    from integrations.sandbox.datagen import EventSource
    from integrations.sources.models import AmplitudeProject, EventImportJob
    from integrations.sources.runs import create_run, execute_run
    from workspaces.models import Workspace

    hours = 24
    per_hour = -(-args.size // hours)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    source = EventSource(start=now - timedelta(hours=hours + 2), hours=hours, events_per_hour=per_hour,
                         users=max(args.size // 20, 1000), seed=3)
    sandbox = AmplitudeSandbox(seed=3, events=source)
    settings.SOURCES_EXPORT_WINDOW_HOURS = 6
    workspace = Workspace.objects.create(name="bench event import", slug=f"bench-events-{os.getpid()}")
    try:
        with running_amplitude_sandbox(sandbox) as amp:
            auth = Authorization(workspace=workspace, provider="amplitude", label="bench")
            auth.set_secrets({"api_key": amp.auth[0], "secret_key": amp.auth[1]})
            auth.save()
            project = AmplitudeProject.objects.create(workspace=workspace, label="bench", base_url=amp.base_url,
                                                      authorization=auth)
            job = EventImportJob.objects.create(workspace=workspace, project=project, label="bench", backfill_days=2)
            slow = []

            def timed(execute, sql, params, many, context):
                begun = time.perf_counter()
                try:
                    return execute(sql, params, many, context)
                finally:
                    slow.append((time.perf_counter() - begun, " ".join(sql.split())[:110]))

            if args.profile:
                connection.execute_wrappers.append(timed)
            run = create_run(job, enqueue=False)
            started = time.perf_counter()
            execute_run(run.pk)
            elapsed = time.perf_counter() - started
            run.refresh_from_db()
            if run.status != "succeeded":
                sys.exit(f"run failed: {run.error}")
            loaded = run.counts["events_loaded"]
            for seconds, sql in sorted(slow, reverse=True)[:12]:
                print(f"{seconds:7.2f}s  {sql}")
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
        Event.objects.filter(workspace=workspace).delete()
        AmplitudeProject.objects.filter(workspace=workspace).delete()
        workspace.delete()
        vacuum(connection)
    print(f"\nEvent import benchmark — {loaded:,} events, {hours} hourly files in {hours // 6} export windows")
    print(f"{'step':<34}{'events':>12}{'seconds':>10}{'events/s':>12}")
    print(f"{'import (zip→gunzip→COPY→dedupe→link)':<34}{loaded:>12,}{elapsed:>10.1f}{loaded / elapsed:>12,.0f}")
    print(f"{'baseline: raw COPY of the lines':<34}{copied:>12,}{baseline:>10.1f}{copied / baseline:>12,.0f}")
    print(f"ratio: {elapsed / baseline:.1f}x the raw COPY; target >= 30,000 events/s")
    print(f"peak RSS of this process: {rss:.0f} MB (bounded: files are streamed, windows are fixed-size)")


if __name__ == "__main__":
    main()
