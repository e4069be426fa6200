"""Monthly partitions of the ledger and the events (audiences.partitions, migration audiences 0011).

The conversion test runs the real migration both ways inside the test's transaction: back to the
plain tables of 0010, filled there, forward again; the rollback at the end restores the database.
"""

import datetime as dt

from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audiences.partitions import EVENTS, LEDGER, ensure_partitions, is_partitioned, partition_name, partitions
from tests.delivery.helpers import make_profiles, make_segment

BEFORE, AFTER = ("audiences", "0010_identity_value_collated_c"), ("audiences", "0011_partitioned_ledger_and_events")

LEDGER_COLUMNS = "id, workspace_id, segment_id, profile_id, action, source, cause_type, cause_id, occurred_at"
EVENT_COLUMNS = (
    "id, workspace_id, profile_id, source, uuid, insert_id, event_type, event_time, user_id, device_id, "
    "event_properties, user_properties, group_properties, data, server_upload_time, loaded_at"
)


def migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def fill_plain_tables(acme, globex) -> dict:
    """Rows of both tables as 0010 stored them: several months, a year 1999, one with no event time."""
    assert not is_partitioned(connection.cursor(), LEDGER.table)
    segment = make_segment(acme)
    people = make_profiles(acme, range(40))
    other = make_profiles(globex, range(3))
    months = [dt.datetime(2026, m, 15, 12, tzinfo=dt.UTC) for m in (3, 4, 5)] + [
        dt.datetime(1999, 12, 31, 23, 59, tzinfo=dt.UTC)
    ]
    with connection.cursor() as cursor:
        for i, profile in enumerate(people):
            cursor.execute(
                "INSERT INTO audiences_membershipchange (workspace_id, segment_id, profile_id, action, source, "
                "cause_type, cause_id, occurred_at) VALUES (%s, %s, %s, %s, 'import', 'import_run', %s, %s)",
                [acme.pk, segment.pk, profile, "added" if i % 3 else "removed", i, months[i % 4]],
            )
        for i, profile in enumerate(people + other):
            when = None if i == 7 else months[i % 4] + dt.timedelta(minutes=i)
            workspace = acme.pk if profile in people else globex.pk
            cursor.execute(
                "INSERT INTO audiences_event (workspace_id, profile_id, source, uuid, insert_id, event_type, "
                "event_time, user_id, device_id, event_properties, user_properties, group_properties, data, "
                "server_upload_time, loaded_at) VALUES (%s, %s, 'import', %s, %s, 'Purchase', %s, %s, %s, "
                "%s, '{}', '{}', %s, %s, now())",
                [
                    workspace,
                    profile,
                    f"uuid-{i}",
                    f"ins-{i}" if i % 2 else None,
                    when,
                    f"u{i}",
                    f"d{i}",
                    f'{{"revenue": {i}}}',
                    f'{{"n": {i}}}',
                    None if i == 7 else (when or months[0]),
                ],
            )
        # What points at these rows by id: a sync job's ledger cursor and a Kochava outcome.
        cursor.execute("SELECT max(id) FROM audiences_membershipchange WHERE segment_id = %s", [segment.pk])
        cursor_id = cursor.fetchone()[0]
        cursor.execute("SELECT id FROM audiences_event WHERE uuid = 'uuid-5'")
        event_id = cursor.fetchone()[0]
    return {"segment": segment, "ledger_cursor": cursor_id, "event_id": event_id}


def test_the_migration_converts_both_tables_without_losing_or_duplicating_a_row(acme, globex):
    migrate(BEFORE)
    try:
        made = fill_plain_tables(acme, globex)
        ledger_before = rows(f"SELECT {LEDGER_COLUMNS} FROM audiences_membershipchange ORDER BY id")
        events_before = rows(f"SELECT {EVENT_COLUMNS} FROM audiences_event ORDER BY id")
        no_time = rows("SELECT id, loaded_at FROM audiences_event WHERE event_time IS NULL")
        assert len(ledger_before) == 40 and len(events_before) == 43 and len(no_time) == 1
    finally:
        migrate(AFTER)

    cursor = connection.cursor()
    assert is_partitioned(cursor, LEDGER.table) and is_partitioned(cursor, EVENTS.table)
    assert rows(f"SELECT {LEDGER_COLUMNS} FROM audiences_membershipchange ORDER BY id") == ledger_before
    # Every event with its id and contents; the one without a time took its arrival (no upload time).
    expected = [row[:7] + (no_time[0][1],) + row[8:] if row[0] == no_time[0][0] else row for row in events_before]
    assert rows(f"SELECT {EVENT_COLUMNS} FROM audiences_event ORDER BY id") == expected
    for table in (LEDGER.table, EVENTS.table):
        assert rows(f"SELECT count(*) = count(DISTINCT id) FROM {table}") == [(True,)]

    # A month per month that held rows, the months ahead, and the default one for 1999.
    names = {p.name for p in partitions(cursor, LEDGER.table)}
    assert {partition_name(LEDGER.table, dt.date(2026, m, 1)) for m in (3, 4, 5)} <= names
    assert f"{LEDGER.table}_default" in names
    assert rows("SELECT count(*) FROM audiences_membershipchange_default") == [(10,)]
    assert rows("SELECT count(*) FROM audiences_membershipchange_p2026_04") == [(10,)]

    # What referred to rows by id finds the same rows, and new rows go on after the old ids.
    assert rows("SELECT segment_id FROM audiences_membershipchange WHERE id = %s", [made["ledger_cursor"]]) == [
        (made["segment"].pk,)
    ]
    assert rows("SELECT uuid FROM audiences_event WHERE id = %s", [made["event_id"]]) == [("uuid-5",)]
    cursor.execute(
        "INSERT INTO audiences_membershipchange (workspace_id, segment_id, profile_id, action, source, cause_type, "
        "occurred_at) SELECT workspace_id, segment_id, profile_id, 'added', 'manual', 'manual', now() "
        "FROM audiences_membershipchange LIMIT 1 RETURNING id"
    )
    assert cursor.fetchone()[0] > max(row[0] for row in ledger_before)
    # The same event at the same time is still refused by the unique index (the time is in it).
    cursor.execute(
        "INSERT INTO audiences_event (workspace_id, source, uuid, event_type, event_time, event_properties, "
        "user_properties, group_properties, data, loaded_at) SELECT workspace_id, source, uuid, event_type, "
        "event_time, '{}', '{}', '{}', '{}', now() FROM audiences_event WHERE uuid = 'uuid-5' "
        "ON CONFLICT DO NOTHING"
    )
    assert cursor.rowcount == 0


def test_the_migration_back_keeps_every_row_too(acme):
    segment = make_segment(acme)
    people = make_profiles(acme, range(5))
    from audiences.ledger import Cause, apply_changes

    apply_changes(segment, add=people, cause=Cause("manual", "test"))
    before = rows(f"SELECT {LEDGER_COLUMNS} FROM audiences_membershipchange ORDER BY id")
    migrate(BEFORE)
    try:
        assert not is_partitioned(connection.cursor(), LEDGER.table)
        assert rows(f"SELECT {LEDGER_COLUMNS} FROM audiences_membershipchange ORDER BY id") == before
    finally:
        migrate(AFTER)
    assert rows(f"SELECT {LEDGER_COLUMNS} FROM audiences_membershipchange ORDER BY id") == before


def test_partitions_are_created_ahead_and_a_months_rows_leave_the_default_partition(acme):
    segment = make_segment(acme)
    (person,) = make_profiles(acme, range(1))
    far = dt.datetime(2031, 7, 4, tzinfo=dt.UTC)
    with connection.cursor() as cursor:
        # A row of a month nobody created yet is not refused: it waits in the default partition.
        cursor.execute(
            "INSERT INTO audiences_membershipchange (workspace_id, segment_id, profile_id, action, source, "
            "cause_type, occurred_at) VALUES (%s, %s, %s, 'added', 'manual', 'manual', %s) RETURNING id",
            [acme.pk, segment.pk, person, far + dt.timedelta(days=40)],
        )
        row_id = cursor.fetchone()[0]
        assert rows("SELECT count(*) FROM audiences_membershipchange_default WHERE id = %s", [row_id]) == [(1,)]

    created = ensure_partitions(now=far, months_ahead=2)
    months = [dt.date(2031, m, 1) for m in (7, 8, 9)]
    assert created == [partition_name(t.table, m) for t in (LEDGER, EVENTS) for m in months]
    assert ensure_partitions(now=far, months_ahead=2) == []  # already there: nothing twice

    assert rows("SELECT count(*) FROM audiences_membershipchange_default WHERE id = %s", [row_id]) == [(0,)]
    assert rows("SELECT count(*) FROM audiences_membershipchange_p2031_08 WHERE id = %s", [row_id]) == [(1,)]
    assert rows("SELECT count(*) FROM audiences_membershipchange WHERE id = %s", [row_id]) == [(1,)]
    # The new partitions carry the parent's indexes (made on attach).
    assert rows("SELECT count(*) FROM pg_indexes WHERE tablename = 'audiences_event_p2031_09'") == [
        (len(EVENTS.indexes) + 1,)
    ]


def test_the_partitions_command_creates_ahead_and_lists(acme, capsys):
    call_command("partitions", "--months-ahead", "4")
    out = capsys.readouterr().out
    assert "audiences_membershipchange:" in out and "audiences_event:" in out and "and a default one" in out
    now = dt.datetime.now(dt.UTC)
    month = dt.date(now.year, now.month, 1)
    for _ in range(4):
        month = dt.date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    assert rows("SELECT to_regclass(%s) IS NOT NULL", [partition_name(EVENTS.table, month)]) == [(True,)]


def test_the_consoles_queries_use_the_partition_indexes(acme):
    """The segment page's ledger (segment, id) and the person's timeline (profile, event_time)."""
    ensure_partitions()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM audiences_membershipchange WHERE segment_id = 1 ORDER BY id DESC LIMIT 50"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "ledger_segment_cursor" in plan or "segment_id_id_idx" in plan
        cursor.execute("EXPLAIN SELECT id FROM audiences_event WHERE profile_id = 1 ORDER BY event_time DESC LIMIT 50")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "profile_id_event_time_idx" in plan or "event_profile_time" in plan
