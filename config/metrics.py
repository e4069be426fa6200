"""GET /metrics: Prometheus metrics, read from PostgreSQL and Redis each time Prometheus scrapes.

Nothing is counted in process memory. A custom collector asks the database and Redis at scrape
time, so every web process answers the same figures, however many there are and whichever
process or worker did the work, and a restart loses nothing. The queries are cheap by
construction: an index (runs by finished_at), a partial index (the unapplied inbound backlog),
or a table bounded by configuration (the partner call log keeps DELIVERY_CALL_LOG_SIZE calls per
destination; one quota row per project and month). They run in one read-only transaction with
a statement timeout. Labels are bounded: 4 queues, run kinds × outcomes, status classes, and one
series per configured destination or Amplitude project (ids, never user data).

Runs, rows and partner calls are counted over a trailing window (METRICS_WINDOW_SECONDS) rather
than as counters since the beginning of time: the tables they come from are pruned, and a counter
that goes down reads to Prometheus as a restart. docs/metrics.md lists every metric.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from redis.exceptions import RedisError

from config.celery import QUEUES
from config.scheduler import last_tick
from integrations.api_errors import json_error
from integrations.connectors.registry import partner_declarations
from integrations.delivery.models import ACTIVE_STATUSES as ACTIVE_SYNC_STATUSES
from integrations.delivery.models import RunStatus as SyncStatus
from integrations.redis_client import redis_client
from integrations.sources.models import FINISHED as FINISHED_IMPORT_STATUSES
from integrations.sources.models import RunStatus as ImportStatus

PREFIX = "cohort_console"
# kombu's Redis transport keeps a queue's messages of priority 3, 6 and 9 in lists of their own,
# named queue + "\x06\x16" + priority (kombu.transport.redis: PRIORITY_STEPS and Channel.sep).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_UNACKED_KEY = "unacked"  # kombu's hash of messages delivered to a worker and not acknowledged yet
QUERY_TIMEOUT = "5s"
CALL_QUANTILES = (0.5, 0.95, 0.99)
# Status classes of partner calls: a code of its own for 429, the partner asking us to slow down.
CALL_CLASSES = ("2xx", "3xx", "4xx", "429", "5xx", "error")
# One pass over the partner call log, which keeps DELIVERY_CALL_LOG_SIZE calls per destination: the
# calls of each status class, then the duration quantiles.
_CALLS_SQL = """
SELECT destination_id,
       count(*) FILTER (WHERE status_code BETWEEN 200 AND 299),
       count(*) FILTER (WHERE status_code BETWEEN 300 AND 399),
       count(*) FILTER (WHERE status_code BETWEEN 400 AND 499 AND status_code <> 429),
       count(*) FILTER (WHERE status_code = 429),
       count(*) FILTER (WHERE status_code BETWEEN 500 AND 599),
       count(*) FILTER (WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 599),
       percentile_cont(%(quantiles)s::float8[]) WITHIN GROUP (ORDER BY duration_ms)
FROM delivery_partnercall WHERE created_at >= %(since)s GROUP BY destination_id
"""


# -- where each figure comes from ---------------------------------------------------------------


def _redis_figures() -> dict:
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    pipe.hlen(_UNACKED_KEY)
    replies = pipe.execute()
    steps = len(_PRIORITY_SUFFIXES)
    lengths = {queue: sum(replies[i * steps : (i + 1) * steps]) for i, queue in enumerate(QUEUES)}
    return {"queues": lengths, "unacked": replies[-1], "last_tick": last_tick()}


def _statuses(choices, active) -> tuple[list[str], list[str]]:
    """A run model's statuses split into (still active, terminal), in the model's order."""
    return [s for s in choices.values if s in active], [s for s in choices.values if s not in active]


_IMPORT_STATUSES = _statuses(ImportStatus, set(ImportStatus.values) - FINISHED_IMPORT_STATUSES)
# Run kinds: (label, the statuses a run is still active in, its terminal statuses); partner apps add
# theirs with the SQL that counts them (their metrics.py RUN_KINDS, through the registry).
RUN_KINDS = (
    ("sync", *_statuses(SyncStatus, ACTIVE_SYNC_STATUSES)),
    ("cohort_import", *_IMPORT_STATUSES),
    ("event_import", *_IMPORT_STATUSES),
)
# Active runs have no finished_at yet; finished ones count inside the window. Both halves of the OR
# use the finished_at indexes of sync and import runs (a B-tree keeps NULLs too).
_RUNS_SQL = """
SELECT 'sync', status, finished_at IS NULL, count(*) FROM delivery_syncrun
 WHERE finished_at IS NULL OR finished_at >= %(since)s GROUP BY 2, 3
UNION ALL
SELECT CASE WHEN cohort_job_id IS NULL THEN 'event_import' ELSE 'cohort_import' END, status, finished_at IS NULL,
       count(*) FROM sources_importrun
 WHERE finished_at IS NULL OR finished_at >= %(since)s GROUP BY 1, 2, 3
"""


_SYNC_ROWS_SQL = """
SELECT j.destination_id, sum(r.delivered), sum(r.rejected), sum(r.invalid), sum(r.failed)
FROM delivery_syncrun r JOIN delivery_syncjob j ON j.id = r.job_id WHERE r.finished_at >= %(since)s
GROUP BY j.destination_id
"""


def run_kinds() -> list[tuple[str, list[str], list[str]]]:
    return [*RUN_KINDS, *(kind[:3] for kind in partner_declarations("metrics", "RUN_KINDS"))]


def _runs_sql() -> str:
    return "\nUNION ALL\n".join([_RUNS_SQL, *(kind[3] for kind in partner_declarations("metrics", "RUN_KINDS"))])


def _rows(cursor, sql: str, params: list | dict | None = None) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def _database_figures(window_seconds: int) -> dict:
    figures: dict = {}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute(f"SET LOCAL statement_timeout = '{QUERY_TIMEOUT}'")
        cursor.execute("SELECT statement_timestamp() - make_interval(secs => %s)", [window_seconds])
        since = cursor.fetchone()[0]

        # The inbound backlog: served by the partial index inbound_batch_pending.
        figures["inbound"] = _rows(
            cursor,
            "SELECT count(*), EXTRACT(EPOCH FROM statement_timestamp() - min(received_at)) FROM inbound_inboundbatch "
            "WHERE status = 'accepted'",
        )[0]

        figures["runs"] = _rows(cursor, _runs_sql(), {"since": since})
        figures["destinations"] = _rows(
            cursor,
            "SELECT d.id, w.slug, d.kind, d.name FROM delivery_destination d "
            "JOIN workspaces_workspace w ON w.id = d.workspace_id ORDER BY d.id",
        )
        # Rows per destination, from the runs finished in the window (sync runs, and partner apps'
        # own runs: their metrics.py DESTINATION_ROWS).
        rows_sql = "\nUNION ALL\n".join([_SYNC_ROWS_SQL, *partner_declarations("metrics", "DESTINATION_ROWS")])
        figures["destination_rows"] = _rows(cursor, rows_sql, {"since": since})
        figures["counters"] = [
            (name, help_text, _rows(cursor, sql))
            for name, help_text, sql in partner_declarations("metrics", "COUNTERS")
        ]
        # The partner call log is capped per destination (DELIVERY_CALL_LOG_SIZE), so this scan is bounded.
        figures["calls"] = _rows(cursor, _CALLS_SQL, {"since": since, "quantiles": list(CALL_QUANTILES)})
        # This month's cohort download budget per Amplitude project (no row yet: nothing used).
        figures["quota"] = _rows(
            cursor,
            """SELECT p.id, w.slug, p.label, COALESCE(q."limit", %s), COALESCE(q.used, 0)
               FROM sources_amplitudeproject p JOIN workspaces_workspace w ON w.id = p.workspace_id
               LEFT JOIN sources_downloadquota q
                      ON q.project_id = p.id AND q.month = date_trunc('month', statement_timestamp() AT TIME ZONE 'UTC')::date
               ORDER BY p.id""",
            [settings.SOURCES_COHORT_DOWNLOADS_PER_MONTH],
        )
    return figures


# -- the collector ------------------------------------------------------------------------------


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))


class ConsoleCollector:
    """Yields every metric from one round of queries; a source that is down is reported, not raised."""

    def collect(self) -> Iterator[Metric]:
        window = settings.METRICS_WINDOW_SECONDS
        up = _gauge("metrics_source_up", "1 when the source answered this scrape, 0 when it failed.", ["source"])
        try:
            redis_figures = _redis_figures()
        except (RedisError, OSError, ValueError):
            redis_figures = None
        try:
            db_figures = _database_figures(window)
        except DatabaseError:
            db_figures = None
        up.add_metric(["redis"], 1 if redis_figures is not None else 0)
        up.add_metric(["database"], 1 if db_figures is not None else 0)
        yield up
        window_gauge = _gauge("metrics_window_seconds", "The trailing window runs, rows and partner calls count over.")
        window_gauge.add_metric([], window)
        yield window_gauge
        if redis_figures is not None:
            yield from self._redis_metrics(redis_figures)
        if db_figures is not None:
            yield from self._database_metrics(db_figures)

    def _redis_metrics(self, figures: dict) -> Iterator[Metric]:
        queues = _gauge("celery_queue_length", "Tasks waiting in a Celery queue (Redis list length).", ["queue"])
        for queue, length in figures["queues"].items():
            queues.add_metric([queue], length)
        yield queues
        unacked = _gauge(
            "celery_unacked_tasks", "Tasks handed to a worker and not acknowledged yet (running or reserved)."
        )
        unacked.add_metric([], figures["unacked"])
        yield unacked
        tick = figures["last_tick"]
        lag = _gauge(
            "scheduler_tick_lag_seconds",
            "Seconds since the scheduler's last completed tick (every 60 s when healthy; +Inf if none recorded).",
        )
        lag.add_metric([], max(time.time() - tick, 0.0) if tick is not None else float("inf"))
        yield lag
        if tick is not None:
            stamp = _gauge("scheduler_last_tick_timestamp_seconds", "Unix time of the scheduler's last completed tick.")
            stamp.add_metric([], tick)
            yield stamp

    def _database_metrics(self, figures: dict) -> Iterator[Metric]:
        pending, oldest_age = figures["inbound"]
        backlog = _gauge("inbound_pending_batches", "Inbound batches accepted and not applied yet.")
        backlog.add_metric([], pending)
        yield backlog
        age = _gauge(
            "inbound_oldest_pending_age_seconds", "Age of the oldest inbound batch not applied yet (0 when none)."
        )
        age.add_metric([], float(oldest_age or 0.0))
        yield age

        yield from self._run_metrics(figures)
        yield from self._destination_metrics(figures)

        info = InfoMetricFamily(
            f"{PREFIX}_amplitude_project", "An Amplitude project.", labels=["project", "workspace", "label"]
        )
        limit = _gauge("amplitude_cohort_downloads_limit", "Cohort downloads allowed this month.", ["project"])
        left = _gauge(
            "amplitude_cohort_downloads_remaining",
            "Cohort downloads left this month (UTC calendar month).",
            ["project"],
        )
        for project_id, workspace, label, month_limit, used in figures["quota"]:
            info.add_metric([str(project_id), workspace, label], {})
            limit.add_metric([str(project_id)], month_limit)
            left.add_metric([str(project_id)], max(month_limit - used, 0))
        yield from (info, limit, left)

    def _run_metrics(self, figures: dict) -> Iterator[Metric]:
        active = _gauge("runs_active", "Runs queued, running or waiting, by kind.", ["kind", "status"])
        finished = _gauge(
            "runs_finished", "Runs finished within the metrics window, by kind and outcome.", ["kind", "outcome"]
        )
        counts = {(kind, status, is_active): count for kind, status, is_active, count in figures["runs"]}
        for kind, active_statuses, outcomes in run_kinds():
            for status in active_statuses:
                active.add_metric([kind, status], counts.get((kind, status, True), 0))
            for outcome in outcomes:
                finished.add_metric([kind, outcome], counts.get((kind, outcome, False), 0))
        yield from (active, finished)

    def _destination_metrics(self, figures: dict) -> Iterator[Metric]:
        info = InfoMetricFamily(
            f"{PREFIX}_destination", "A destination.", labels=["destination", "workspace", "kind", "name"]
        )
        rows = _gauge(
            "destination_rows",
            "Rows of the runs (syncs, partner exports) finished within the metrics window, by outcome.",
            ["destination", "outcome"],
        )
        calls = _gauge(
            "partner_calls", "Partner calls within the metrics window, by status class.", ["destination", "code"]
        )
        latency = _gauge(
            "partner_call_duration_seconds",
            "Partner call duration quantiles within the metrics window.",
            ["destination", "quantile"],
        )
        destination_rows: dict[int, list[int]] = {}
        for destination_id, *values in figures["destination_rows"]:
            totals = destination_rows.setdefault(destination_id, [0, 0, 0, 0])
            for i, value in enumerate(values):
                totals[i] += int(value or 0)
        calls_by_destination = {row[0]: row[1:] for row in figures["calls"]}
        for destination_id, workspace, kind, name in figures["destinations"]:
            dest = str(destination_id)
            info.add_metric([dest, workspace, kind, name], {})
            totals = destination_rows.get(destination_id, [0, 0, 0, 0])
            for outcome, value in zip(("sent", "rejected", "invalid", "failed"), totals, strict=True):
                rows.add_metric([dest, outcome], value)
            *by_class, quantiles = calls_by_destination.get(destination_id, (0,) * len(CALL_CLASSES) + (None,))
            for code, count in zip(CALL_CLASSES, by_class, strict=True):
                calls.add_metric([dest, code], count)
            for quantile, millis in zip(CALL_QUANTILES, quantiles or (), strict=False):
                latency.add_metric([dest, str(quantile)], millis / 1000.0)
        yield from (info, rows, calls, latency)

        for name, help_text, counted in figures["counters"]:
            counter = CounterMetricFamily(f"{PREFIX}_{name}", help_text, labels=["destination", "outcome"])
            for destination_id, outcome, value in counted:
                counter.add_metric([str(destination_id), outcome], value)
            yield counter


# -- the endpoint -------------------------------------------------------------------------------


def _peer_address(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.1.2.3 is 10.1.2.3
    return mapped or address


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read /metrics, as the response to send; None when it may."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS
    peer = _peer_address(request)
    if not token and not networks:
        if settings.DEBUG and peer is not None and peer.is_loopback:
            return None  # development: open to this machine only
        return json_error(
            403,
            "metrics_not_configured",
            "Metrics are refused until METRICS_TOKEN or METRICS_ALLOWED_NETWORKS is set (docs/metrics.md).",
        )
    if networks and (peer is None or not any(peer in ipaddress.ip_network(n) for n in networks)):
        return json_error(403, "forbidden_network", "This address may not read metrics (METRICS_ALLOWED_NETWORKS).")
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return json_error(
                401,
                "unauthorized",
                "Send Authorization: Bearer <METRICS_TOKEN>.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return None


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    refused = refusal(request)
    if refused is not None:
        return refused
    # A registry of our own: the default one would add this one process's CPU and memory, which
    # means nothing behind a pool of web processes.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector())
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
