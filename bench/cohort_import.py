"""Benchmark: a cohort imported end to end from the sandbox Amplitude, against a raw COPY baseline.

    python -m bench.cohort_import [--size 1000000]

Needs only DATABASE_URL / REDIS_URL. Creates a scratch workspace, imports the cohort twice (first
import: every profile is new; second: after 5% drift, the set difference), prints rows/s, peak
RSS of the importer and the baseline ratio, then deletes everything it made.

The sandbox Amplitude runs in a child process (like the real one, it is another machine): its CSV
generation does not compete with the importer for the GIL, and "peak RSS" is the importer's own
(measured right after the imports, before the baseline and the clean-up). The child's peak RSS is
printed separately.
"""

import argparse
import multiprocessing
import os
import resource
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
# Project modules are imported inside functions, on purpose: the spawned sandbox child imports only
# the sandbox, and the parent imports Django models only after django.setup().

COHORT = "bench1"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SCRATCH_TABLES = (
    "audiences_profile",
    "audiences_identity",
    "audiences_segmentmember",
    "audiences_membershipchange",
    "audiences_event",
)


def vacuum(connection) -> None:
    """Reclaim what the run deleted: the next run must not pay for this one's dead index entries."""
    with connection.cursor() as cursor:
        for table in SCRATCH_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")


def make_sandbox(size: int):
    """The seeded sandbox and its cohort: the same in the child (serving) and the parent (baseline)."""
    from integrations.sandbox.amplitude import AmplitudeSandbox

    sandbox = AmplitudeSandbox(seed=1)
    sandbox.set_faults(redirect="always", gzip=True)
    cohort = sandbox.add_cohort(COHORT, "Bench cohort", size=size)
    return sandbox, cohort


def serve_sandbox(size: int, pipe) -> None:
    """Child process: serve the sandbox; answer "drift" and "stop" (with this process's peak RSS)."""
    from integrations.sandbox.amplitude import running_amplitude_sandbox

    sandbox, _cohort = make_sandbox(size)
    with running_amplitude_sandbox(sandbox) as amp:
        pipe.send((amp.base_url, amp.auth))
        while True:
            command = pipe.recv()
            if command == "drift":
                sandbox.drift_cohort(COHORT)
                pipe.send("drifted")
            else:
                pipe.send(peak_rss_mb())
                return


def delete_scratch(connection, workspace) -> None:
    """The hot tables by SQL (the ORM's cascade would load every id into this process), then the rest."""
    with connection.cursor() as cursor:
        for table in ("audiences_membershipchange", "audiences_identity", "audiences_event", "audiences_profilemerge"):
            cursor.execute(f"DELETE FROM {table} WHERE workspace_id = %s", [workspace.pk])
        cursor.execute(
            "DELETE FROM audiences_segmentmember WHERE segment_id IN "
            "(SELECT id FROM audiences_segment WHERE workspace_id = %s)",
            [workspace.pk],
        )
        cursor.execute("DELETE FROM audiences_profile WHERE workspace_id = %s", [workspace.pk])
    workspace.delete()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true", help="print the slowest SQL statements")
    args = parser.parse_args(argv)
    size = args.size

    # Started before Django sets up: the child imports only the stdlib sandbox.
    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    child = context.Process(target=serve_sandbox, args=(size, child_pipe), name="amplitude-sandbox", daemon=True)
    child.start()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from integrations.models import Authorization
    from integrations.sources.actions import create_run
    from integrations.sources.execution import execute_run
    from integrations.sources.models import AmplitudeProject, Cadence, CohortImportJob
    from workspaces.models import Workspace

    settings.SOURCES_POLL_INTERVAL = 0.2
    settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH = 10_000
    base_url, (api_key, secret_key) = pipe.recv()
    workspace = Workspace.objects.create(name="bench cohort import", slug=f"bench-cohort-{os.getpid()}")
    rows = []
    try:
        auth = Authorization(workspace=workspace, provider="amplitude", label="bench")
        auth.set_secrets({"api_key": api_key, "secret_key": secret_key})
        auth.save()
        project = AmplitudeProject.objects.create(
            workspace=workspace, label="bench", base_url=base_url, authorization=auth
        )
        job = CohortImportJob.objects.create(
            workspace=workspace, project=project, label="bench", cadence=Cadence.ONE_TIME, cohort_ids=[COHORT]
        )
        slow = []

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                slow.append((time.perf_counter() - started, " ".join(sql.split())[:110]))

        if args.profile:
            connection.execute_wrappers.append(timed)
        for label in ("first import (all new)", "re-import after 5% drift"):
            if rows:
                pipe.send("drift")
                pipe.recv()
            run = create_run(job, enqueue=False)
            started = time.perf_counter()
            execute_run(run.pk)
            elapsed = time.perf_counter() - started
            run.refresh_from_db()
            if run.status != "succeeded":
                sys.exit(f"run failed: {run.error}")
            c = run.counts
            rows.append((label, c["rows_read"], elapsed, f"+{c['entered']} -{c['exited']}"))
        importer_rss = peak_rss_mb()
        pipe.send("stop")
        sandbox_rss = pipe.recv()
        child.join(10)
        if args.profile:
            connection.execute_wrappers.remove(timed)

        for seconds, sql in sorted(slow, reverse=True)[:12]:
            print(f"{seconds:7.2f}s  {sql}")
        # Baseline: the same CSV text (the same seeded sandbox, drifted once), raw COPY into a table.
        sandbox, cohort = make_sandbox(size)
        sandbox.drift_cohort(COHORT)
        columns = cohort.columns(sandbox.population, True, [])
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE bench_raw (" + ", ".join(f"c{i} text" for i in range(len(columns))) + ")")
            started = time.perf_counter()
            with cursor.copy("COPY bench_raw FROM STDIN (FORMAT csv, HEADER true)") as copy:
                for chunk in cohort.csv_chunks(sandbox.population, columns):
                    copy.write(chunk)
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
    print(f"\nCohort import benchmark — {size:,} members (sandbox in a child process: 302 redirect + gzip)")
    print(f"{'run':<28}{'rows':>12}{'seconds':>10}{'rows/s':>12}  ledger")
    for label, count, seconds, ledger in rows:
        print(f"{label:<28}{count:>12,}{seconds:>10.1f}{count / seconds:>12,.0f}  {ledger}")
    print(f"{'baseline: raw COPY of CSV':<28}{copied:>12,}{baseline:>10.1f}{copied / baseline:>12,.0f}")
    print(f"ratio first import / raw COPY: {rows[0][2] / baseline:.1f}x slower; target >= 50,000 rows/s")
    print(f"peak RSS of the importer (this process, after the imports): {importer_rss:.0f} MB (target <= 300 MB)")
    print(f"peak RSS of the sandbox Amplitude (child process): {sandbox_rss:.0f} MB")


if __name__ == "__main__":
    main()
