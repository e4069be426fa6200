"""Cohort import: request → poll → download → COPY → upsert profiles → set difference into the ledger.

Per cohort, everything that changes the console's data happens in ONE transaction (staging,
profiles, identities, properties, segment, ledger): a failed or killed run leaves the segment's
membership exactly as it was. The file is streamed to a temporary file by a download thread and,
while it grows, from there into COPY (row by row through csv.reader if COPY refuses a row), so a
2-million-row cohort never sits in memory and PostgreSQL parses it while it is still arriving
(the file and its readers: integrations.sources.cohort_files).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from audiences.bulk import insert_plain_first, parallel_handoff, scratch_table
from audiences.identity import MAX_IDENTITY_LENGTH, blocked_values
from audiences.ledger import Cause, replace_members
from audiences.models import Segment, SegmentType
from integrations.sources import quota
from integrations.sources.amplitude import AmplitudeClient, AmplitudeError
from integrations.sources.cohort_files import (
    CHUNK,
    CORRUPT,
    Cancelled,
    CohortFileError,
    GrowingDownload,
    data_rows,
    read_header,
)
from integrations.sources.models import CohortImportJob, ImportRun
from integrations.sources.runs import LiveProgress, bump_counts, transition

logger = logging.getLogger(__name__)

# File column → profile properties, as Lytics' Amplitude cohort import maps them (docs/partner-apis.md section 1).
FIELD_MAP: dict[str, tuple[str, ...]] = {
    "user_id": ("amplitude_user_id",),
    "carrier": ("amplitude_carrier",),
    "city": ("city",),
    "country": ("country",),
    "device": ("amplitude_device",),
    "device_type": ("amplitude_device_type",),
    "dma": ("amplitude_dma",),
    "language": ("language",),
    "library": ("amplitude_library",),
    "os": ("amplitude_os",),
    "platform": ("amplitude_platform",),
    "region": ("region", "state"),
    "start_version": ("amplitude_start_version",),
    "version": ("amplitude_version",),
}
CUSTOM_PREFIX = "amplitude_"  # other user properties land as amplitude_<name>


@dataclass
class CsvPlan:
    """Which file positions feed which staging columns: tolerant of order, repeats and extras."""

    header: list[str]
    amplitude_id: int
    user_id: int | None
    properties: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # (position, property keys)

    @classmethod
    def from_header(cls, header: list[str]) -> CsvPlan:
        names = [name.strip().lower() for name in header]
        if "amplitude_id" not in names:
            shown = ", ".join(header[:20]) or "(empty header)"
            raise CohortFileError(f"The cohort file has no amplitude_id column (columns: {shown}).")
        seen: set[str] = set()
        properties = []
        for position, (raw, name) in enumerate(zip(header, names, strict=True)):
            if name in seen or not name:  # a repeated column (Amplitude repeats amplitude_id) or a blank one
                seen.add(name)
                continue
            seen.add(name)
            if name == "amplitude_id":
                continue
            properties.append((position, FIELD_MAP.get(name) or (CUSTOM_PREFIX + raw.strip(),)))
        user_id = names.index("user_id") if "user_id" in names else None
        return cls(header, names.index("amplitude_id"), user_id, properties)


@dataclass
class CohortResult:
    rows_read: int = 0
    staged: int = 0
    profiles_created: int = 0
    profiles_updated: int = 0
    entered: int = 0
    exited: int = 0
    skipped_reasons: Counter = field(default_factory=Counter)
    skipped_samples: list = field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped_reasons[reason] += 1
        if len(self.skipped_samples) < 100:
            self.skipped_samples.append([f"line {line}", reason])

    def as_counts(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "profiles_created": self.profiles_created,
            "profiles_updated": self.profiles_updated,
            "entered": self.entered,
            "exited": self.exited,
            "skipped": sum(self.skipped_reasons.values()),
            "skipped_reasons": dict(self.skipped_reasons),
            "skipped_samples": self.skipped_samples,
        }


# Staging tables of one cohort load (temporary: private to the connection, dropped at commit).
RAW = "cohort_raw"  # the file's columns as text, c0 … c<n-1>, plus the row's line number
STAGE = "cohort_stage"  # one row per file row: cleaned identifiers, properties, the matched profile
NEW = "cohort_new"  # one row per person to create: the identifier that keys them, a fresh id, properties
ROWS = "cohort_rows"  # one row per file row that has a person: its identifiers and profile id
MEMBERS = "cohort_members"  # the snapshot handed to audiences.ledger.replace_members


def _create_raw(cursor, width: int) -> str:
    """The table the file is copied into, c0 … c<width-1> and the line number; returns its name.

    Where the role may create one, an UNLOGGED table of this backend's own (audiences.bulk.
    scratch_table): parallel workers can scan it, so _stage cleans identifiers and builds
    properties on every core.
    """
    columns = (
        f"(line bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 2), "
        f"{', '.join(f'c{i} text' for i in range(width))})"
    )
    return scratch_table(cursor, RAW, columns)


def _copy_fast(cursor, raw: str, body: BinaryIO, width: int) -> None:
    """The whole body straight into COPY (FORMAT csv): PostgreSQL parses it, no Python per row.

    Raises (and the caller falls back to _copy_checked) on any row PostgreSQL refuses: a row with
    the wrong number of fields, a blank line, invalid UTF-8.
    """
    columns = ", ".join(f"c{i}" for i in range(width))
    # FORCE_NULL: a quoted empty value ("", how Amplitude writes a missing property) arrives as NULL,
    # so staging needs no NULLIF per column.
    with cursor.copy(f"COPY {raw} ({columns}) FROM STDIN (FORMAT csv, FORCE_NULL ({columns}))") as copy:
        while chunk := body.read(CHUNK):
            copy.write(chunk)


def _copy_checked(cursor, raw: str, binary: BinaryIO, width: int, result: CohortResult) -> None:
    """Row by row through csv.reader: rows of the wrong width are skipped and reported by line."""
    columns = ", ".join(f"c{i}" for i in range(width))
    line = 1
    with cursor.copy(f"COPY {raw} (line, {columns}) FROM STDIN") as copy:
        for row in data_rows(binary):
            line += 1
            if len(row) != width:
                if not row:  # a blank line (e.g. a trailing newline) is not a row
                    continue
                result.rows_read += 1
                result.skip(line, f"{len(row)} fields where the header has {width}")
                continue
            result.rows_read += 1
            copy.write_row((line, *[value if value != "" else None for value in row]))  # like FORCE_NULL
            result.staged += 1


def _clean_id(column: str) -> str:
    """SQL for an identifier column cleaned like audiences.identity.clean_identity (blocked → NULL)."""
    return (
        f"CASE WHEN lower(btrim({column})) = ANY(%(blocked)s) OR length(btrim({column})) > %(max_len)s "
        f"THEN NULL ELSE NULLIF(btrim({column}), '') END"
    )


def _stage(cursor, raw: str, job, plan: CsvPlan, params: dict) -> None:
    """raw rows → STAGE: cleaned identifiers, the row's properties as jsonb, the profile it matches now."""
    amp = _clean_id(f"r.c{plan.amplitude_id}")
    uid = _clean_id(f"r.c{plan.user_id}") if plan.user_id is not None else "NULL::text"
    keys: list[str] = []
    values: list[str] = []
    if job.amplitude_id_field:
        keys.append(job.amplitude_id_field)
        values.append(amp)
    for position, names in plan.properties:
        for name in names:
            keys.append(name)
            values.append(uid if position == plan.user_id else f"r.c{position}")
    params["prop_keys"] = keys
    # jsonb_object(text[], text[]) is several times cheaper per row than jsonb_build_object, which
    # looks up every argument's type again on every call.
    props = f"jsonb_object(%(prop_keys)s::text[], ARRAY[{', '.join(values)}]::text[])" if keys else "'{}'::jsonb"
    # One pass over the file's rows: clean, build properties and find known people by a hash join
    # (amplitude_id first, then user_id, like audiences.events.resolve_staged). Cleaning and
    # building properties are most of the work, all of it in the subquery, which parallel workers
    # run when raw is not a temporary table (see _create_raw): OFFSET 0 keeps it whole, each cleaned
    # identifier computed there once (once more inside the properties), not again in the joins.
    with parallel_handoff(cursor):
        cursor.execute(
            f"""CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS
            SELECT c.line, c.amplitude_id, c.user_id, c.props,
                   CASE WHEN c.amplitude_id IS NOT NULL THEN 'amplitude_id'
                        WHEN c.user_id IS NOT NULL THEN 'user_id' END AS key_kind,
                   COALESCE(c.amplitude_id, c.user_id) AS key_value,
                   COALESCE(ia.profile_id, iu.profile_id) AS profile_id,
                   CASE WHEN ia.profile_id IS NOT NULL THEN 'amplitude_id'
                        WHEN iu.profile_id IS NOT NULL THEN 'user_id' END AS resolved_via,
                   (ia.profile_id IS NOT NULL OR iu.profile_id IS NOT NULL) AS existed,
                   ia.profile_id IS NOT NULL AS amplitude_id_known, iu.profile_id IS NOT NULL AS user_id_known
            FROM (SELECT r.line, {amp} AS amplitude_id, {uid} AS user_id, jsonb_strip_nulls({props}) AS props
                  FROM {raw} r OFFSET 0) c
            LEFT JOIN audiences_identity ia ON ia.workspace_id = %(workspace)s AND ia.kind = 'amplitude_id'
                 AND ia.value = c.amplitude_id
            LEFT JOIN audiences_identity iu ON iu.workspace_id = %(workspace)s AND iu.kind = 'user_id'
                 AND iu.value = c.user_id""",
            params,
        )
    cursor.execute(f"DROP TABLE {raw}")


def _create_people(cursor, params: dict) -> int:
    """Profiles for the rows nobody knows, created WITH their properties (no UPDATE afterwards).

    Same race rule as audiences.identity.resolve: the identity insert decides who creates a person.
    Profiles go in first here (one pass, no join); a profile whose identity lost to another copy
    is deleted again before commit and its rows are matched to the winner's profile. The losers
    are of two kinds, and one path settles both:
    - another transaction created the person between our read and our insert;
    - the file names the key twice. A cohort file names each person once, so NEW takes every row
      without looking for repeats (an anti-join over the whole file cost more than a second); a
      repeat makes the plain identity insert fail and the ON CONFLICT redo, in line order from
      the last, keeps the LAST row's person, as if the file were read top to bottom.
    """
    # NEW is narrow (the key, the row that supplies the properties, the new id): the properties are
    # read from STAGE by line when the profiles are written.
    cursor.execute(
        f"""CREATE TEMP TABLE {NEW} ON COMMIT DROP AS
            SELECT key_kind, key_value, line, nextval(%(profile_seq)s::regclass) AS profile_id
            FROM {STAGE} WHERE profile_id IS NULL AND key_value IS NOT NULL""",
        params,
    )
    wanted = cursor.rowcount
    if not wanted:
        return 0
    # Its size and key statistics, so the planner hashes NEW (not STAGE) in the joins that follow.
    cursor.execute(f"ANALYZE {NEW} (key_kind, key_value, line)")
    cursor.execute(
        f"""INSERT INTO audiences_profile (id, workspace_id, properties, event_counts, created_at, updated_at)
            SELECT n.profile_id, %(workspace)s, s.props || %(new_person)s::jsonb, '{{}}'::jsonb, now(), now()
            FROM {NEW} n JOIN {STAGE} s ON s.line = n.line""",
        params,
    )
    created = _insert_identities(
        cursor,
        f"""INSERT INTO audiences_identity (workspace_id, kind, value, profile_id, source, created_at)
            SELECT %(workspace)s, key_kind, key_value, profile_id, 'import', now() FROM {NEW}
            ORDER BY key_kind COLLATE "C", key_value COLLATE "C", line DESC""",
        params,
    )
    if created < wanted:  # some keys went to another copy: drop the losing profiles, then give the
        # rows whose key another transaction won to its person (a repeat's rows keep profile_id
        # NULL: _row_profiles matches them to the last row's person by key)
        cursor.execute(
            f"""WITH lost AS (
                    DELETE FROM {NEW} n WHERE NOT EXISTS (
                        SELECT 1 FROM audiences_identity i WHERE i.workspace_id = %(workspace)s
                          AND i.kind = n.key_kind AND i.value = n.key_value AND i.profile_id = n.profile_id)
                    RETURNING profile_id)
                DELETE FROM audiences_profile WHERE id IN (SELECT profile_id FROM lost)""",
            params,
        )
        cursor.execute(
            f"""UPDATE {STAGE} s SET profile_id = i.profile_id, resolved_via = i.kind, existed = true
                FROM audiences_identity i
                WHERE s.profile_id IS NULL AND i.workspace_id = %(workspace)s AND i.kind = s.key_kind
                  AND i.value = s.key_value
                  AND NOT EXISTS (SELECT 1 FROM {NEW} n WHERE n.key_kind = s.key_kind AND n.key_value = s.key_value)""",
            params,
        )
    return created


def _insert_identities(cursor, insert: str, params: dict) -> int:
    """Run an identity INSERT … SELECT; returns the rows inserted. Values already held are skipped.

    Plain first (audiences.bulk.insert_plain_first): the values were checked against the table when
    staged, so it nearly always succeeds. A value repeated in the file, or taken by another
    transaction meanwhile, has it redone with ON CONFLICT DO NOTHING, which settles both; the
    statement's ORDER BY decides which copy is kept.
    """
    insert_plain_first(cursor, insert, insert + " ON CONFLICT (workspace_id, kind, value) DO NOTHING", params)
    return cursor.rowcount


def _row_profiles(cursor) -> None:
    """ROWS: each file row's identifiers with the profile it belongs to, matched before (STAGE) or
    created by this load (NEW). One hash join, written once and read by every later step (instead
    of an UPDATE of a million staging rows, or the same join redone per step)."""
    cursor.execute(
        f"""CREATE TEMP TABLE {ROWS} ON COMMIT DROP AS
            SELECT s.amplitude_id, s.user_id, COALESCE(s.profile_id, n.profile_id) AS profile_id,
                   COALESCE(s.resolved_via, n.key_kind) AS resolved_via, s.amplitude_id_known, s.user_id_known
            FROM {STAGE} s LEFT JOIN {NEW} n ON s.profile_id IS NULL AND n.key_kind = s.key_kind
                 AND n.key_value = s.key_value
            WHERE COALESCE(s.profile_id, n.profile_id) IS NOT NULL"""
    )


def _attach_identities(cursor, params: dict) -> None:
    """Every other identifier of a row joins the row's profile, unless it already belongs to someone.

    An identifier that STAGE found in the table already belongs to someone: only the others are
    tried (a re-import does not probe the unique index once per member just to conflict), in
    value order for the indexes' sake. ON CONFLICT still settles races and repeats in the file.
    """
    for kind in ("amplitude_id", "user_id"):
        _insert_identities(
            cursor,
            f"""INSERT INTO audiences_identity (workspace_id, kind, value, profile_id, source, created_at)
                SELECT %(workspace)s, %(kind)s, {kind}, profile_id, 'import', now() FROM {ROWS}
                WHERE {kind} IS NOT NULL AND NOT {kind}_known AND resolved_via IS DISTINCT FROM %(kind)s
                ORDER BY {kind}""",
            {**params, "kind": kind},
        )


def load_cohort_file(run: ImportRun, job: CohortImportJob, cohort: dict, binary: BinaryIO) -> CohortResult:
    """Apply one downloaded cohort file: all of it in one transaction, or nothing."""
    header, body = read_header(binary)
    plan = CsvPlan.from_header(header)
    width = len(header)
    result = CohortResult()
    cohort_id, cohort_name = str(cohort["id"]), str(cohort.get("name") or cohort["id"])
    last_computed = _epoch(cohort.get("lastComputed"))
    cause = Cause("import", "import_run", run.pk)
    params: dict = {
        "workspace": job.workspace_id,
        "cid": cohort_id,
        "cname": cohort_name,
        "blocked": sorted(blocked_values()),
        "max_len": MAX_IDENTITY_LENGTH,
        "names_field": job.cohort_names_field,
        "last": last_computed.isoformat() if last_computed else None,
    }
    # LiveProgress: the console sees the load move before it commits.
    with LiveProgress(run) as progress, transaction.atomic(), connection.cursor() as cursor:
        # A lost commit is redone by the next run (the ledger is idempotent), so the import does not
        # wait for its WAL flush; the hash joins and sorts over a million rows want memory, not disk.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL work_mem = '128MB'")
        for table in (RAW, STAGE, NEW, ROWS, MEMBERS):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute("SELECT pg_get_serial_sequence('audiences_profile', 'id')")
        params["profile_seq"] = cursor.fetchone()[0]  # resolved once, not per created profile
        raw = _create_raw(cursor, width)
        try:
            try:
                with transaction.atomic():  # a savepoint: a refused row costs only the fast attempt
                    _copy_fast(cursor, raw, body, width)
                cursor.execute(f"SELECT count(*) FROM {raw}")
                result.rows_read = result.staged = cursor.fetchone()[0]
            except (psycopg.Error, DatabaseError):
                logger.info("cohort %s: the file needs row-by-row checks (COPY refused a row)", cohort_id)
                _copy_checked(cursor, raw, binary, width, result)
        except CORRUPT as exc:
            raise CohortFileError(f"The cohort file is corrupt near row {result.rows_read + 2}: {exc}") from None

        progress.report(
            f"loading {cohort_name}: {result.rows_read:,} rows read, matching people",
            rows_done=run.rows_done + result.rows_read,
        )
        _stage(cursor, raw, job, plan, params)
        cursor.execute(f"SELECT line FROM {STAGE} WHERE key_value IS NULL ORDER BY line")
        for (line,) in cursor.fetchall():
            result.skip(line, "no usable identifier (amplitude_id and user_id blank or blocked)")
        _membership_params(job, params)
        result.profiles_created = _create_people(cursor, params)
        progress.report(f"loading {cohort_name}: {result.profiles_created:,} new people, writing the membership")
        _row_profiles(cursor)
        _attach_identities(cursor, params)
        result.profiles_updated = _merge_properties(cursor, params)

        cursor.execute(f"CREATE TEMP TABLE {MEMBERS} ON COMMIT DROP AS SELECT DISTINCT profile_id FROM {ROWS}")
        # Statistics let replace_members pick hash (anti-)joins instead of nested loops over a million rows.
        cursor.execute(f"ANALYZE {MEMBERS}")
        segment, _created = Segment.objects.update_or_create(
            workspace_id=job.workspace_id,
            type=SegmentType.AMPLITUDE_IMPORT,
            external_id=cohort_id,
            defaults={"name": cohort_name[:255], "partner_name": "Amplitude", "last_computed_at": last_computed},
        )
        cursor.execute(
            "SELECT coalesce(max(id), 0) FROM audiences_membershipchange WHERE segment_id = %s", [segment.pk]
        )
        ledger_before = cursor.fetchone()[0]  # this load's ledger rows come after it
        applied = replace_members(segment, MEMBERS, cause=cause)
        result.entered, result.exited = applied.added, applied.removed
        if applied.removed:
            _mark_exited(cursor, job, segment, run, cohort_id, cohort_name, ledger_before)
        for table in (STAGE, NEW, ROWS, MEMBERS):
            cursor.execute(f"DROP TABLE {table}")
    return result


def _membership_params(job, params: dict) -> None:
    """The cohort's marks on its members, as constant jsonb computed once (not per row in SQL).

    new_person: what a profile created by this import starts with besides its file properties;
    marks: what every member must contain afterwards (an existing profile without it is rewritten).
    The maps are {cohort: bool} (docs/partner-apis.md section 1): merged into a person's current maps, keeping
    their other cohorts.
    """
    marks: dict = {"amplitude_cohort_ids": {params["cid"]: True}}
    if job.cohort_names_field:
        marks[job.cohort_names_field] = {params["cname"]: True}
    if params["last"]:
        marks["amplitude_last_computed"] = params["last"]
    params["new_person"] = json.dumps(marks)
    params["marks"] = json.dumps(marks)
    params["top_level"] = json.dumps({k: v for k, v in marks.items() if not isinstance(v, dict)})
    params["maps"] = [k for k, v in marks.items() if isinstance(v, dict)]


def _merge_properties(cursor, params: dict) -> int:
    """People who existed before this import: one UPDATE … FROM, writing only profiles that change.

    The usual re-import changes nothing but amplitude_last_computed: a person whose properties
    already contain the row's and the cohort's map entries gets just the top-level marks (one small
    concatenation); only the others pay for the full merge. Both give the same result.
    """
    maps = ", ".join(
        f"%(map{index})s::text, COALESCE(p.properties->%(map{index})s, '{{}}') || (%(marks)s::jsonb->%(map{index})s)"
        for index in range(len(params["maps"]))
    )
    for index, key in enumerate(params["maps"]):
        params[f"map{index}"] = key
    params["map_marks"] = json.dumps({k: v for k, v in json.loads(params["marks"]).items() if k in params["maps"]})
    merged = (
        "p.properties || s.props" + (f" || jsonb_build_object({maps})" if maps else "") + " || %(top_level)s::jsonb"
    )
    cursor.execute(
        f"""UPDATE audiences_profile p
            SET properties = CASE WHEN p.properties @> s.props AND p.properties @> %(map_marks)s::jsonb
                                  THEN p.properties || %(top_level)s::jsonb ELSE {merged} END,
                updated_at = now()
            FROM (SELECT DISTINCT ON (profile_id) profile_id, props FROM {STAGE}
                  WHERE existed ORDER BY profile_id, line DESC) s
            WHERE p.id = s.profile_id AND p.workspace_id + 0 = %(workspace)s  -- + 0: see audiences.events
              AND NOT (p.properties @> %(marks)s::jsonb AND p.properties @> s.props)""",
        params,
    )
    return cursor.rowcount


def _mark_exited(
    cursor, job, segment: Segment, run: ImportRun, cohort_id: str, cohort_name: str, ledger_before: int
) -> None:
    """People who left: their cohort maps say false ({cohort: bool}, docs/partner-apis.md section 1).

    Who left is read back from this load's ledger rows: the segment's rows after `ledger_before`
    (its (segment, id) index), of this run.
    """
    sets = "COALESCE(properties->'amplitude_cohort_ids', '{}') || jsonb_build_object(%(cid)s::text, false)"
    value = f"jsonb_build_object('amplitude_cohort_ids', {sets})"
    if job.cohort_names_field:
        value += (
            " || jsonb_build_object(%(names_field)s::text, COALESCE(properties->%(names_field)s, '{}')"
            " || jsonb_build_object(%(cname)s::text, false))"
        )
    # The ids first, then an update by primary key: the ledger rows are this transaction's own, so
    # the planner has no statistics for them and, given "IN (subquery)", may instead walk every
    # profile of the workspace probing the ledger for each (minutes at a million members).
    cursor.execute(
        """SELECT coalesce(array_agg(profile_id), '{}') FROM audiences_membershipchange
           WHERE segment_id = %(segment)s AND id > %(before)s AND cause_type = 'import_run'
             AND cause_id = %(run)s AND action = 'removed'""",
        {"segment": segment.pk, "run": run.pk, "before": ledger_before},
    )
    exited = cursor.fetchone()[0]
    cursor.execute(
        f"""UPDATE audiences_profile SET properties = properties || {value}, updated_at = now()
            WHERE id = ANY(%(exited)s::bigint[]) AND workspace_id = %(workspace)s""",
        {
            "workspace": job.workspace_id,
            "exited": exited,
            "cid": cohort_id,
            "cname": cohort_name,
            "names_field": job.cohort_names_field,
        },
    )


def _epoch(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


class _CohortRequest:
    """A cohort asked of Amplitude, computing there while the run loads the cohorts before it.

    Amplitude takes from seconds to many minutes to compute a cohort file, each cohort on its own,
    so a run asks for the next SOURCES_COHORT_LOOKAHEAD cohorts before it loads the current one, and
    a thread polls for each (HTTP only, never the database; a poll holds a request slot only while
    in flight). What went wrong (AmplitudeError, QuotaExceeded) is raised when the run gets there.
    """

    def __init__(self, job: CohortImportJob, client: AmplitudeClient, cohort: dict) -> None:
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.request_id = ""
        try:
            quota.consume(job.project)  # counted when asked for: Amplitude counts the request, not the success
            self.request_id = client.request_cohort(
                str(cohort["id"]), props=job.include_properties, prop_keys=job.prop_keys
            )
        except (AmplitudeError, quota.QuotaExceeded) as exc:
            self._error = exc
            return
        client = client.for_thread()
        self._thread = threading.Thread(target=self._wait, args=(client,), name="cohort-request", daemon=True)
        self._thread.start()

    def _wait(self, client: AmplitudeClient) -> None:
        def unless_abandoned(_polls: int) -> None:
            if self._stop.is_set():
                raise Cancelled("cohort request abandoned")

        try:
            client.wait_for_cohort(self.request_id, on_poll=unless_abandoned)
        except BaseException as exc:  # noqa: BLE001 - handed to the run when it gets to this cohort
            self._error = exc

    def ready(self) -> str:
        """The request id once Amplitude has the file ready; raises what went wrong."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.request_id

    def abandon(self) -> None:
        """Stop polling (at the next answer); the run ended before it got to this cohort."""
        self._stop.set()


def import_one_cohort(
    run: ImportRun, job: CohortImportJob, client: AmplitudeClient, cohort: dict, request: _CohortRequest | None = None
) -> CohortResult:
    """Request (unless `request` already did), wait for, download and load one cohort."""
    cohort_id, name = str(cohort["id"]), cohort.get("name") or cohort["id"]
    if request is None:
        transition(run, phase=f"requesting cohort {name}")
        request = _CohortRequest(job, client, cohort)
    transition(run, phase=f"waiting for Amplitude to compute {name}")
    request_id = request.ready()
    transition(run, phase=f"loading {name} (as it downloads)")
    download = GrowingDownload(client, request_id)
    try:
        result = load_cohort_file(run, job, cohort, download.reader())
        size = download.size
    finally:
        download.close()
    logger.info(
        "cohort %s imported by run %s: %s bytes, %s rows, +%s -%s",
        cohort_id,
        run.pk,
        size,
        result.rows_read,
        result.entered,
        result.exited,
    )
    return result


def run_cohort_import(run: ImportRun, client: AmplitudeClient | None = None) -> str:
    """Import every selected cohort; returns an error summary ('' when all succeeded).

    Cohorts are loaded one by one, in order; the next ones are already asked of Amplitude (see
    _CohortRequest), so their computing overlaps this one's loading.
    """
    job = run.cohort_job
    client = client or AmplitudeClient.for_project(job.project)
    transition(run, phase="listing cohorts")
    listed = {str(c["id"]): c for c in client.list_cohorts()}
    wanted = list(job.cohort_ids) or [cid for cid, c in listed.items() if not c.get("archived")]
    if not job.cohort_ids and job.last_cohort_count != len(wanted):
        CohortImportJob.objects.filter(pk=job.pk).update(last_cohort_count=len(wanted))
    transition(run, rows_expected=sum(int(listed[c].get("size") or 0) for c in wanted if c in listed))
    found = [cid for cid in wanted if cid in listed]
    requests: dict[str, _CohortRequest] = {}
    errors: list[str] = []
    try:
        for cohort_id in wanted:
            cohort = listed.get(cohort_id)
            if cohort is None:
                errors.append(f"cohort {cohort_id}: not found in the Amplitude project")
                continue
            position = found.index(cohort_id)
            transition(run, phase=f"requesting cohort {cohort.get('name') or cohort_id}")
            for ahead in found[position : position + 1 + max(settings.SOURCES_COHORT_LOOKAHEAD, 0)]:
                if ahead not in requests:
                    requests[ahead] = _CohortRequest(job, client, listed[ahead])
            try:
                result = import_one_cohort(run, job, client, cohort, requests.pop(cohort_id))
            except (AmplitudeError, CohortFileError, quota.QuotaExceeded) as exc:
                errors.append(f"cohort {cohort_id} ({cohort.get('name')}): {exc}")
                bump_counts(run, {"cohorts_failed": 1})
                transition(run, rows_done=run.rows_done)  # takes back rows its live progress reported
                continue
            counts = result.as_counts()
            cohort_counts = {k: v for k, v in counts.items() if k not in ("skipped_reasons", "skipped_samples")}
            bump_counts(run, {**counts, "cohorts_imported": 1})
            run.counts.setdefault("cohorts", {})[cohort_id] = cohort_counts
            transition(run, counts=run.counts, rows_done=run.rows_done + result.rows_read)
    finally:
        for request in requests.values():  # only when the run stops early
            request.abandon()
    return "; ".join(errors)


def list_project_cohorts(project) -> list[dict]:
    """The project's cohorts (id, name, size, last computed): proves key, secret and region are right."""
    cohorts = AmplitudeClient.for_project(project).list_cohorts()
    return [
        {
            "id": str(c.get("id")),
            "name": c.get("name"),
            "size": c.get("size"),
            "last_computed": _epoch(c.get("lastComputed")),
            "archived": bool(c.get("archived")),
        }
        for c in cohorts
    ]
