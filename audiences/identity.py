"""Identity resolution: turn identifier values of one kind into profile ids, set-wise.

A known value finds its profile; an unknown one creates a profile (CleverTap's scenario 3).
Blocked values (empty, "null", "anonymous", "0", "-1", all-zero UUIDs, … — settings.BLOCKED_IDENTITY_VALUES)
are invalid rows with a reason, never a profile. Merging anonymous profiles into known ones is in
audiences.merge.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet

from audiences.models import Identity
from audiences.people_lock import hold_people
from audiences.profiles import insert_profiles_sql
from config.safe_json import number_problem, string_problem

MAX_IDENTITY_LENGTH = 512


@dataclass
class Resolution:
    profile_ids: dict[str, int] = field(default_factory=dict)  # value -> profile id
    invalid: list[tuple[int, object, str]] = field(default_factory=list)  # (position, raw value, reason)
    created: int = 0


def stored_kind(kind: str) -> str:
    """The identity kind values of `kind` are stored under.

    Kinds listed in settings.DEVICE_ID_KINDS (default: install_token, which a partner's guide defines
    as Amplitude's device id; docs/partner-apis.md) are device ids under another name: stored as device_id, a person
    pushed by install token and the same person identified with that anonymousId are one profile.
    """
    return "device_id" if kind in settings.DEVICE_ID_KINDS else kind


def blocked_values() -> frozenset[str]:
    return frozenset(value.strip().lower() for value in settings.BLOCKED_IDENTITY_VALUES)


def clean_identity(raw: object, blocked: frozenset[str]) -> tuple[str | None, str | None]:
    """(value, None) for a usable identifier, (None, reason) otherwise.

    NUL and lone surrogates are refused here, before any statement: PostgreSQL cannot store the
    first and psycopg cannot encode the second, and either would fail the whole batch.
    """
    if isinstance(raw, float) and number_problem(raw):
        return None, number_problem(raw)
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None, f"not a string or number ({type(raw).__name__})"
    value = str(raw).strip()
    problem = string_problem(value)
    if problem:
        return None, problem
    if value.lower() in blocked or not value:
        return None, f"blocked identifier value {value!r}"
    if len(value) > MAX_IDENTITY_LENGTH:
        return None, f"longer than {MAX_IDENTITY_LENGTH} characters"
    return value, None


def insert_identities_sql(
    rows: str,
    *,
    kind: str = "kind",
    value: str = "value",
    profile_id: str = "profile_id",
    source: str = "%(source)s",
) -> str:
    """The one statement that gives people identities: (kind, value) → profile_id for each row of
    `rows` (a FROM item, with its WHERE and ORDER BY if any), in workspace %(workspace)s. The
    caller appends ON CONFLICT … DO NOTHING where a value may already be held (the unique
    (workspace, kind, value) index decides who holds it)."""
    return (
        "INSERT INTO audiences_identity (workspace_id, kind, value, profile_id, source, created_at) "
        f"SELECT %(workspace)s, {kind}, {value}, {profile_id}, {source}, now() FROM {rows}"
    )


# Find existing identities, then create the missing ones with pre-allocated profile ids.
# Identity is inserted first with ON CONFLICT DO NOTHING so that of two racing transactions
# exactly one creates the person; the profile row follows in the same statement (the foreign key
# is deferred until commit). Losers are re-read afterwards.
_CREATE_SQL = f"""
WITH candidates AS (
    SELECT v AS value, nextval(pg_get_serial_sequence('audiences_profile', 'id')) AS profile_id
    FROM unnest(%(values)s::text[]) AS v
), identities AS (
    {insert_identities_sql("candidates", kind="%(kind)s")}
    ON CONFLICT (workspace_id, kind, value) DO NOTHING
    RETURNING value, profile_id
), profiles AS (
    {insert_profiles_sql("identities")}
)
SELECT value, profile_id FROM identities
"""


def lookup(workspace_id: int, kind: str, values: list[str]) -> dict[str, int]:
    """Profile ids of the known values. Everything that writes people reads them through here, so
    here it waits for an erasure of the workspace (audiences.people_lock.hold_people)."""
    hold_people(workspace_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value, profile_id FROM audiences_identity WHERE workspace_id = %s AND kind = %s AND value = ANY(%s)",
            [workspace_id, kind, values],
        )
        return dict(cursor.fetchall())


def resolve(workspace_id: int, kind: str, raw_values: list, *, source: str = "push", create: bool = True) -> Resolution:
    """Profile ids for `raw_values` (identifiers of one kind), creating people for unknown values."""
    blocked = blocked_values()
    result = Resolution()
    wanted: dict[str, None] = {}
    for position, raw in enumerate(raw_values):
        value, reason = clean_identity(raw, blocked)
        if reason:
            result.invalid.append((position, raw, reason))
        else:
            wanted[value] = None
    if not wanted:
        return result
    values = list(wanted)
    with transaction.atomic():
        found = lookup(workspace_id, kind, values)
        missing = [value for value in values if value not in found]
        if missing and create:
            with connection.cursor() as cursor:
                cursor.execute(
                    _CREATE_SQL, {"workspace": workspace_id, "kind": kind, "source": source, "values": missing}
                )
                created = dict(cursor.fetchall())
            result.created = len(created)
            found.update(created)
            losers = [value for value in missing if value not in created]
            if losers:  # another transaction created them between our read and our insert
                found.update(lookup(workspace_id, kind, losers))
    result.profile_ids = found
    return result


# The kinds one workspace uses, read off the unique (workspace, kind, value) index by a loose index
# scan: one index descent per kind, however many identities there are.
_KINDS_SQL = """
WITH RECURSIVE kinds(kind) AS (
    (SELECT kind FROM audiences_identity WHERE workspace_id = %(workspace)s ORDER BY kind LIMIT 1)
    UNION ALL
    SELECT (SELECT i.kind FROM audiences_identity i WHERE i.workspace_id = %(workspace)s AND i.kind > k.kind
            ORDER BY i.kind LIMIT 1)
    FROM kinds k WHERE k.kind IS NOT NULL
)
SELECT kind FROM kinds WHERE kind IS NOT NULL
"""


def identity_kinds(workspace_id: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(_KINDS_SQL, {"workspace": workspace_id})
        return [kind for (kind,) in cursor.fetchall()]


def identities_with_value(workspace_id: int, value: str, kind: str | None = None) -> QuerySet[Identity]:
    """The identities holding `value`, of any kind (or of `kind`): "find a person by any identity value".

    There is no (workspace, value) index (every bulk import would pay for it): the value is looked
    up under each of the workspace's kinds in the unique (workspace, kind, value) index instead,
    a handful of index probes.
    """
    kinds = [stored_kind(kind)] if kind else identity_kinds(workspace_id)
    return Identity.objects.filter(workspace_id=workspace_id, kind__in=kinds, value=value)


def identities_starting_with(
    workspace_id: int, kinds: list[str], prefixes: list[str], limit: int, *, exclude: list[Identity] = ()
) -> list[Identity]:
    """Identities whose value starts with one of `prefixes`, at most `limit`, kind by kind in value order.

    Identity.value is collated "C" (byte order), so a prefix is one range of the unique
    (workspace, kind, value) index: each kind is one short ordered range scan with a LIMIT, however
    many identities the workspace has (no second index slowing every bulk insert).
    """
    skip = {identity.pk for identity in exclude}
    found: dict[int, Identity] = {}
    for kind in kinds:
        for prefix in prefixes:
            rows = (
                Identity.objects.filter(workspace_id=workspace_id, kind=kind, value__startswith=prefix)
                .select_related("profile")
                .order_by("value")[: limit + len(skip)]
            )
            for identity in rows:
                if identity.pk not in skip:
                    found.setdefault(identity.pk, identity)
        if len(found) >= limit:
            break
    return list(found.values())[:limit]
