"""/metrics scrape cost against big run tables: it must follow the window, not the table size.

    DATABASE_URL=... REDIS_URL=... python -m bench.metrics [--runs 2000000] [--destinations 200]

Generates (by INSERT … SELECT generate_series, not through the console) a workspace with
`--destinations` list destinations and one real-time sync each, `--runs` finished sync runs spread
over 24 months plus one run a minute per sync in the last hour, a tenth as many import runs, a full
partner call log (DELIVERY_CALL_LOG_SIZE calls per destination) and a small inbound backlog. It
scrapes /metrics with half the runs loaded, then with all of them, and prints p50/p95 of each and
the buffers one scrape's queries touch (EXPLAIN ANALYZE BUFFERS: unlike time, not disturbed by load).
Baseline, same run: `SELECT count(*)` of the sync runs (what a counter over the whole table would
cost per scrape). Cleans up after itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
django.setup()

from django.conf import settings
from django.db import connection
from django.test import Client

from config import metrics
from workspaces.models import Workspace

SCRAPES = 20


def generate(workspace_id: int, destinations: int, runs: int, first: int) -> None:
    """Runs number `first`..`first + runs - 1` of each table: finished over 24 months."""
    with connection.cursor() as cursor:
        cursor.execute(
            """WITH jobs AS (SELECT array_agg(id ORDER BY id) AS ids FROM delivery_syncjob WHERE workspace_id = %(ws)s)
               INSERT INTO delivery_syncrun (workspace_id, job_id, mode, trigger, status, error, planned, "full",
                   rows_total, rows_done, to_add, to_remove, delivered, invalid, rejected, failed, retried,
                   carried_in, created_at, started_at, finished_at)
               SELECT %(ws)s, jobs.ids[1 + n %% %(dests)s], 'auto', 'schedule',
                      CASE WHEN n %% 50 = 0 THEN 'failed' ELSE 'succeeded' END,
                      '', true, false, 10, 10, 10, 0, 10, 0, 0, 0, 0, 0, t, t, t
               FROM jobs, generate_series(%(first)s, %(last)s) n
               CROSS JOIN LATERAL (SELECT now() - interval '730 days' * random() - interval '1 hour' AS t) w""",
            {"ws": workspace_id, "first": first, "last": first + runs - 1, "dests": destinations},
        )
        cursor.execute(
            """INSERT INTO sources_importrun (workspace_id, event_job_id, status, phase, trigger, rows_done, counts,
                   error, created_at, started_at, finished_at)
               SELECT %(ws)s, (SELECT id FROM sources_eventimportjob WHERE workspace_id = %(ws)s), 'succeeded',
                      'done', 'schedule', 100, '{}', '', t, t, t
               FROM generate_series(1, %(n)s) n
               CROSS JOIN LATERAL (SELECT now() - interval '730 days' * random() - interval '1 hour' AS t) w""",
            {"ws": workspace_id, "n": runs // 10},
        )
        cursor.execute("ANALYZE delivery_syncrun")
        cursor.execute("ANALYZE sources_importrun")


def setup(destinations: int) -> Workspace:
    workspace = Workspace.objects.create(name="bench metrics", slug=f"bench-metrics-{os.getpid()}")
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO audiences_segment (workspace_id, name, type, external_id, partner_name, description, size,
                   created_at)
               VALUES (%s, 'Bench', 'manual', 'bench', '', '', 0, now()) RETURNING id""",
            [workspace.pk],
        )
        segment_id = cursor.fetchone()[0]
        cursor.execute(
            """INSERT INTO delivery_destination (workspace_id, kind, name, config, health, last_error, created_at,
                   updated_at)
               SELECT %s, 'list_api', 'bench ' || n, '{}', 'healthy', '', now(), now() FROM generate_series(1, %s) n""",
            [workspace.pk, destinations],
        )
        cursor.execute(
            """INSERT INTO delivery_syncjob (workspace_id, segment_id, destination_id, cadence, timezone, paused,
                   user_id_kind, device_id_kind, partner_state, created_at)
               SELECT workspace_id, %s, id, 'realtime', 'UTC', false, 'user_id', '', '{}', now()
               FROM delivery_destination WHERE workspace_id = %s""",
            [segment_id, workspace.pk],
        )
        # The last hour of a real-time sync: a run a minute per job.
        cursor.execute(
            """INSERT INTO delivery_syncrun (workspace_id, job_id, mode, trigger, status, error, planned, "full",
                   rows_total, rows_done, to_add, to_remove, delivered, invalid, rejected, failed, retried,
                   carried_in, created_at, started_at, finished_at)
               SELECT %s, j.id, 'auto', 'schedule', 'succeeded', '', true, false, 3, 3, 3, 0, 3, 0, 0, 0, 0, 0,
                      now() - make_interval(mins => m), now() - make_interval(mins => m),
                      now() - make_interval(mins => m)
               FROM delivery_syncjob j CROSS JOIN generate_series(0, 59) m WHERE j.workspace_id = %s""",
            [workspace.pk, workspace.pk],
        )
        cursor.execute(
            """INSERT INTO delivery_partnercall (destination_id, created_at, method, url, request_summary, status_code,
                   response_excerpt, duration_ms, error)
               SELECT d.id, now() - make_interval(secs => c * 15), 'POST', 'https://partner.example/lists/1/add',
                      'add 100', CASE WHEN c %% 40 = 0 THEN 429 ELSE 200 END, '', 5 + (c * 7) %% 300, ''
               FROM delivery_destination d CROSS JOIN generate_series(1, %s) c WHERE d.workspace_id = %s""",
            [settings.DELIVERY_CALL_LOG_SIZE, workspace.pk],
        )
        cursor.execute(
            """INSERT INTO integrations_authorization (workspace_id, provider, label, description, fields,
                   secrets_ciphertext, created_at, updated_at)
               VALUES (%s, 'amplitude', 'bench', '', '{}', '', now(), now()) RETURNING id""",
            [workspace.pk],
        )
        authorization_id = cursor.fetchone()[0]
        cursor.execute(
            """INSERT INTO sources_amplitudeproject (workspace_id, label, region, base_url, authorization_id, created_at)
               VALUES (%s, 'bench', 'us', '', %s, now()) RETURNING id""",
            [workspace.pk, authorization_id],
        )
        project_id = cursor.fetchone()[0]
        cursor.execute(
            """INSERT INTO sources_eventimportjob (workspace_id, project_id, label, backfill_days, keep_updated,
                   enabled, created_at)
               VALUES (%s, %s, 'bench', 0, true, true, now())""",
            [workspace.pk, project_id],
        )
        cursor.execute(
            """INSERT INTO inbound_inboundbatch (workspace_id, endpoint, identity_kind, body, dedupe_key, status,
                   item_count, invalid, invalid_count, conflicts, added, removed, profiles_created, merges,
                   other_calls, prepared, attempts, last_error, received_at)
               SELECT %s, 'list_add', 'user_id', '\\x7b7d', 'bench' || n, 'accepted', 1, '[]', 0, '[]', 0, 0, 0, 0,
                      '{}', false, 0, '', now() - make_interval(secs => n)
               FROM generate_series(1, 50) n""",
            [workspace.pk],
        )
    return workspace


def cleanup(workspace: Workspace) -> None:
    with connection.cursor() as cursor:
        for table in ("delivery_syncrun", "sources_importrun", "inbound_inboundbatch"):
            cursor.execute(f"DELETE FROM {table} WHERE workspace_id = %s", [workspace.pk])
        cursor.execute(
            "DELETE FROM delivery_partnercall WHERE destination_id IN "
            "(SELECT id FROM delivery_destination WHERE workspace_id = %s)",
            [workspace.pk],
        )
        for table in (
            "delivery_syncjob",
            "delivery_destination",
            "sources_eventimportjob",
            "sources_amplitudeproject",
            "integrations_authorization",
            "audiences_segment",
        ):
            cursor.execute(f"DELETE FROM {table} WHERE workspace_id = %s", [workspace.pk])
    workspace.delete()


def pages_per_scrape() -> int:
    """Buffer pages the scrape's queries touch (EXPLAIN ANALYZE BUFFERS of each): unlike time, not
    disturbed by whatever else the machine is doing."""
    pages = 0
    run_query = metrics._rows

    def explained(cursor, sql, params=None):
        nonlocal pages
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0][0]["Plan"]
        pages += plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
        return run_query(cursor, sql, params)

    metrics._rows = explained
    try:
        metrics._database_figures(settings.METRICS_WINDOW_SECONDS)
    finally:
        metrics._rows = run_query
    return pages


def measure() -> tuple[float, float, float, int]:
    """(scrape p50, scrape p95, baseline count(*)) in milliseconds, and the pages a scrape touches."""
    client = Client()
    for _ in range(2):  # warm the caches like a running server
        assert client.get("/metrics").status_code == 200
    times = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        response = client.get("/metrics")
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("SELECT count(*) FROM delivery_syncrun")
        cursor.fetchone()
        baseline = (time.perf_counter() - started) * 1000
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], baseline, pages_per_scrape()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2_000_000)
    parser.add_argument("--destinations", type=int, default=200)
    args = parser.parse_args()
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []  # DEBUG: loopback may scrape
    workspace = setup(args.destinations)
    try:
        rows = []
        loaded = 0
        for share in (args.runs // 2, args.runs - args.runs // 2):
            started = time.perf_counter()
            generate(workspace.pk, args.destinations, share, loaded + 1)
            loaded += share
            print(
                f"generated {share:,} sync runs (+{share // 10:,} import runs) in {time.perf_counter() - started:.1f}s"
            )
            rows.append((loaded, *measure()))
        print(f"\n{'sync runs':>12}{'scrape p50 ms':>15}{'scrape p95 ms':>15}{'buffers':>9}{'count(*) ms':>13}")
        for loaded, p50, p95, baseline, pages in rows:
            print(f"{loaded:>12,}{p50:>15.1f}{p95:>15.1f}{pages:>9,}{baseline:>13.1f}")
    finally:
        cleanup(workspace)


if __name__ == "__main__":
    main()
