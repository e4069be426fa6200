"""Benchmark: a cohort imported end to end from the sandbox Amplitude, against a raw COPY baseline.

    python -m bench.cohort_import [--size 1000000] [--repeated 0.01]

Needs only DATABASE_URL / REDIS_URL. Creates a scratch workspace, imports the cohort twice (first
import: every profile is new; second: after 5% drift, the set difference). Then the tables are
analyzed, as autovacuum does after such a load, so their statistics know that workspace's people
only, and the same people are imported as new into two more workspaces, one after the other: a
clean file, then a file that names `--repeated` of them twice (a repeated key takes the loader's
careful path, which once fell off a cliff on such statistics: docs/sources.md). Prints rows/s,
the repeated-keys case beside the clean one with their ratio, peak RSS of the importer and the
baseline ratio, then deletes everything it made.

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
FRESH = "bench1new"  # COHORT's first version again, for another workspace
REPEATED = "bench1rep"  # the same, with every n-th member's row written twice


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SCRATCH_TABLES = (
    "audiences_profile",
    "audiences_identity",
    "audiences_segmentmember",
    "audiences_membershipchange",
    "audiences_event",
)


def vacuum(connection, analyze: bool = True) -> None:
    """Reclaim what the run deleted: the next run must not pay for this one's dead index entries."""
    with connection.cursor() as cursor:
        for table in SCRATCH_TABLES:
            cursor.execute(f"VACUUM {'ANALYZE' if analyze else ''} {table}")


def analyze_tables(connection) -> None:
    with connection.cursor() as cursor:
        for table in SCRATCH_TABLES:
            cursor.execute(f"ANALYZE {table}")


def make_sandbox(size: int, repeat_every: int = 0):
    """The seeded sandbox and its cohort: the same in the child (serving) and the parent (baseline)."""
    from integrations.sandbox.amplitude import AmplitudeSandbox

    sandbox = AmplitudeSandbox(seed=1)
    sandbox.set_faults(redirect="always", gzip=True)
    cohort = sandbox.add_cohort(COHORT, "Bench cohort", size=size)
    # The same people as COHORT before it drifts, imported into other workspaces: only the repeats differ.
    sandbox.add_cohort(FRESH, "Bench cohort, again", size=size)
    sandbox.add_cohort(REPEATED, "Bench cohort, repeated keys", size=size, repeat_every=repeat_every)
    return sandbox, cohort


def serve_sandbox(size: int, repeat_every: int, pipe) -> None:
    """Child process: serve the sandbox; answer "drift" and "stop" (with this process's peak RSS)."""
    from integrations.sandbox.amplitude import running_amplitude_sandbox

    sandbox, _cohort = make_sandbox(size, repeat_every)
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
    parser.add_argument("--size", "--rows", type=int, default=1_000_000, help="members of the cohort")
    parser.add_argument(
        "--repeated", type=float, default=0.01, help="share of the repeated-keys cohort's people named twice"
    )
    parser.add_argument("--profile", action="store_true", help="print the slowest SQL statements")
    args = parser.parse_args(argv)
    size = args.size
    repeat_every = max(1, round(1 / args.repeated)) if args.repeated > 0 else 0

    # Started before Django sets up: the child imports only the stdlib sandbox.
    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    child = context.Process(
        target=serve_sandbox, args=(size, repeat_every, child_pipe), name="amplitude-sandbox", daemon=True
    )
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
    workspaces = []
    rows = []

    def scratch_job(name: str, cohort_id: str) -> CohortImportJob:
        workspace = Workspace.objects.create(name=f"bench cohort import {name}", slug=f"bench-{name}-{os.getpid()}")
        workspaces.append(workspace)
        auth = Authorization(workspace=workspace, provider="amplitude", label="bench")
        auth.set_secrets({"api_key": api_key, "secret_key": secret_key})
        auth.save()
        project = AmplitudeProject.objects.create(
            workspace=workspace, label="bench", base_url=base_url, authorization=auth
        )
        # Hourly (never scheduled here: no next_run_at), so it can run again: a one-time job runs once.
        return CohortImportJob.objects.create(
            workspace=workspace, project=project, label="bench", cadence=Cadence.HOURLY, cohort_ids=[cohort_id]
        )

    def import_once(job: CohortImportJob, label: str) -> None:
        run = create_run(job, enqueue=False)
        started = time.perf_counter()
        execute_run(run.pk)
        elapsed = time.perf_counter() - started
        run.refresh_from_db()
        if run.status != "succeeded":
            sys.exit(f"run failed: {run.error}")
        c = run.counts
        rows.append((label, c["rows_read"], elapsed, f"+{c['entered']} -{c['exited']}"))

    def clean_up(workspace, analyze: bool = True) -> None:
        AmplitudeProject.objects.filter(workspace=workspace).delete()
        delete_scratch(connection, workspace)
        vacuum(connection, analyze)

    try:
        slow = []

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                slow.append((time.perf_counter() - started, " ".join(sql.split())[:110]))

        if args.profile:
            connection.execute_wrappers.append(timed)
        job = scratch_job("clean", COHORT)
        import_once(job, "first import (all new)")
        pipe.send("drift")
        pipe.recv()
        import_once(job, "re-import after 5% drift")
        if repeat_every:
            # Statistics that know the first workspace's people only; both imports below meet them
            # (the clean one's workspace is emptied again and vacuumed, not analyzed, before the next).
            analyze_tables(connection)
            import_once(scratch_job("again", FRESH), "another workspace: all new")
            clean_up(workspaces.pop(), analyze=False)
            import_once(scratch_job("repeated", REPEATED), f"another workspace: {args.repeated:.0%} repeated")
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
        for workspace in workspaces:
            clean_up(workspace)
    print(f"\nCohort import benchmark — {size:,} members (sandbox in a child process: 302 redirect + gzip)")
    print(f"{'run':<34}{'rows':>12}{'seconds':>10}{'rows/s':>12}  ledger")
    for label, count, seconds, ledger in rows:
        print(f"{label:<34}{count:>12,}{seconds:>10.1f}{count / seconds:>12,.0f}  {ledger}")
    print(f"{'baseline: raw COPY of CSV':<34}{copied:>12,}{baseline:>10.1f}{copied / baseline:>12,.0f}")
    print(f"ratio first import / raw COPY: {rows[0][2] / baseline:.1f}x slower; target >= 50,000 rows/s")
    if repeat_every:
        clean, repeated = rows[2], rows[3]
        print(
            f"ratio first import with {args.repeated:.0%} repeated keys / the same without: "
            f"{repeated[2] / clean[2]:.2f}x the time ({repeated[1] / repeated[2]:,.0f} vs {clean[1] / clean[2]:,.0f} rows/s)"
        )
    print(f"peak RSS of the importer (this process, after the imports): {importer_rss:.0f} MB (target <= 300 MB)")
    print(f"peak RSS of the sandbox Amplitude (child process): {sandbox_rss:.0f} MB")


if __name__ == "__main__":
    main()
