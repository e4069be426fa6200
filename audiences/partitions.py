"""Monthly partitions of the membership ledger and the events (docs/operations.md, "Partitions").

Both tables are PostgreSQL declarative partitions, by RANGE of their time column, one partition per
calendar month (UTC) plus a DEFAULT partition, so no row is ever refused: a row whose month has no
partition yet (an event from 2015, a clock far ahead) lands in the default one. Their primary key is
(id, time column): PostgreSQL wants the partition key in every unique index, and `id` still comes
from one sequence, so it stays unique and time-ordered, and every id cursor (sync jobs and runs,
Kochava streams, erasure) keeps pointing at the same row.

`ensure_partitions` creates the current month and the next PARTITION_MONTHS_AHEAD months; the beat
(audiences.tasks.maintain_partitions, daily) and `manage.py partitions` call it. Were rows of a month
already in the default partition (a month that was never created ahead), they are moved into the
new month's table in the same transaction as it is attached, so nothing is lost or counted twice.

`convert_to_partitioned` / `convert_to_plain` are the migration's two directions (audiences 0011).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone


@dataclass(frozen=True)
class PartitionedTable:
    table: str
    key: str  # the time column partitioned on
    indexes: tuple[str, ...]  # CREATE INDEX statements on the parent ({t} = the table)


# The indexes the console's queries use (audiences.models explains each); on a partitioned table
# each one is a partitioned index, made on every partition, present and future.
LEDGER = PartitionedTable(
    "audiences_membershipchange",
    "occurred_at",
    (
        "CREATE INDEX ledger_segment_cursor ON {t} (segment_id, id)",
        "CREATE INDEX ledger_segment_time ON {t} (segment_id, occurred_at)",
        "CREATE INDEX ledger_profile ON {t} (profile_id, id)",
        "CREATE INDEX ledger_workspace_cursor ON {t} (workspace_id, id)",
    ),
)
EVENTS = PartitionedTable(
    "audiences_event",
    "event_time",
    (
        "CREATE INDEX event_profile_time ON {t} (profile_id, event_time)",
        # An event is the same event when its uuid (or $insert_id) AND its time are the same: the
        # partition key must be part of every unique index. A replayed export or a retried call
        # carries its event's time, so the repeat is still refused (docs/operations.md).
        "CREATE UNIQUE INDEX event_uuid_unique ON {t} (workspace_id, uuid, event_time) WHERE uuid IS NOT NULL",
        (
            "CREATE UNIQUE INDEX event_insert_id_unique ON {t} (workspace_id, insert_id, event_time)"
            " WHERE insert_id IS NOT NULL"
        ),
    ),
)
TABLES = (LEDGER, EVENTS)

# The plain tables' indexes as audiences 0010 left them (the migration's way back).
PLAIN_INDEXES = {
    LEDGER.table: LEDGER.indexes,
    EVENTS.table: (
        "CREATE INDEX event_profile_time ON {t} (profile_id, event_time)",
        "CREATE UNIQUE INDEX event_uuid_unique ON {t} (workspace_id, uuid) WHERE uuid IS NOT NULL",
        "CREATE UNIQUE INDEX event_insert_id_unique ON {t} (workspace_id, insert_id) WHERE insert_id IS NOT NULL",
    ),
}

_NAME = re.compile(r"_p(\d{4})_(\d{2})$")


def month_start(when: dt.datetime | dt.date) -> dt.date:
    return dt.date(when.year, when.month, 1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_p{month.year:04d}_{month.month:02d}"


def _bound(month: dt.date) -> str:
    return f"{month.isoformat()} 00:00:00+00"


@dataclass(frozen=True)
class Partition:
    name: str
    month: dt.date | None  # None: the default partition

    @property
    def upper(self) -> dt.datetime | None:
        return None if self.month is None else dt.datetime.combine(next_month(self.month), dt.time(), dt.UTC)


def partitions(cursor, table: str) -> list[Partition]:
    """The table's partitions, oldest month first, the default one last."""
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [table],
    )
    found = []
    for name, bound in cursor.fetchall():
        match = _NAME.search(name)
        if bound == "DEFAULT" or not match:
            found.append(Partition(name, None))
        else:
            found.append(Partition(name, dt.date(int(match[1]), int(match[2]), 1)))
    return sorted(found, key=lambda p: (p.month is None, p.month or dt.date.min))


def is_partitioned(cursor, table: str) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
    row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def create_month(cursor, spec: PartitionedTable, month: dt.date) -> bool:
    """Create `month`'s partition unless it exists; returns whether it was created.

    Rows of that month already in the default partition are moved into it in the same
    transaction, before it is attached: PostgreSQL refuses to attach a range the default
    partition still holds rows of.
    """
    name = partition_name(spec.table, month)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        return False
    lower, upper = _bound(month), _bound(next_month(month))
    default = f"{spec.table}_default"
    with transaction.atomic(using=connection.alias):
        # Waiting behind a long query for the parent's lock would hold up every writer queued
        # behind this statement: give up after a few seconds and try again at the next run.
        cursor.execute("SET LOCAL lock_timeout = %s", [f"{settings.PARTITION_LOCK_TIMEOUT_SECONDS}s"])
        cursor.execute(f"CREATE TABLE {name} (LIKE {spec.table} INCLUDING DEFAULTS)")
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [default])
        if cursor.fetchone()[0]:
            cursor.execute(
                f"WITH moved AS (DELETE FROM {default} WHERE {spec.key} >= %s AND {spec.key} < %s RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM moved",
                [lower, upper],
            )
        # The range as a CHECK first: ATTACH then trusts it instead of scanning the new table.
        cursor.execute(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_range "
            f"CHECK ({spec.key} IS NOT NULL AND {spec.key} >= '{lower}' AND {spec.key} < '{upper}')"
        )
        cursor.execute(f"ALTER TABLE {spec.table} ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}')")
        cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")
    return True


def ensure_partitions(now: dt.datetime | None = None, months_ahead: int | None = None) -> list[str]:
    """Create this month's and the next months' partitions of both tables; returns the new ones."""
    now = now or timezone.now()
    ahead = settings.PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
    created = []
    with connection.cursor() as cursor:
        for spec in TABLES:
            if not is_partitioned(cursor, spec.table):
                continue
            month = month_start(now.astimezone(dt.UTC))
            for _ in range(ahead + 1):
                if create_month(cursor, spec, month):
                    created.append(partition_name(spec.table, month))
                month = next_month(month)
    return created


# -- the migration ---------------------------------------------------------------------------------

# Rows older than this or later than the months created ahead go to the default partition rather
# than one table each (a bad clock must not make hundreds of tables).
_OLDEST_MONTH = dt.date(2000, 1, 1)


def _columns(cursor, table: str) -> list[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _take_sequence(cursor, old: str, new: str) -> None:
    """Give `new`.id a sequence that goes on where `old`'s left off (ids are never reused)."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [old])
    old_seq = cursor.fetchone()[0]
    seq = f"{new}_id_seq"
    cursor.execute(f"ALTER SEQUENCE {old_seq} RENAME TO {seq}_was")
    cursor.execute(f"CREATE SEQUENCE {seq} OWNED BY {new}.id")
    cursor.execute(f"SELECT last_value, is_called FROM {seq}_was")
    last, called = cursor.fetchone()
    cursor.execute("SELECT setval(%s, %s, %s)", [seq, last, called])
    cursor.execute(f"ALTER TABLE {new} ALTER COLUMN id SET DEFAULT nextval('{seq}')")


def _swap_in(cursor, spec: PartitionedTable, *, partitioned: bool, now: dt.datetime) -> None:
    old = f"{spec.table}_was"
    cursor.execute(f"ALTER TABLE {spec.table} RENAME TO {old}")
    # Index and constraint names are per schema: the old table's go first. Its rows need no index
    # to be read once, and the new table's indexes are built after the copy (faster than row by row).
    cursor.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
        [old],
    )
    for (index,) in cursor.fetchall():
        cursor.execute(f"DROP INDEX {index}")
    cursor.execute(f"ALTER TABLE {old} DROP CONSTRAINT {spec.table}_pkey")
    columns = _columns(cursor, old)
    by = f" PARTITION BY RANGE ({spec.key})" if partitioned else ""
    cursor.execute(f"CREATE TABLE {spec.table} (LIKE {old} INCLUDING DEFAULTS){by}")
    # The old id was an identity column; a plain sequence serves partitioned tables on every
    # PostgreSQL version the console supports (identity there needs 17) and pg_get_serial_sequence
    # still finds it.
    cursor.execute(f"ALTER TABLE {spec.table} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    _take_sequence(cursor, old, spec.table)
    select = [f'"{c}"' for c in columns]
    if spec.key == "event_time" and partitioned:
        # The partition key is part of the primary key, so never null: an event that came without
        # a time gets its upload time, else its arrival, as Amplitude itself does.
        select[columns.index("event_time")] = "COALESCE(event_time, server_upload_time, loaded_at)"
        cursor.execute(f"ALTER TABLE {spec.table} ALTER COLUMN event_time SET DEFAULT now()")
        cursor.execute(f"ALTER TABLE {spec.table} ALTER COLUMN event_time SET NOT NULL")
    if partitioned:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', {spec.key} AT TIME ZONE 'UTC')::date FROM {old} "
            f"WHERE {spec.key} IS NOT NULL"
        )
        months = {row[0] for row in cursor.fetchall()}
        month, last = month_start(now.astimezone(dt.UTC)), None
        for _ in range(settings.PARTITION_MONTHS_AHEAD + 1):
            months.add(month)
            last, month = month, next_month(month)
        for month in sorted(m for m in months if _OLDEST_MONTH <= m <= last):
            name = partition_name(spec.table, month)
            cursor.execute(
                f"CREATE TABLE {name} PARTITION OF {spec.table} "
                f"FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(next_month(month))}')"
            )
        cursor.execute(f"CREATE TABLE {spec.table}_default PARTITION OF {spec.table} DEFAULT")
    names = ", ".join(f'"{c}"' for c in columns)
    cursor.execute(f"INSERT INTO {spec.table} ({names}) SELECT {', '.join(select)} FROM {old}")
    key = f"id, {spec.key}" if partitioned else "id"
    cursor.execute(f"ALTER TABLE {spec.table} ADD CONSTRAINT {spec.table}_pkey PRIMARY KEY ({key})")
    for statement in spec.indexes if partitioned else PLAIN_INDEXES[spec.table]:
        cursor.execute(statement.format(t=spec.table))
    if not partitioned and spec.key == "event_time":
        cursor.execute(f"ALTER TABLE {spec.table} ALTER COLUMN event_time DROP NOT NULL")
        cursor.execute(f"ALTER TABLE {spec.table} ALTER COLUMN event_time DROP DEFAULT")
    cursor.execute(f"DROP TABLE {old}")
    cursor.execute(f"DROP SEQUENCE IF EXISTS {spec.table}_id_seq_was")
    cursor.execute(f"ANALYZE {spec.table}")


def convert_to_partitioned(cursor, spec: PartitionedTable, now: dt.datetime | None = None) -> None:
    """Rebuild a plain table as a partitioned one with every row, id and sequence position kept.

    One transaction (the migration's): readers see the old table until it commits, writers wait
    for it. docs/operations.md gives the time it takes per million rows.
    """
    _swap_in(cursor, spec, partitioned=True, now=now or timezone.now())


def convert_to_plain(cursor, spec: PartitionedTable) -> None:
    """The way back: one plain table with the indexes of audiences 0010."""
    _swap_in(cursor, spec, partitioned=False, now=timezone.now())
