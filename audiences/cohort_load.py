"""Loading an imported cohort into the audience tables: set-wise, in the caller's transaction.

The caller (integrations.sources.cohorts) copies the cohort file into a raw table of text columns
c0 … c<n-1> plus each row's `line`, and says which columns hold what (ColumnMap: plain data; the
file's format and its column names stay with the caller). Every write from there on is here:

    raw → STAGE (identifiers cleaned, properties built, known people found) → new profiles with
    their identities → the rows' other identifiers attached → properties merged into the people
    who existed → the segment and its ledger (audiences.ledger.replace_members) → the cohort maps
    of those who left set to false.

The caller's transaction holds it all: a failed or killed load leaves the segment's membership
exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from audiences.bulk import insert_plain_first, parallel_handoff
from audiences.identity import MAX_IDENTITY_LENGTH, blocked_values, insert_identities_sql
from audiences.ledger import Cause, replace_members
from audiences.models import Segment, SegmentType
from audiences.people_lock import hold_people
from audiences.profiles import insert_profiles_sql


@dataclass(frozen=True)
class ColumnMap:
    """Which raw columns (c<position>) hold the identifiers, and which profile properties each fills."""

    amplitude_id: int
    user_id: int | None = None
    properties: Sequence[tuple[int, tuple[str, ...]]] = ()  # (position, the property keys it fills)
    amplitude_id_property: str = ""  # a property that also gets the Amplitude id ('' = none)


@dataclass(frozen=True)
class ImportedCohort:
    """The cohort a load makes a segment of (type amplitude_import, external id `cohort_id`)."""

    workspace_id: int
    cohort_id: str
    name: str
    last_computed: datetime | None = None
    names_property: str = ""  # a property mapping cohort names to membership, like amplitude_cohort_ids ('' = none)


@dataclass
class Loaded:
    unidentified_lines: list[int] = field(default_factory=list)  # rows with no usable identifier, in line order
    profiles_created: int = 0
    profiles_updated: int = 0
    entered: int = 0
    exited: int = 0


# Staging tables of one cohort load (temporary: private to the connection, dropped at commit).
STAGE = "cohort_stage"  # one row per file row: cleaned identifiers, properties, the matched profile
NEW = "cohort_new"  # one row per person to create: the identifier that keys them, a fresh id, properties
ROWS = "cohort_rows"  # one row per file row that has a person: its identifiers and profile id
MEMBERS = "cohort_members"  # the snapshot handed to audiences.ledger.replace_members
# Only when the file repeats a key or a concurrent load took one (audiences.bulk.insert_plain_first's redo):
WON = "cohort_won"  # the new profiles whose identity went in
LOST = "cohort_lost"  # the new profiles whose identity did not: deleted again
TAKEN = "cohort_taken"  # keys another transaction holds, with its profile
STAGING = (STAGE, NEW, ROWS, MEMBERS, WON, LOST, TAKEN)


def load_cohort(
    raw: str,
    columns: ColumnMap,
    cohort: ImportedCohort,
    *,
    cause: Cause,
    people_created: Callable[[int], None] = lambda _created: None,
) -> Loaded:
    """Make the cohort's segment hold exactly the people of the rows in `raw` (a table the caller
    created and filled, dropped here once staged), creating the people nobody knows and merging
    the rows' properties into the others. `people_created(count)` hears when the people exist and
    the membership is next. Inside the caller's transaction."""
    params: dict = {
        "workspace": cohort.workspace_id,
        "cid": cohort.cohort_id,
        "cname": cohort.name,
        "blocked": sorted(blocked_values()),
        "max_len": MAX_IDENTITY_LENGTH,
        "names_field": cohort.names_property,
        "last": cohort.last_computed.isoformat() if cohort.last_computed else None,
    }
    loaded = Loaded()
    with connection.cursor() as cursor:
        # The hash joins and sorts over a million rows want memory, not disk.
        cursor.execute("SET LOCAL work_mem = '128MB'")
        for table in STAGING:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute("SELECT pg_get_serial_sequence('audiences_profile', 'id')")
        params["profile_seq"] = cursor.fetchone()[0]  # resolved once, not per created profile
        hold_people(cohort.workspace_id)  # from matching people on: an erasure waits for the commit
        _stage(cursor, raw, columns, params)
        cursor.execute(f"SELECT line FROM {STAGE} WHERE key_value IS NULL ORDER BY line")
        loaded.unidentified_lines = [line for (line,) in cursor.fetchall()]
        _membership_params(cohort, params)
        loaded.profiles_created = _create_people(cursor, params)
        people_created(loaded.profiles_created)
        _row_profiles(cursor)
        _attach_identities(cursor, params)
        loaded.profiles_updated = _merge_properties(cursor, params)

        cursor.execute(f"CREATE TEMP TABLE {MEMBERS} ON COMMIT DROP AS SELECT DISTINCT profile_id FROM {ROWS}")
        # Statistics let replace_members pick hash (anti-)joins instead of nested loops over a million rows.
        cursor.execute(f"ANALYZE {MEMBERS}")
        segment, _created = Segment.objects.update_or_create(
            workspace_id=cohort.workspace_id,
            type=SegmentType.AMPLITUDE_IMPORT,
            external_id=cohort.cohort_id,
            defaults={
                "name": cohort.name[:255],
                "partner_name": "Amplitude",
                "last_computed_at": cohort.last_computed,
            },
        )
        cursor.execute(
            "SELECT coalesce(max(id), 0) FROM audiences_membershipchange WHERE segment_id = %s", [segment.pk]
        )
        ledger_before = cursor.fetchone()[0]  # this load's ledger rows come after it
        applied = replace_members(segment, MEMBERS, cause=cause)
        loaded.entered, loaded.exited = applied.added, applied.removed
        if applied.removed:
            _mark_exited(cursor, cohort, segment, cause, ledger_before)
        for table in STAGING:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
    return loaded


def _clean_id(column: str) -> str:
    """SQL for an identifier column cleaned like audiences.identity.clean_identity (blocked → NULL)."""
    return (
        f"CASE WHEN lower(btrim({column})) = ANY(%(blocked)s) OR length(btrim({column})) > %(max_len)s "
        f"THEN NULL ELSE NULLIF(btrim({column}), '') END"
    )


def _stage(cursor, raw: str, columns: ColumnMap, params: dict) -> None:
    """raw rows → STAGE: cleaned identifiers, the row's properties as jsonb, the profile it matches now."""
    amp = _clean_id(f"r.c{columns.amplitude_id}")
    uid = _clean_id(f"r.c{columns.user_id}") if columns.user_id is not None else "NULL::text"
    keys: list[str] = []
    values: list[str] = []
    if columns.amplitude_id_property:
        keys.append(columns.amplitude_id_property)
        values.append(amp)
    for position, names in columns.properties:
        for name in names:
            keys.append(name)
            values.append(uid if position == columns.user_id else f"r.c{position}")
    params["prop_keys"] = keys
    # jsonb_object(text[], text[]) is several times cheaper per row than jsonb_build_object, which
    # looks up every argument's type again on every call.
    props = f"jsonb_object(%(prop_keys)s::text[], ARRAY[{', '.join(values)}]::text[])" if keys else "'{}'::jsonb"
    # One pass over the file's rows: clean, build properties and find known people by a hash join
    # (amplitude_id first, then user_id, like audiences.events.resolve_staged). Cleaning and
    # building properties are most of the work, all of it in the subquery, which parallel workers
    # run when raw is not a temporary table (audiences.bulk.scratch_table): OFFSET 0 keeps it whole,
    # each cleaned identifier computed there once (once more inside the properties), not again in
    # the joins.
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
    cursor.execute(f"ANALYZE {NEW} (key_kind, key_value, line, profile_id)")
    cursor.execute(
        insert_profiles_sql(
            f"{NEW} n JOIN {STAGE} s ON s.line = n.line",
            profile_id="n.profile_id",
            properties="s.props || %(new_person)s::jsonb",
        ),
        params,
    )
    insert = insert_identities_sql(
        f'{NEW} ORDER BY key_kind COLLATE "C", key_value COLLATE "C", line DESC',
        kind="key_kind",
        value="key_value",
        source="'import'",
    )
    # The careful redo writes down whose identity went in (WON), so the losers are found among this
    # load's own rows: nothing after a repeat reads audiences_identity by a join, whose statistics,
    # right after a first import, may still describe the table without this workspace's people
    # (a nested loop over the whole workspace per row: minutes at 20,000 rows, hours at a million).
    cursor.execute(f"CREATE TEMP TABLE {WON} (profile_id bigint) ON COMMIT DROP")
    insert_plain_first(
        cursor,
        insert,
        f"WITH won AS ({insert} ON CONFLICT (workspace_id, kind, value) DO NOTHING RETURNING profile_id) "
        f"INSERT INTO {WON} SELECT profile_id FROM won",
        params,
    )
    created = cursor.rowcount
    if created < wanted:
        _settle_losers(cursor, params)
    return created


def _settle_losers(cursor, params: dict) -> None:
    """After the careful identity insert: drop the profiles whose identity lost, and give the rows
    whose key another transaction won that person (a repeat's rows keep profile_id NULL:
    _row_profiles matches them to the last row's person by key).

    Every join here is between this load's temporary tables, each analyzed when written, so the
    plans follow the real sizes; audiences_identity is read only by (workspace, kind, value), one
    unique-index probe per key another transaction took.
    """
    cursor.execute(f"ANALYZE {WON}")
    cursor.execute(
        f"""CREATE TEMP TABLE {LOST} ON COMMIT DROP AS
            WITH lost AS (
                DELETE FROM {NEW} n WHERE NOT EXISTS (SELECT 1 FROM {WON} w WHERE w.profile_id = n.profile_id)
                RETURNING key_kind, key_value, profile_id)
            SELECT * FROM lost"""
    )
    cursor.execute(f"ANALYZE {LOST}")
    # By primary key, one probe per lost profile (like _mark_exited: ids first, then the update).
    cursor.execute(
        f"DELETE FROM audiences_profile WHERE id = ANY(ARRAY(SELECT profile_id FROM {LOST})) "
        "AND workspace_id = %(workspace)s",
        params,
    )
    # Keys of which no row of ours won: another transaction holds them. Their holder, probed per key.
    cursor.execute(
        f"""CREATE TEMP TABLE {TAKEN} ON COMMIT DROP AS
            SELECT t.key_kind, t.key_value,
                   (SELECT i.profile_id FROM audiences_identity i WHERE i.workspace_id = %(workspace)s
                      AND i.kind = t.key_kind AND i.value = t.key_value) AS profile_id
            FROM (SELECT DISTINCT key_kind, key_value FROM {LOST} l WHERE NOT EXISTS (
                    SELECT 1 FROM {NEW} n WHERE n.key_kind = l.key_kind AND n.key_value = l.key_value)) t""",
        params,
    )
    if not cursor.rowcount:
        return  # only repeats within the file: nothing else to do
    cursor.execute(f"ANALYZE {TAKEN}")
    cursor.execute(
        f"""UPDATE {STAGE} s SET profile_id = t.profile_id, resolved_via = t.key_kind, existed = true
            FROM {TAKEN} t
            WHERE s.profile_id IS NULL AND s.key_kind = t.key_kind AND s.key_value = t.key_value
              AND t.profile_id IS NOT NULL"""
    )


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
        rows = (
            f"{ROWS} WHERE {kind} IS NOT NULL AND NOT {kind}_known AND resolved_via IS DISTINCT FROM %(kind)s"
            f" ORDER BY {kind}"
        )
        _insert_identities(
            cursor,
            insert_identities_sql(rows, kind="%(kind)s", value=kind, source="'import'"),
            {**params, "kind": kind},
        )


def _membership_params(cohort: ImportedCohort, params: dict) -> None:
    """The cohort's marks on its members, as constant jsonb computed once (not per row in SQL).

    new_person: what a profile created by this import starts with besides its file properties;
    marks: what every member must contain afterwards (an existing profile without it is rewritten).
    The maps are {cohort: bool} (docs/partner-apis.md section 1): merged into a person's current maps, keeping
    their other cohorts.
    """
    marks: dict = {"amplitude_cohort_ids": {params["cid"]: True}}
    if cohort.names_property:
        marks[cohort.names_property] = {params["cname"]: True}
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


def _mark_exited(cursor, cohort: ImportedCohort, segment: Segment, cause: Cause, ledger_before: int) -> None:
    """People who left: their cohort maps say false ({cohort: bool}, docs/partner-apis.md section 1).

    Who left is read back from this load's ledger rows: the segment's rows after `ledger_before`
    (its (segment, id) index), of this load's cause.
    """
    sets = "COALESCE(properties->'amplitude_cohort_ids', '{}') || jsonb_build_object(%(cid)s::text, false)"
    value = f"jsonb_build_object('amplitude_cohort_ids', {sets})"
    if cohort.names_property:
        value += (
            " || jsonb_build_object(%(names_field)s::text, COALESCE(properties->%(names_field)s, '{}')"
            " || jsonb_build_object(%(cname)s::text, false))"
        )
    # The ids first, then an update by primary key: the ledger rows are this transaction's own, so
    # the planner has no statistics for them and, given "IN (subquery)", may instead walk every
    # profile of the workspace probing the ledger for each (minutes at a million members).
    cursor.execute(
        """SELECT coalesce(array_agg(profile_id), '{}') FROM audiences_membershipchange
           WHERE segment_id = %(segment)s AND id > %(before)s AND cause_type = %(cause_type)s
             AND cause_id = %(cause_id)s AND action = 'removed'""",
        {"segment": segment.pk, "before": ledger_before, "cause_type": cause.type, "cause_id": cause.id},
    )
    exited = cursor.fetchone()[0]
    cursor.execute(
        f"""UPDATE audiences_profile SET properties = properties || {value}, updated_at = now()
            WHERE id = ANY(%(exited)s::bigint[]) AND workspace_id = %(workspace)s""",
        {
            "workspace": cohort.workspace_id,
            "exited": exited,
            "cid": cohort.cohort_id,
            "cname": cohort.name,
            "names_field": cohort.names_property,
        },
    )
