"""Retention: what is removed once it is older than its workspace's window (docs/operations.md).

Windows (days, Workspace.retention_days; defaults settings.RETENTION_DEFAULT_DAYS):

- inbound_bodies: the raw body of a batch APPLIED that long ago is cleared (the batch row, its
  counts and the ledger rows it made stay). Accepted and failed batches keep theirs: the first
  still has to be applied, the second may be retried by ops.
- events: events whose event_time is older. A whole monthly partition older than every
  workspace's window is dropped (no row by row delete, no vacuum debt); the rest are deleted in
  batches, partition by partition.
- delivery_rows: the row outcomes of sync runs finished that long ago, and Kochava's per-event
  outcomes. Failed rows still to be carried into the next run (carry_over) stay, and so do the
  rows of a run that has not finished.
- run_detail: sync and import runs finished that long ago, except each job's latest run and a sync
  run that still has delivery rows (its carried failures, say).
- partner_calls: partner call log entries (besides the per-destination cap DELIVERY_CALL_LOG_SIZE).

Import staging (the scratch tables a cohort or event load makes, audiences.bulk.scratch_table) has
no window: a load drops its own before it commits; one left by a server crash is dropped as soon as
the backend that made it is gone.

Every delete is one statement of at most RETENTION_BATCH_SIZE rows in its own transaction, found
through an index on the time that decides (no scan of what stays), so no lock is held long and no
table is rewritten; space is reused by autovacuum. One pruning at a time (an advisory lock).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audiences.partitions import EVENTS, Partition, is_partitioned, partitions
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

_LOCK = 20_2002  # pg advisory lock key: one pruning at a time


@dataclass
class Report:
    dry_run: bool
    removed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dropped_partitions: list[str] = field(default_factory=list)
    batches: int = 0
    largest_batch: int = 0

    def add(self, what: str, count: int) -> None:
        if count:
            self.removed[what] += count

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [f"{what}: {verb} {count}" for what, count in sorted(self.removed.items())]
        out += [f"partition {name}: {'would drop' if self.dry_run else 'dropped'}" for name in self.dropped_partitions]
        return out or ["nothing to remove"]


class PruneBusy(Exception):
    """Another pruning holds the lock."""


def next_pruning(now: dt.datetime | None = None) -> dt.datetime:
    """When the beat runs the daily pruning next (config/celery.py: RETENTION_HOUR_UTC)."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    at = now.replace(hour=settings.RETENTION_HOUR_UTC, minute=30, second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)


def prune(now: dt.datetime | None = None, *, dry_run: bool = False, batch_size: int | None = None) -> Report:
    """Remove (or with dry_run only count) everything past its window. Raises PruneBusy."""
    now = now or timezone.now()
    size = batch_size or settings.RETENTION_BATCH_SIZE
    report = Report(dry_run=dry_run)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK])
        if not cursor.fetchone()[0]:
            raise PruneBusy("another pruning is running")
        try:
            run = _Pruner(cursor, now, size, report)
            run.inbound_bodies()
            run.events()
            run.delivery_rows()
            run.run_detail()
            run.partner_calls()
            run.import_staging()
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK])
    return report


class _Pruner:
    def __init__(self, cursor, now: dt.datetime, size: int, report: Report):
        self.cursor, self.now, self.size, self.report = cursor, now, size, report
        self.windows = {w.pk: w.retention_days() for w in Workspace.objects.only("id", "retention")}

    def cutoffs(self, kind: str) -> dict[dt.datetime, list[int]]:
        """Workspaces grouped by the moment before which `kind` goes."""
        grouped: dict[dt.datetime, list[int]] = defaultdict(list)
        for workspace_id, days in self.windows.items():
            grouped[self.now - dt.timedelta(days=days[kind])].append(workspace_id)
        return grouped

    # -- the one way rows go --------------------------------------------------------------------

    def batches(self, what: str, count_sql: str, change_sql: str, params: dict) -> None:
        """Count (dry run) or apply `change_sql` until it touches fewer than a batch of rows.

        `change_sql` changes at most %(limit)s rows per run: each run is its own short transaction.
        """
        if self.report.dry_run:
            self.cursor.execute(count_sql, params)
            self.report.add(what, self.cursor.fetchone()[0])
            return
        while True:
            with transaction.atomic():
                self.cursor.execute("SET LOCAL lock_timeout = %s", [f"{settings.PARTITION_LOCK_TIMEOUT_SECONDS}s"])
                self.cursor.execute(change_sql, {**params, "limit": self.size})
                done = self.cursor.rowcount
            self.report.batches += 1
            self.report.largest_batch = max(self.report.largest_batch, done)
            self.report.add(what, done)
            if done < self.size:
                return

    # -- the kinds --------------------------------------------------------------------------------

    def inbound_bodies(self) -> None:
        for cutoff, workspaces in self.cutoffs("inbound_bodies").items():
            where = (
                "status = 'applied' AND body IS NOT NULL AND applied_at < %(cutoff)s "
                "AND workspace_id = ANY(%(workspaces)s)"
            )
            self.batches(
                "inbound_inboundbatch.body",
                f"SELECT count(*) FROM inbound_inboundbatch WHERE {where}",
                f"UPDATE inbound_inboundbatch SET body = NULL WHERE id = ANY(ARRAY("
                f"SELECT id FROM inbound_inboundbatch WHERE {where} ORDER BY applied_at LIMIT %(limit)s))",
                {"cutoff": cutoff, "workspaces": workspaces},
            )

    def events(self) -> None:
        cutoffs = self.cutoffs("events")
        if not cutoffs:
            return
        if not is_partitioned(self.cursor, EVENTS.table):
            tables = [Partition(EVENTS.table, None)]
        else:
            tables = partitions(self.cursor, EVENTS.table)
        oldest_kept = min(cutoffs)  # the longest window: before it, no workspace keeps anything
        for part in tables:
            if part.upper is not None and part.upper <= oldest_kept:
                self.drop_partition(part)
                continue
            for cutoff, workspaces in cutoffs.items():
                if part.month is not None and dt.datetime.combine(part.month, dt.time(), dt.UTC) >= cutoff:
                    continue  # the whole month is inside this window
                # Through the partition's primary key in id order: ids follow arrival, so the rows
                # that go come first, and a batch never re-reads the rows the last one kept.
                where = "event_time < %(cutoff)s AND workspace_id = ANY(%(workspaces)s)"
                self.batches(
                    EVENTS.table,
                    f"SELECT count(*) FROM {part.name} WHERE {where}",
                    f"DELETE FROM {part.name} WHERE id = ANY(ARRAY("
                    f"SELECT id FROM {part.name} WHERE {where} ORDER BY id LIMIT %(limit)s))",
                    {"cutoff": cutoff, "workspaces": workspaces},
                )

    def drop_partition(self, part: Partition) -> None:
        self.cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [part.name])
        rows = max(self.cursor.fetchone()[0], 0)  # the planner's count: no scan of what goes whole
        self.report.dropped_partitions.append(part.name)
        if self.report.dry_run:
            self.report.add(EVENTS.table + " (partitions, about)", rows)
            return
        with transaction.atomic():
            # DETACH + DROP hold the parent's lock for a moment; never wait behind a long query for it.
            self.cursor.execute("SET LOCAL lock_timeout = %s", [f"{settings.PARTITION_LOCK_TIMEOUT_SECONDS}s"])
            self.cursor.execute(f"ALTER TABLE {EVENTS.table} DETACH PARTITION {part.name}")
            self.cursor.execute(f"DROP TABLE {part.name}")
        self.report.add(EVENTS.table + " (partitions, about)", rows)

    def delivery_rows(self) -> None:
        for cutoff, workspaces in self.cutoffs("delivery_rows").items():
            params = {"cutoff": cutoff, "workspaces": workspaces}
            # Runs finished before the cutoff (the finished_at index), then their rows (run, id).
            self.cursor.execute(
                "SELECT r.id FROM delivery_syncrun r WHERE r.finished_at < %(cutoff)s "
                "AND r.workspace_id = ANY(%(workspaces)s) AND r.status NOT IN ('queued', 'running', 'waiting') "
                "AND EXISTS (SELECT 1 FROM delivery_deliveryrow d WHERE d.run_id = r.id AND NOT d.carry_over)",
                params,
            )
            runs = [row[0] for row in self.cursor.fetchall()]
            if runs:
                where = "run_id = ANY(%(runs)s) AND NOT carry_over"
                self.batches(
                    "delivery_deliveryrow",
                    f"SELECT count(*) FROM delivery_deliveryrow WHERE {where}",
                    f"DELETE FROM delivery_deliveryrow WHERE id = ANY(ARRAY("
                    f"SELECT id FROM delivery_deliveryrow WHERE {where} ORDER BY run_id, id LIMIT %(limit)s))",
                    {"runs": runs},
                )
            where = (
                "created_at < %(cutoff)s AND stream_id IN "
                "(SELECT id FROM campaigns_kochavastream WHERE workspace_id = ANY(%(workspaces)s))"
            )
            self.batches(
                "campaigns_kochavaeventoutcome",
                f"SELECT count(*) FROM campaigns_kochavaeventoutcome WHERE {where}",
                f"DELETE FROM campaigns_kochavaeventoutcome WHERE id = ANY(ARRAY("
                f"SELECT id FROM campaigns_kochavaeventoutcome WHERE {where} ORDER BY id LIMIT %(limit)s))",
                params,
            )

    def run_detail(self) -> None:
        for cutoff, workspaces in self.cutoffs("run_detail").items():
            params = {"cutoff": cutoff, "workspaces": workspaces}
            # A sync run goes with its partner calls' link to it; never a job's latest run, an
            # unfinished one, or one whose delivery rows (carried failures) are still kept.
            where = (
                "r.finished_at < %(cutoff)s AND r.workspace_id = ANY(%(workspaces)s) "
                "AND r.status NOT IN ('queued', 'running', 'waiting') "
                "AND r.id <> (SELECT max(l.id) FROM delivery_syncrun l WHERE l.job_id = r.job_id) "
                "AND NOT EXISTS (SELECT 1 FROM delivery_deliveryrow d WHERE d.run_id = r.id)"
            )
            self.batches(
                "delivery_syncrun",
                f"SELECT count(*) FROM delivery_syncrun r WHERE {where}",
                f"""WITH gone AS (SELECT r.id FROM delivery_syncrun r WHERE {where} ORDER BY r.finished_at
                                  LIMIT %(limit)s),
                         unlinked AS (UPDATE delivery_partnercall SET run_id = NULL
                                      WHERE run_id IN (SELECT id FROM gone) RETURNING 1)
                    DELETE FROM delivery_syncrun WHERE id IN (SELECT id FROM gone)""",
                params,
            )
            where = (
                "r.finished_at < %(cutoff)s AND r.workspace_id = ANY(%(workspaces)s) "
                "AND r.status IN ('succeeded', 'failed', 'skipped') "
                "AND r.id <> COALESCE((SELECT max(l.id) FROM sources_importrun l WHERE l.cohort_job_id = r.cohort_job_id), "
                "                     (SELECT max(l.id) FROM sources_importrun l WHERE l.event_job_id = r.event_job_id))"
            )
            self.batches(
                "sources_importrun",
                f"SELECT count(*) FROM sources_importrun r WHERE {where}",
                f"""WITH gone AS (SELECT r.id FROM sources_importrun r WHERE {where} ORDER BY r.finished_at
                                  LIMIT %(limit)s),
                         unlinked AS (UPDATE sources_importrun SET retry_of_id = NULL
                                      WHERE retry_of_id IN (SELECT id FROM gone) RETURNING 1)
                    DELETE FROM sources_importrun WHERE id IN (SELECT id FROM gone)""",
                params,
            )

    def partner_calls(self) -> None:
        for cutoff, workspaces in self.cutoffs("partner_calls").items():
            where = (
                "created_at < %(cutoff)s AND destination_id IN "
                "(SELECT id FROM delivery_destination WHERE workspace_id = ANY(%(workspaces)s))"
            )
            self.batches(
                "delivery_partnercall",
                f"SELECT count(*) FROM delivery_partnercall WHERE {where}",
                f"DELETE FROM delivery_partnercall WHERE id = ANY(ARRAY("
                f"SELECT id FROM delivery_partnercall WHERE {where} ORDER BY id LIMIT %(limit)s))",
                {"cutoff": cutoff, "workspaces": workspaces},
            )

    def import_staging(self) -> None:
        # cc_<name>_<backend pid> (audiences.bulk.scratch_table): the backend is gone, so is its load.
        self.cursor.execute(
            r"""SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname ~ '^cc_[a-z_]+_[0-9]+$'
                  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                                  WHERE a.pid = substring(c.relname FROM '_([0-9]+)$')::int)"""
        )
        for (name,) in self.cursor.fetchall():
            if not self.report.dry_run:
                with transaction.atomic():
                    self.cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
            self.report.add("import staging tables", 1)


# -- what ops see ------------------------------------------------------------------------------------

SIZED_TABLES = (
    "audiences_event",
    "audiences_membershipchange",
    "audiences_identity",
    "audiences_profile",
    "audiences_segmentmember",
    "inbound_inboundbatch",
    "inbound_inboundrequest",
    "delivery_deliveryrow",
    "delivery_syncrun",
    "delivery_partnercall",
    "sources_importrun",
    "campaigns_kochavaeventoutcome",
)


@dataclass
class TableSize:
    table: str
    bytes: int
    rows: int  # the planner's estimate
    partitions: int

    @property
    def pretty(self) -> str:
        size = float(self.bytes)
        for unit in ("B", "kB", "MB", "GB", "TB"):
            if size < 1024 or unit == "TB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
        return ""


def table_sizes() -> list[TableSize]:
    """Size on disk (with indexes and TOAST; a partitioned table's partitions added up), largest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT t.name,
                      COALESCE(sum(pg_total_relation_size(p.relid)), 0)::bigint,
                      COALESCE(sum(GREATEST(c.reltuples, 0)) FILTER (WHERE p.isleaf), 0)::bigint,
                      count(*) FILTER (WHERE p.isleaf AND p.level > 0)
               FROM unnest(%s::text[]) t(name)
               CROSS JOIN LATERAL pg_partition_tree(to_regclass(t.name)) p
               JOIN pg_class c ON c.oid = p.relid
               GROUP BY t.name""",
            [list(SIZED_TABLES)],
        )
        sizes = [TableSize(*row) for row in cursor.fetchall()]
    return sorted(sizes, key=lambda s: -s.bytes)
