"""The one place that writes the membership ledger (docs/invariants.md, invariant 1).

Each function changes SegmentMember, appends MembershipChange rows and moves Segment.size in one
SQL statement per step, so the three can never disagree, and is idempotent: adding a member who is
already in, or removing a non-member, writes nothing. Concurrent callers are safe because the
unique (segment, profile) index arbitrates: of two racing inserts exactly one returns a row.

Two shapes of input:
- apply_changes: explicit adds/removes (inbound pushes, up to ~10k ids), passed as arrays;
- replace_members: a full snapshot in a (temporary) table of profile ids (cohort imports of
  millions of rows): entered = snapshot − members, exited = members − snapshot, computed in SQL.
"""

from dataclasses import dataclass
from typing import Self

from django.db import connection, transaction
from django.utils import timezone

from audiences.bulk import insert_plain_first
from audiences.models import Segment


@dataclass(frozen=True)
class Cause:
    """Why the ledger changed: the source (push/import/manual/merge) and the record that caused it."""

    source: str
    type: str
    id: int | None = None


@dataclass
class Applied:
    added: int = 0
    removed: int = 0

    def __iadd__(self, other: "Applied") -> Self:
        self.added += other.added
        self.removed += other.removed
        return self


_ADD_SQL = """
WITH incoming AS (
    SELECT DISTINCT unnest(%(ids)s::bigint[]) AS profile_id
), inserted AS (
    INSERT INTO audiences_segmentmember (segment_id, profile_id, added_at)
    SELECT %(segment)s, profile_id, %(now)s FROM incoming
    ON CONFLICT (segment_id, profile_id) DO NOTHING
    RETURNING profile_id
)
INSERT INTO audiences_membershipchange
    (workspace_id, segment_id, profile_id, action, source, cause_type, cause_id, occurred_at)
SELECT %(workspace)s, %(segment)s, profile_id, 'added', %(source)s, %(cause_type)s, %(cause_id)s, %(now)s
FROM inserted
"""

_REMOVE_SQL = """
WITH deleted AS (
    DELETE FROM audiences_segmentmember
    WHERE segment_id = %(segment)s AND profile_id = ANY(%(ids)s::bigint[])
    RETURNING profile_id
)
INSERT INTO audiences_membershipchange
    (workspace_id, segment_id, profile_id, action, source, cause_type, cause_id, occurred_at)
SELECT %(workspace)s, %(segment)s, profile_id, 'removed', %(source)s, %(cause_type)s, %(cause_id)s, %(now)s
FROM deleted
"""

# Only the snapshot's newcomers reach the insert (an anti-join, instead of one conflict check per
# existing member), in profile id order: the (segment, profile) and profile indexes of the members
# and the (profile, id) index of the ledger are then filled left to right, not at random. A plain
# INSERT first; a race with another writer or a repeated id is settled by redoing it with ON
# CONFLICT DO NOTHING (audiences.bulk.insert_plain_first; the later copy is skipped).
_ENTER_FROM_TABLE_SQL = """
WITH inserted AS (
    INSERT INTO audiences_segmentmember (segment_id, profile_id, added_at)
    SELECT %(segment)s, s.profile_id, %(now)s FROM {table} s
    WHERE s.profile_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM audiences_segmentmember m WHERE m.segment_id = %(segment)s AND m.profile_id = s.profile_id)
    ORDER BY s.profile_id
    __CONFLICT__
    RETURNING profile_id
)
INSERT INTO audiences_membershipchange
    (workspace_id, segment_id, profile_id, action, source, cause_type, cause_id, occurred_at)
SELECT %(workspace)s, %(segment)s, profile_id, 'added', %(source)s, %(cause_type)s, %(cause_id)s, %(now)s
FROM inserted
"""

_EXIT_FROM_TABLE_SQL = """
WITH deleted AS (
    DELETE FROM audiences_segmentmember m
    WHERE m.segment_id = %(segment)s
      AND NOT EXISTS (SELECT 1 FROM {table} s WHERE s.profile_id = m.profile_id)
    RETURNING m.profile_id
)
INSERT INTO audiences_membershipchange
    (workspace_id, segment_id, profile_id, action, source, cause_type, cause_id, occurred_at)
SELECT %(workspace)s, %(segment)s, profile_id, 'removed', %(source)s, %(cause_type)s, %(cause_id)s, %(now)s
FROM deleted
"""


def _params(segment: Segment, cause: Cause, now, ids=None) -> dict:
    return {
        "workspace": segment.workspace_id,
        "segment": segment.pk,
        "source": cause.source,
        "cause_type": cause.type,
        "cause_id": cause.id,
        "now": now,
        "ids": ids,
    }


def _bump(cursor, segment: Segment, applied: Applied, now) -> None:
    if applied.added or applied.removed:
        cursor.execute(
            "UPDATE audiences_segment SET size = size + %s, last_changed_at = %s WHERE id = %s",
            [applied.added - applied.removed, now, segment.pk],
        )


def apply_changes(segment: Segment, *, add: list[int] = (), remove: list[int] = (), cause: Cause, now=None) -> Applied:
    """Add then remove the given profile ids. Returns how many rows really changed."""
    now = now or timezone.now()
    applied = Applied()
    with transaction.atomic(), connection.cursor() as cursor:
        if add:
            cursor.execute(_ADD_SQL, _params(segment, cause, now, list(add)))
            applied.added = cursor.rowcount
        if remove:
            cursor.execute(_REMOVE_SQL, _params(segment, cause, now, list(remove)))
            applied.removed = cursor.rowcount
        _bump(cursor, segment, applied, now)
    return applied


def replace_members(segment: Segment, snapshot_table: str, *, cause: Cause, now=None) -> Applied:
    """Make the segment's members equal the profile ids in `snapshot_table` (column profile_id).

    `snapshot_table` must be a trusted identifier (a temp table the caller created), never input.
    """
    if not snapshot_table.replace("_", "").isalnum():
        raise ValueError(f"unsafe table name {snapshot_table!r}")
    now = now or timezone.now()
    applied = Applied()
    with transaction.atomic(), connection.cursor() as cursor:
        # Both diffs are hash or merge (anti-)joins, whatever the statistics say. Right after a
        # first big import the members table's statistics may still describe it empty; the
        # planner then trusts "one member" and, for the exits, scans the whole snapshot once per
        # real member: a re-import of a million members ran for over ten minutes that way.
        # (Transaction-local; an error rolls the setting back with the rest of this block.)
        cursor.execute("SELECT current_setting('enable_nestloop'), set_config('enable_nestloop', 'off', true)")
        previous = cursor.fetchone()[0]
        cursor.execute(_EXIT_FROM_TABLE_SQL.format(table=snapshot_table), _params(segment, cause, now))
        applied.removed = cursor.rowcount
        enter = _ENTER_FROM_TABLE_SQL.format(table=snapshot_table)
        insert_plain_first(
            cursor,
            enter.replace("__CONFLICT__", ""),
            enter.replace("__CONFLICT__", "ON CONFLICT (segment_id, profile_id) DO NOTHING"),
            _params(segment, cause, now),
        )
        applied.added = cursor.rowcount
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [previous])
        _bump(cursor, segment, applied, now)
    return applied
