"""Set-based event loading and set-based identity resolution over staging tables.

Events arrive in Amplitude's export shape (event_type, event_time, user_id, device_id, amplitude_id,
uuid, $insert_id, event_properties, …): from Export API zips (integrations.sources) and, mapped to
that shape, from /v1 track calls. Either way they go through one path:

    COPY into a temp staging table → validate in SQL → resolve identities set-wise →
    INSERT (uuid and $insert_id are unique per workspace; when a load repeats one, it is redone
    with ON CONFLICT DO NOTHING, so a replayed window or a retried call loads nothing twice) →
    add the new rows to Profile.event_counts.

No per-row ORM and no per-row json.dumps for Export lines: the raw line text is copied as it is
and PostgreSQL parses it. Callers own the transaction (a whole export window is one).
"""

from __future__ import annotations

import bisect
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import psycopg
from django.db import DatabaseError, DataError, connection, transaction

from audiences.bulk import insert_plain_first, parallel_handoff, scratch_table
from audiences.identity import MAX_IDENTITY_LENGTH, blocked_values, insert_identities_sql
from audiences.people_lock import hold_people
from audiences.profiles import insert_profiles_sql

SAMPLE_LIMIT = 100  # skipped rows kept by reference (the rest are only counted)

# Identity kinds events link through, most specific first.
EVENT_IDENTITY_KEYS: tuple[tuple[str, str], ...] = (
    ("amplitude_id", "amplitude_id"),
    ("user_id", "user_id"),
    ("device_id", "device_id"),
)


@dataclass
class EventCounts:
    read: int = 0
    loaded: int = 0
    duplicates: int = 0
    skipped: int = 0
    profiles_created: int = 0
    skipped_reasons: Counter = field(default_factory=Counter)
    skipped_samples: list[tuple[str, str]] = field(default_factory=list)  # (row reference, reason)

    def skip(self, ref: str, reason: str, n: int = 1) -> None:
        self.skipped += n
        self.skipped_reasons[reason] += n
        if len(self.skipped_samples) < SAMPLE_LIMIT:
            self.skipped_samples.append((ref, reason))

    def add(self, other: EventCounts) -> None:
        for name in ("read", "loaded", "duplicates", "skipped", "profiles_created"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped_reasons.update(other.skipped_reasons)
        room = SAMPLE_LIMIT - len(self.skipped_samples)
        self.skipped_samples.extend(other.skipped_samples[: max(room, 0)])

    def as_dict(self) -> dict:
        return {
            "rows_read": self.read,
            "events_loaded": self.loaded,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "profiles_created": self.profiles_created,
            "skipped_reasons": dict(self.skipped_reasons),
            "skipped_samples": [list(sample) for sample in self.skipped_samples],
        }


# --- identity resolution over a staging table ---------------------------------------------------


def _safe_table(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe table name {name!r}")
    return name


def resolve_staged(
    workspace_id: int, table: str, keys: Iterable[tuple[str, str]], *, source: str, create: bool = True
) -> int:
    """Fill `table.profile_id` from identities, creating people for unknown values; returns profiles created.

    `keys` are (identity kind, column) pairs, most specific first. The columns are cleaned in place
    (trimmed; blocked values and over-long ones become NULL). A row is matched by its first column
    that names a known identity; a row matching nothing creates one profile keyed by its first
    non-NULL column; afterwards every other identifier of the row is attached to the row's profile
    unless it already belongs to someone (never a silent merge of two people).
    Same race rules as audiences.identity.resolve: identity first, ON CONFLICT DO NOTHING, re-read.
    """
    table = _safe_table(table)
    keys = [(kind, _safe_table(column)) for kind, column in keys]
    hold_people(workspace_id)
    blocked = sorted(blocked_values())
    created = 0
    with connection.cursor() as cursor:
        # Which kind found or created the row's profile: that identity needs no attaching afterwards.
        cursor.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS resolved_via text")
        for _kind, column in keys:
            cursor.execute(
                f"""UPDATE {table} SET {column} = CASE
                        WHEN lower(btrim({column})) = ANY(%(blocked)s) OR length(btrim({column})) > %(max)s THEN NULL
                        ELSE btrim({column}) END
                    WHERE {column} IS NOT NULL
                      AND ({column} <> btrim({column}) OR lower({column}) = ANY(%(blocked)s) OR length({column}) > %(max)s)""",
                {"blocked": blocked, "max": MAX_IDENTITY_LENGTH},
            )
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"SELECT count(*) FROM {table}")
        if cursor.fetchone()[0] > 20_000:
            # Big snapshots: hash joins. Identities created moments ago are not in the planner's
            # statistics yet, and a nested loop over a "tiny" identity table turns into minutes.
            cursor.execute("SET LOCAL enable_nestloop = off")

        def match() -> None:
            for kind, column in keys:
                cursor.execute(
                    f"""UPDATE {table} s SET profile_id = i.profile_id, resolved_via = %s FROM audiences_identity i
                        WHERE s.profile_id IS NULL AND s.{column} IS NOT NULL
                          AND i.workspace_id = %s AND i.kind = %s AND i.value = s.{column}""",
                    [kind, workspace_id, kind],
                )

        match()
        if create:
            kind_case = " ".join(f"WHEN {column} IS NOT NULL THEN '{kind}'" for kind, column in keys)
            value_coalesce = ", ".join(column for _kind, column in keys)
            cursor.execute(
                f"""WITH wanted AS (
                        SELECT DISTINCT CASE {kind_case} END AS kind, COALESCE({value_coalesce}) AS value
                        FROM {table} WHERE profile_id IS NULL AND COALESCE({value_coalesce}) IS NOT NULL
                    ), candidates AS (
                        SELECT kind, value, nextval(pg_get_serial_sequence('audiences_profile', 'id')) AS profile_id
                        FROM wanted
                    ), identities AS (
                        {insert_identities_sql("candidates")}
                        ON CONFLICT (workspace_id, kind, value) DO NOTHING
                        RETURNING kind, value, profile_id
                    ), profiles AS (
                        {insert_profiles_sql("identities")}
                        RETURNING id
                    ), attached AS (
                        UPDATE {table} s SET profile_id = i.profile_id, resolved_via = i.kind
                        FROM identities i
                        WHERE s.profile_id IS NULL AND COALESCE({value_coalesce}) = i.value
                          AND CASE {kind_case} END = i.kind
                        RETURNING 1
                    )
                    SELECT (SELECT count(*) FROM profiles), (SELECT count(*) FROM attached)""",
                {"workspace": workspace_id, "source": source},
            )
            created = cursor.fetchone()[0]
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {table} WHERE profile_id IS NULL AND "
                f"COALESCE({value_coalesce}) IS NOT NULL)"
            )
            losers = cursor.fetchone()[0]
            if losers:  # another transaction created some of them between our read and our insert
                match()
        for kind, column in keys:
            rows = (
                f"{table} s WHERE s.{column} IS NOT NULL AND s.profile_id IS NOT NULL"
                " AND s.resolved_via IS DISTINCT FROM %(kind)s"
            )
            cursor.execute(
                insert_identities_sql(rows, kind="%(kind)s", value=f"s.{column}", profile_id="s.profile_id")
                + " ON CONFLICT (workspace_id, kind, value) DO NOTHING",
                {"workspace": workspace_id, "kind": kind, "source": source},
            )
    return created


# --- events ----------------------------------------------------------------------------------------

# Event columns taken out of the document; everything else stays in Event.data verbatim.
_MAPPED_KEYS = [
    "uuid",
    "$insert_id",
    "insert_id",
    "event_type",
    "event_time",
    "user_id",
    "device_id",
    "amplitude_id",
    "session_id",
    "platform",
    "os_name",
    "device_type",
    "country",
    "region",
    "city",
    "ip_address",
    "event_properties",
    "user_properties",
    "group_properties",
    "server_upload_time",
]
_TS_PATTERN = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}(:?\d{2})?)?$"


def _ts(expr: str) -> str:
    # Amplitude's own shape ("2024-05-01 10:00:00.123000") is recognised exactly without the regex, which
    # costs more than the rest of the row's mapping; any other text goes through the full pattern.
    return (
        f"(CASE WHEN length({expr}) = 26 AND {expr} LIKE '____-__-__ __:__:__.______' "
        f"AND translate({expr}, '0123456789', '') = '-- ::.' THEN ({expr})::timestamptz "
        f"WHEN {expr} ~ '{_TS_PATTERN}' THEN ({expr})::timestamptz END)"
    )


def _bigint(expr: str) -> str:
    return rf"(CASE WHEN {expr} ~ '^-?\d{{1,18}}$' THEN ({expr})::bigint END)"


def _obj(expr: str) -> str:
    return f"(CASE WHEN jsonb_typeof({expr}) = 'object' THEN {expr} ELSE '{{}}'::jsonb END)"


def _text(key: str, limit: int) -> str:
    return f"left(doc->>'{key}', {limit})"


# Each line is parsed ONCE and mapped to the event columns in the same pass (the parsed document
# lives only in that statement: a stored document would be read again for every column taken out).
# `skip` names why a line is not an event; ka/ku/kd are the raw identity keys of the row.
_STAGE_SQL = f"""
CREATE TEMP TABLE ev_stage ON COMMIT DROP AS
SELECT pos, ref,
    CASE WHEN doc IS NULL THEN 'malformed JSON' WHEN jsonb_typeof(doc) <> 'object' THEN 'not a JSON object'
         WHEN COALESCE(doc->>'event_type', '') = '' THEN 'missing event_type' END AS skip,
    COALESCE(doc->>'amplitude_id', '') AS ka, COALESCE(doc->>'user_id', '') AS ku,
    COALESCE(doc->>'device_id', '') AS kd,
    {_text("uuid", 64)} AS uuid, left(COALESCE(doc->>'$insert_id', doc->>'insert_id'), 255) AS insert_id,
    {_text("event_type", 255)} AS event_type, {_ts("(doc->>'event_time')")} AS event_time,
    {_text("user_id", 512)} AS user_id, {_text("device_id", 512)} AS device_id,
    {_bigint("(doc->>'amplitude_id')")} AS amplitude_id, {_bigint("(doc->>'session_id')")} AS session_id,
    {_text("platform", 64)} AS platform, {_text("os_name", 64)} AS os_name, {_text("device_type", 128)} AS device_type,
    {_text("country", 64)} AS country, {_text("region", 128)} AS region, {_text("city", 128)} AS city,
    {_text("ip_address", 64)} AS ip_address, {_obj("doc->'event_properties'")} AS event_properties,
    {_obj("doc->'user_properties'")} AS user_properties, {_obj("doc->'group_properties'")} AS group_properties,
    CASE WHEN jsonb_typeof(doc) = 'object' THEN doc - %(mapped)s::text[] END AS data,
    {_ts("(doc->>'server_upload_time')")} AS server_upload_time
FROM (SELECT pos, ref, __DOC__ AS doc FROM __RAW__ __WHERE__ OFFSET 0) parsed
"""
# OFFSET 0 keeps the subquery from being flattened: otherwise every doc->> above would parse the line again.

_INSERT_SQL = """
WITH ins AS (
    INSERT INTO audiences_event (workspace_id, profile_id, source, uuid, insert_id, event_type, event_time, user_id,
        device_id, amplitude_id, session_id, platform, os_name, device_type, country, region, city, ip_address,
        event_properties, user_properties, group_properties, data, server_upload_time, loaded_at)
    SELECT %(workspace)s, k.profile_id, %(source)s, s.uuid, s.insert_id, s.event_type,
        COALESCE(s.event_time, s.server_upload_time, now()), s.user_id,
        s.device_id, s.amplitude_id, s.session_id, s.platform, s.os_name, s.device_type, s.country, s.region, s.city,
        s.ip_address, s.event_properties, s.user_properties, s.group_properties, s.data, s.server_upload_time, now()
    FROM ev_stage s
    LEFT JOIN ev_keys k ON k.ka = s.ka AND k.ku = s.ku AND k.kd = s.kd
    WHERE s.skip IS NULL
    -- The unique indexes hold event_time (the partition key): a repeat with its time is refused by
    -- them. An event that came without a time is given one now, so its earlier copies are looked
    -- up by uuid / $insert_id alone: stored ones and those before it in this load.
    AND (s.event_time IS NOT NULL OR (
        NOT EXISTS (SELECT 1 FROM audiences_event e WHERE e.workspace_id = %(workspace)s AND e.uuid = s.uuid)
        AND NOT EXISTS (SELECT 1 FROM audiences_event e
                        WHERE e.workspace_id = %(workspace)s AND e.insert_id = s.insert_id)
        AND NOT EXISTS (SELECT 1 FROM ev_stage p
                        WHERE p.pos < s.pos AND p.skip IS NULL AND (p.uuid = s.uuid OR p.insert_id = s.insert_id))))
    __DEDUPE__
    RETURNING profile_id, event_type
), per_type AS (
    SELECT profile_id, event_type, count(*) AS n FROM ins WHERE profile_id IS NOT NULL GROUP BY 1, 2
), per_profile AS (
    SELECT profile_id, jsonb_object_agg(event_type, n) AS counts FROM per_type GROUP BY 1
), counted AS (
    -- Only the window's event types are read and rewritten; the addition is made on the row version
    -- the UPDATE locks (p.event_counts), so a concurrent load's counts are never lost.
    UPDATE audiences_profile p SET event_counts = p.event_counts || (
        SELECT jsonb_object_agg(key, value::bigint + COALESCE((p.event_counts->>key)::bigint, 0))
        FROM jsonb_each_text(pp.counts)
    ), updated_at = now()
    -- "+ 0": the workspace check must not drive the join. When the profile statistics are stale
    -- (a table analyzed nearly empty, then filled by an import), the planner takes the workspace
    -- index for one row and loops over every profile of the workspace for every counted profile.
    FROM per_profile pp WHERE p.id = pp.profile_id AND p.workspace_id + 0 = %(workspace)s
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM counted)
"""

_TRY_JSONB = """
CREATE OR REPLACE FUNCTION pg_temp.cc_try_jsonb(raw text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN raw::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$
"""


_RAW_COLUMNS = "(pos bigint GENERATED BY DEFAULT AS IDENTITY, ref text, raw text)"


def _begin(cursor, *, shared: bool = False) -> str:
    """Settings of the load transaction and the table the raw lines go to; returns its name.

    `shared`, for big loads: an UNLOGGED table of this backend's own where the role may create one
    (audiences.bulk.scratch_table), so parallel workers parse the lines on every core.
    """
    # A lost commit is redone by the next run (loads are idempotent on uuid / $insert_id), so the
    # load does not wait for its WAL flush; sorts and hash joins over a window want memory.
    cursor.execute("SET LOCAL synchronous_commit = off")
    cursor.execute("SET LOCAL work_mem = '256MB'")
    if shared:
        return scratch_table(cursor, "ev_raw", _RAW_COLUMNS)
    cursor.execute("DROP TABLE IF EXISTS ev_raw")
    cursor.execute(f"CREATE TEMP TABLE ev_raw {_RAW_COLUMNS} ON COMMIT DROP")
    return "ev_raw"


def store_event_lines(workspace_id: int, lines: Iterable[tuple[str, str]], source: str = "import") -> EventCounts:
    """Load raw JSON lines [(reference, text)], e.g. ("187520_2024-01-01_5#0.json.gz:17", '{...}').

    Malformed lines are skipped and reported by reference; the rest are loaded.
    """
    counts = EventCounts()
    with transaction.atomic(), connection.cursor() as cursor:
        raw = _begin(cursor)
        with cursor.copy(f"COPY {raw} (pos, ref, raw) FROM STDIN") as copy:
            for pos, (ref, text) in enumerate(lines):
                copy.write_row((pos, ref, text))
                counts.read += 1
        staged = _stage_from_raw(cursor, raw)
        _load_stage(cursor, workspace_id, source, counts, staged)
    return counts


# Each member's bytes go to COPY untouched: CSV format with a quote and a delimiter that JSON text
# never contains raw (control characters must be escaped in JSON), so a line is one column, verbatim.
_COPY_LINES = "COPY {raw} (raw) FROM STDIN (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
_COPY_CHUNK = 1 << 20


def store_event_files(
    workspace_id: int,
    files: Iterable[tuple[str, BinaryIO]],
    source: str = "import",
    progress: Callable[[str, int, bool], None] | None = None,
) -> EventCounts:
    """Load JSON-lines files [(name, readable byte stream)] without touching each line in Python.

    Skipped lines are reported as "<name>:<line number>". A file COPY refuses (invalid UTF-8, a raw
    control character) is loaded again line by line with the same references. `progress(what,
    lines so far, step)` hears of each file copied (step False) and of each later step (True).
    """
    counts = EventCounts()
    progress = progress or (lambda _what, _lines, _step: None)
    ranges: list[tuple[int, str]] = []  # (first pos, file name): turns a pos back into name:line
    with transaction.atomic(), connection.cursor() as cursor:
        raw = _begin(cursor, shared=True)
        next_pos = 1
        for name, stream in files:
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'pos'), %s, false)", [raw, next_pos])
            ranges.append((next_pos, name))
            try:
                with transaction.atomic(), cursor.copy(_COPY_LINES.format(raw=raw)) as copy:  # a savepoint per file
                    while chunk := stream.read(_COPY_CHUNK):
                        copy.write(chunk)
                lines = cursor.rowcount
            except (psycopg.Error, DatabaseError):
                stream.seek(0)
                lines = 0
                with cursor.copy(f"COPY {raw} (pos, raw) FROM STDIN") as copy:
                    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n")
                    for lines, line in enumerate(text, 1):
                        copy.write_row((next_pos + lines - 1, line.rstrip("\r\n").replace("\x00", "")))
            next_pos += lines
            progress(f"{next_pos - 1:,} lines read", next_pos - 1, False)
        starts = [first for first, _name in ranges]

        def ref(pos: int) -> str:
            first, name = ranges[bisect.bisect_right(starts, pos) - 1]
            return f"{name}:{pos - first + 1}"

        progress(f"{next_pos - 1:,} lines read, parsing", next_pos - 1, True)
        counts.read = staged = _stage_from_raw(cursor, raw, skip_blank=True)
        progress(f"{staged:,} events parsed, linking people and storing", staged, True)
        _load_stage(cursor, workspace_id, source, counts, staged, ref=ref)
    return counts


def store_events(workspace_id: int, rows: Iterable[dict], source: str = "track") -> EventCounts:
    """Load event dicts in Amplitude's export shape (the /v1 track path maps its calls to it first)."""

    def as_lines() -> Iterator[tuple[str, str]]:
        for pos, row in enumerate(rows):
            yield str(pos), json.dumps(row, default=str, separators=(",", ":"))

    return store_event_lines(workspace_id, as_lines(), source)


# Blank lines of a file are not events (and not counted). The first test settles almost every line
# without reading past its first character.
_NOT_BLANK = "WHERE raw IS NOT NULL AND (raw LIKE '{%%' OR btrim(raw, E' \\t\\r') <> '')"


def _stage_from_raw(cursor, raw: str, *, skip_blank: bool = False) -> int:
    """raw lines → ev_stage: every line parsed ONCE and mapped to the event's columns. Returns the lines staged."""
    cursor.execute("DROP TABLE IF EXISTS ev_stage")
    stage = _STAGE_SQL.replace("__RAW__", _safe_table(raw)).replace("__WHERE__", _NOT_BLANK if skip_blank else "")
    # Parsing is most of the work and parallel workers can take it (they pass the mapped rows back
    # to this backend, which writes ev_stage).
    with parallel_handoff(cursor):
        try:
            with transaction.atomic():  # the fast path: every line parses (a savepoint, so a failure is cheap)
                cursor.execute(stage.replace("__DOC__", "raw::jsonb"), {"mapped": _MAPPED_KEYS})
        except DataError:
            # Some line is not JSON: parse line by line, a bad line becomes NULL and is reported.
            cursor.execute(_TRY_JSONB)
            cursor.execute(stage.replace("__DOC__", "pg_temp.cc_try_jsonb(raw)"), {"mapped": _MAPPED_KEYS})
        staged = cursor.rowcount
    cursor.execute(f"DROP TABLE {raw}")
    return staged


def _load_stage(cursor, workspace_id: int, source: str, counts: EventCounts, staged: int, ref=None) -> None:
    """`ref(pos)` names a skipped line when ev_raw had no references (files copied verbatim)."""
    cursor.execute("SELECT pos, ref, skip FROM ev_stage WHERE skip IS NOT NULL")
    skipped = [(reference or ref(pos), reason) for pos, reference, reason in cursor.fetchall()]
    for reference, reason in sorted(skipped, key=lambda row: _ref_order(row[0])):
        counts.skip(reference, reason)
    cursor.execute("DROP TABLE IF EXISTS ev_keys")
    cursor.execute(
        """CREATE TEMP TABLE ev_keys ON COMMIT DROP AS
           SELECT ka, ku, kd, NULLIF(ka, '') AS amplitude_id, NULLIF(ku, '') AS user_id, NULLIF(kd, '') AS device_id,
                  NULL::bigint AS profile_id
           FROM (SELECT DISTINCT ka, ku, kd FROM ev_stage WHERE skip IS NULL) distinct_keys"""
    )
    counts.profiles_created += resolve_staged(workspace_id, "ev_keys", EVENT_IDENTITY_KEYS, source="import")
    cursor.execute("ANALYZE ev_keys")
    params = {"workspace": workspace_id, "source": source}
    # Most loads hold no event seen before (a new export window, a fresh track batch): a plain
    # INSERT costs about a third less than ON CONFLICT's speculative insertion into every unique
    # index. One repeated uuid / $insert_id (a replay, a retried call, a copy within the load)
    # aborts it at once, and the load is redone the careful way: in line order, so the first copy
    # of an event is the one kept, and every later copy is counted as a duplicate.
    insert_plain_first(
        cursor,
        _INSERT_SQL.replace("__DEDUPE__", ""),
        _INSERT_SQL.replace("__DEDUPE__", "ORDER BY s.pos ON CONFLICT DO NOTHING"),
        params,
    )
    loaded, _profiles = cursor.fetchone()
    counts.loaded += loaded
    counts.duplicates += staged - len(skipped) - loaded
    cursor.execute("DROP TABLE ev_stage")
    cursor.execute("DROP TABLE ev_keys")


def _ref_order(ref: str) -> tuple:
    head, _, line = ref.rpartition(":")
    return (head, int(line)) if line.isdigit() else (ref, 0)
