"""Applying accepted batches: identity resolution, merges, properties and the membership ledger.

Order: batches of one segment (list add/remove, cohort webhook) apply in id order under one
PostgreSQL advisory lock; identify-style batches, which may touch many segments, apply in id
order per workspace. Each batch applies in ONE transaction that also marks it applied, so a worker
killed half-way leaves it accepted, and the redo reaches the same end state (every step is
idempotent: resolve finds what it created, the ledger writes only real changes).

Everything is set-based: one unnest lookup per identity kind, one INSERT for missing people, one
UPDATE for properties, one ledger statement per segment and direction.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DataError, connection, transaction
from django.utils import timezone

from audiences.events import store_events
from audiences.identity import blocked_values, clean_identity, lookup, resolve, stored_kind
from audiences.ledger import Cause, apply_changes
from audiences.merge import ANONYMOUS_KIND, Conflict, attach_identities, link_pairs
from audiences.models import Segment, SegmentType
from audiences.profiles import add_properties
from config import safe_json
from config.safe_json import storable
from integrations.inbound.models import BatchStatus, Endpoint, InboundBatch
from integrations.inbound.parsers import CohortRef, Message, People, amplitude_lists, cohort_webhook, identify, segment

logger = logging.getLogger(__name__)

LIST_ENDPOINTS = {Endpoint.LIST_ADD, Endpoint.LIST_REMOVE}
V1_DEFAULT_TYPES = {
    Endpoint.V1_IDENTIFY: "identify",
    Endpoint.V1_TRACK: "track",
    Endpoint.V1_PAGE: "page",
    Endpoint.V1_SCREEN: "screen",
    Endpoint.V1_GROUP: "group",
    Endpoint.V1_ALIAS: "alias",
    Endpoint.V1_BATCH: None,
}


def ensure_segment(workspace_id: int, cohort: CohortRef) -> Segment:
    """The Partner - Amplitude segment of a cohort id, created on first sight. The unique
    (workspace, type, external_id) constraint arbitrates between concurrent first sights."""
    segment, created = Segment.objects.get_or_create(
        workspace_id=workspace_id,
        type=SegmentType.PARTNER_AMPLITUDE,
        external_id=cohort.cohort_id,
        defaults={"name": cohort.name[:255], "partner_name": "Amplitude"},
    )
    if not created and cohort.name and cohort.name != cohort.cohort_id and segment.name != cohort.name[:255]:
        Segment.objects.filter(pk=segment.pk).update(name=cohort.name[:255])  # the cohort was renamed in Amplitude
        segment.name = cohort.name[:255]
    return segment


def parse_people(batch_endpoint: str, payload: dict) -> People:
    if batch_endpoint == Endpoint.AMPLITUDE_IDENTIFY:
        return identify.parse_amplitude(payload)
    if batch_endpoint == Endpoint.COHORT_WEBHOOK:
        return cohort_webhook.parse(payload)
    return segment.parse(payload, V1_DEFAULT_TYPES[batch_endpoint])


def unusable_people(people: People) -> list[tuple[int, object, str]]:
    """Messages whose every identifier is blocked: invalid rows, never a profile."""
    blocked = blocked_values()
    rows = []
    for message in people.messages:
        user, user_reason = (
            clean_identity(message.user_id, blocked) if message.user_id is not None else (None, "missing")
        )
        anon, anon_reason = (
            clean_identity(message.anonymous_id, blocked) if message.anonymous_id is not None else (None, "missing")
        )
        if user is None and anon is None:
            raw = message.user_id if message.user_id is not None else message.anonymous_id
            rows.append((message.position, raw, user_reason if user_reason != "missing" else anon_reason))
    return rows


def track_calls(batch: InboundBatch) -> list[dict]:
    """The /v1 track messages kept raw in a batch, for the events loader."""
    if batch.endpoint not in V1_DEFAULT_TYPES:
        return []
    return segment.track_calls(bytes(batch.body), V1_DEFAULT_TYPES[batch.endpoint])


# --- applying one batch ------------------------------------------------------------------------------


def apply_batch(batch: InboundBatch) -> None:
    """Apply one batch inside the caller's transaction and fill its counters.

    Rows the database refuses are set aside one by one (apply_in_parts) and the others applied,
    so one bad value never fails, or holds up, the batch and its segment.
    """
    payload = safe_json.loads(bytes(batch.body))
    cause = Cause(source="push", type="inbound_batch", id=batch.pk)
    refused_before = batch.invalid_count
    if batch.endpoint in LIST_ENDPOINTS:
        adding = batch.endpoint == Endpoint.LIST_ADD
        change = amplitude_lists.parse_change(payload, add=adding)
        rows = list(enumerate(change.values))
        apply_in_parts(batch, rows, lambda part: _apply_list_change(batch, [value for _, value in part], adding, cause))
    else:
        people = parse_people(batch.endpoint, payload)
        rows = [(message.position, message) for message in people.messages]
        rows += [(alias[0], alias) for alias in people.aliases]
        apply_in_parts(batch, rows, lambda part: _apply_people(batch, people, [row for _, row in part], cause))
        # Track calls become events in the same transaction (deduplicated on messageId), so a
        # replayed /v1/batch neither loses nor doubles them; the loader sets bad lines aside itself.
        tracks = track_calls(batch)
        if tracks:
            store_events(batch.workspace_id, [segment.track_to_event(m) for m in tracks], source="track")
    if batch.invalid_count > refused_before:  # one line, however many rows
        first = batch.invalid[refused_before]
        logger.warning(
            "inbound batch %s: %s row(s) set aside while applying, first at %s: %s",
            batch.pk,
            batch.invalid_count - refused_before,
            first[0],
            first[2],
        )


@dataclass
class Counts:
    added: int = 0
    removed: int = 0
    profiles_created: int = 0
    merges: int = 0
    conflicts: list = field(default_factory=list)


# What a value the parsers let through may still raise in the database: a deterministic refusal
# of that row, which no retry changes (connection losses and deadlocks are not caught: retried).
ROW_ERRORS = (DataError, UnicodeError)


def apply_in_parts(batch: InboundBatch, rows: list[tuple[int, object]], apply_part) -> None:
    """Apply `rows` ((position, row) pairs) with `apply_part(rows) -> Counts`, each part in a savepoint.

    All at once first. If the database refuses a row, the part is halved and each half tried
    again, until the refused rows stand alone: they are set aside on the batch with the error
    (batch.invalid), every other row applied, in order. A part's counts are kept only if it applied.
    """
    try:
        with transaction.atomic():
            counts = apply_part(rows)
    except ROW_ERRORS as exc:
        if len(rows) <= 1:
            for position, row in rows:
                batch.invalid = [*batch.invalid, [position, storable(_row_value(row)), f"not applied: {exc}"[:500]]]
                batch.invalid_count += 1
            return
        middle = len(rows) // 2
        apply_in_parts(batch, rows[:middle], apply_part)
        apply_in_parts(batch, rows[middle:], apply_part)
        return
    batch.added += counts.added
    batch.removed += counts.removed
    batch.profiles_created += counts.profiles_created
    batch.merges += counts.merges
    batch.conflicts = [*batch.conflicts, *counts.conflicts]


def _row_value(row: object) -> object:
    if isinstance(row, Message):
        return row.user_id if row.user_id is not None else row.anonymous_id
    if isinstance(row, tuple):  # an alias: (position, userId, previousId)
        return row[1]
    return row


def _apply_list_change(batch: InboundBatch, values: list, adding: bool, cause: Cause) -> Counts:
    # Removing someone the console never saw changes nothing: do not create a profile for them.
    resolution = resolve(batch.workspace_id, stored_kind(batch.identity_kind), values, create=adding)
    profile_ids = list(resolution.profile_ids.values())
    segment_row = Segment.objects.get(pk=batch.segment_id)
    result = (
        apply_changes(segment_row, add=profile_ids, cause=cause)
        if adding
        else apply_changes(segment_row, remove=profile_ids, cause=cause)
    )
    # profiles_created adds to those prepare_next created ahead of the lock.
    return Counts(added=result.added, removed=result.removed, profiles_created=resolution.created)


def _apply_people(batch: InboundBatch, people: People, rows: list, cause: Cause) -> Counts:
    workspace_id, kind = batch.workspace_id, stored_kind(batch.identity_kind)
    messages = [row for row in rows if isinstance(row, Message)]
    aliases = [row for row in rows if not isinstance(row, Message)]
    counts = Counts()
    blocked = blocked_values()
    # Per message: (usable user id or None, usable device id or None).
    ids = []
    for message in messages:
        user = clean_identity(message.user_id, blocked)[0] if message.user_id is not None else None
        anon = clean_identity(message.anonymous_id, blocked)[0] if message.anonymous_id is not None else None
        ids.append((user, anon))

    pairs = list(dict.fromkeys((user, anon) for user, anon in ids if user and anon))
    link = link_pairs(workspace_id, kind, pairs, cause=cause)
    counts.merges = len(link.merges)
    counts.conflicts = [conflict.as_dict() for conflict in link.conflicts]
    users = resolve(workspace_id, kind, list(dict.fromkeys(user for user, _ in ids if user)))
    devices = resolve(
        workspace_id, ANONYMOUS_KIND, list(dict.fromkeys(anon for user, anon in ids if anon and not user))
    )
    counts.profiles_created = link.created + users.created + devices.created

    properties: dict[int, dict] = defaultdict(dict)
    cohort_state: dict[str, dict[int, bool]] = defaultdict(dict)  # last message wins within a batch
    for message, (user, anon) in zip(messages, ids, strict=True):
        profile_id = users.profile_ids.get(user) if user else devices.profile_ids.get(anon) if anon else None
        if profile_id is None:
            continue
        if message.properties:
            properties[profile_id].update(message.properties)
        for cohort_id, flag in message.cohorts.items():
            cohort_state[cohort_id][profile_id] = flag

    add_properties(workspace_id, properties)
    for cohort_id, states in cohort_state.items():
        segment_row = ensure_segment(workspace_id, CohortRef(cohort_id, people.cohort_names.get(cohort_id, cohort_id)))
        result = apply_changes(
            segment_row,
            add=[pid for pid, inside in states.items() if inside],
            remove=[pid for pid, inside in states.items() if not inside],
            cause=cause,
        )
        counts.added, counts.removed = counts.added + result.added, counts.removed + result.removed

    if aliases:
        _apply_aliases(batch, kind, aliases, blocked, cause, counts)
    return counts


def _apply_aliases(
    batch: InboundBatch, kind: str, aliases: list, blocked: frozenset, cause: Cause, counts: Counts
) -> None:
    """Segment alias: userId and previousId are one person.

    previousId a user id someone already holds: that person gains userId (when nobody holds it), or,
    when userId belongs to another known person, a conflict is recorded (known people never merge
    automatically). Otherwise previousId is an anonymous id: linked exactly as identify's
    anonymousId is, merging the anonymous profile into the known one.
    """
    workspace_id = batch.workspace_id
    for _position, raw_user, raw_previous in aliases:
        user, previous = clean_identity(raw_user, blocked)[0], clean_identity(raw_previous, blocked)[0]
        if not user or not previous or user == previous:
            continue
        previous_owner = lookup(workspace_id, kind, [previous]).get(previous)
        if previous_owner is None:
            link = link_pairs(workspace_id, kind, [(user, previous)], cause=cause)
            counts.merges += len(link.merges)
            counts.conflicts += [conflict.as_dict() for conflict in link.conflicts]
            counts.profiles_created += link.created
            continue
        user_owner = lookup(workspace_id, kind, [user]).get(user)
        if user_owner is None:
            attach_identities(workspace_id, kind, [user], [previous_owner], "push")
        elif user_owner != previous_owner:
            counts.conflicts.append(
                Conflict(
                    (kind, user),
                    (kind, previous),
                    user_owner,
                    previous_owner,
                    f"alias: {kind} {previous!r} and {user!r} belong to two known profiles ({previous_owner}, "
                    f"{user_owner}); known profiles are never merged automatically",
                ).as_dict()
            )


# --- the ordered apply loop --------------------------------------------------------------------------


def _lock_key(workspace_id: int, segment_id: int | None) -> str:
    return f"inbound:{workspace_id}:{segment_id or 'workspace'}"


def _next_pending_id(workspace_id: int, segment_id: int | None) -> int | None:
    segment_filter = "segment_id = %s" if segment_id else "segment_id IS NULL"
    params = [workspace_id, segment_id] if segment_id else [workspace_id]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM inbound_inboundbatch WHERE workspace_id = %s AND {segment_filter} "
            "AND status = 'accepted' ORDER BY id LIMIT 1",
            params,
        )
        row = cursor.fetchone()
    return row[0] if row else None


class ApplyStalled(Exception):
    """A batch raised and will be retried later; later batches of its scope wait (order is kept)."""


def prepare_next(workspace_id: int, segment_id: int) -> bool:
    """Resolve the identities of the next unprepared list-add batch of a segment, outside its lock.

    Creating the people of a batch does not depend on order (resolve is idempotent and finds what
    anyone created), so an applier that finds the segment busy does that part of a later batch
    instead of waiting: the ordered apply then only looks them up and writes the ledger, and the
    two workers' cores share the work. SKIP LOCKED: never the batch being applied or prepared.
    Returns False when there was nothing to prepare.
    """
    with transaction.atomic():
        batch = (
            InboundBatch.objects.select_for_update(skip_locked=True)
            .filter(
                workspace_id=workspace_id,
                segment_id=segment_id,
                status=BatchStatus.ACCEPTED,
                endpoint=Endpoint.LIST_ADD,
                prepared=False,
            )
            .only("id", "workspace_id", "identity_kind", "body")
            .order_by("id")
            .first()
        )
        if batch is None:
            return False
        try:
            with transaction.atomic():  # a savepoint: a failed preparation still marks the batch
                change = amplitude_lists.parse_change(safe_json.loads(bytes(batch.body)), add=True)
                created = resolve(workspace_id, stored_kind(batch.identity_kind), change.values).created
        except Exception:  # the ordered apply meets the same error and records it on the batch
            logger.exception("inbound batch %s could not be prepared; it will be applied without", batch.pk)
            created = 0
        InboundBatch.objects.filter(pk=batch.pk).update(prepared=True, profiles_created=created)
    return True


def _try_scope_lock(workspace_id: int, segment_id: int | None) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [_lock_key(workspace_id, segment_id)]
        )
        return cursor.fetchone()[0]


def apply_pending(workspace_id: int, segment_id: int | None = None, *, max_batches: int | None = None) -> int:
    """Apply the accepted batches of one scope in id order, one transaction each. Returns how many.

    Never waits for a busy scope: a worker that finds another applying it prepares that list's later
    batches (prepare_next) or leaves, free for other lists and the workspace's identifies; the
    holder applies everything pending, looking again after it lets go, so a batch whose own task
    left while the scope was busy is not stranded.
    """
    done = 0
    while max_batches is None or done < max_batches:
        with transaction.atomic():
            # Serialises appliers of one scope; released at commit, so a killed worker releases it too.
            busy = not _try_scope_lock(workspace_id, segment_id)
            outcome = None if busy else _apply_next(workspace_id, segment_id)
        if busy:
            if segment_id is not None and prepare_next(workspace_id, segment_id):
                continue  # did a later batch's identity work while another worker applies
            return done
        if isinstance(outcome, ApplyStalled):
            raise outcome  # raised after the block committed the attempt count
        if outcome == "applied":
            done += 1
        elif outcome is None and _next_pending_id(workspace_id, segment_id) is None:
            return done  # none left, also after letting go of the lock
    return done


def _apply_next(workspace_id: int, segment_id: int | None) -> str | ApplyStalled | None:
    """Apply the scope's next batch (the caller holds the scope lock): "applied", "failed" (given up
    after INBOUND_MAX_APPLY_ATTEMPTS), an ApplyStalled to raise after commit, or None if none is pending."""
    batch_id = _next_pending_id(workspace_id, segment_id)
    if batch_id is None:
        return None
    batch = InboundBatch.objects.select_for_update().get(pk=batch_id)
    batch.attempts += 1
    try:
        with transaction.atomic():
            apply_batch(batch)
    except Exception as exc:
        logger.exception("inbound batch %s failed to apply (attempt %s)", batch.pk, batch.attempts)
        failed = batch.attempts >= settings.INBOUND_MAX_APPLY_ATTEMPTS
        InboundBatch.objects.filter(pk=batch.pk).update(
            attempts=batch.attempts,
            last_error=storable(f"{type(exc).__name__}: {exc}", 2000),
            status=BatchStatus.FAILED if failed else BatchStatus.ACCEPTED,
        )
        return "failed" if failed else ApplyStalled(f"batch {batch.pk} will be retried: {exc}")
    batch.status, batch.applied_at, batch.last_error = BatchStatus.APPLIED, timezone.now(), ""
    batch.save(
        update_fields=[
            "status",
            "applied_at",
            "attempts",
            "last_error",
            "added",
            "removed",
            "profiles_created",
            "merges",
            "conflicts",
            "invalid",
            "invalid_count",
        ]
    )
    return "applied"


def pending_scopes(older_than=None) -> list[tuple[int, int | None]]:
    """(workspace, segment) scopes that have accepted batches (received before `older_than`, if given)."""
    sql = "SELECT DISTINCT workspace_id, segment_id FROM inbound_inboundbatch WHERE status = 'accepted'"
    params = []
    if older_than is not None:
        sql += " AND received_at < %s"
        params.append(older_than)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def backlog(workspace_id: int, cap: int | None = None) -> int:
    """Accepted, not yet applied batches of a workspace; counting stops at `cap` (cheap on the partial index)."""
    with connection.cursor() as cursor:
        if cap is None:
            cursor.execute(
                "SELECT count(*) FROM inbound_inboundbatch WHERE workspace_id = %s AND status = 'accepted'",
                [workspace_id],
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM (SELECT 1 FROM inbound_inboundbatch WHERE workspace_id = %s "
                "AND status = 'accepted' LIMIT %s) AS pending",
                [workspace_id, cap],
            )
        return cursor.fetchone()[0]
