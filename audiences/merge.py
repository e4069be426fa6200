"""Linking identities and merging an anonymous profile into a known one (the merge rules in docs/partner-apis.md).

- A device-only (anonymous) profile that gains a known credential which nobody holds simply keeps
  its row and gains the credential: nothing to merge.
- When the known credential already belongs to another profile, the anonymous profile is merged
  into that known one: identities, properties (the known profile's values win), memberships (through
  the ledger, source "merge": the kept profile is added where it was not a member, the anonymous one
  removed — ledger rows only for real changes, so segment sizes stay right), events and event
  counts move; the anonymous profile row is deleted; a ProfileMerge row keeps the history.
- Two profiles that both hold known credentials are never merged automatically: the caller gets a
  Conflict with the reason and nothing changes.
"""

from dataclasses import dataclass, field

from django.db import connection, transaction

from audiences.identity import insert_identities_sql, lookup, resolve
from audiences.ledger import Cause, apply_changes
from audiences.models import KNOWN_KINDS, Profile, ProfileMerge, Segment
from audiences.people_lock import hold_people

ANONYMOUS_KIND = "device_id"


@dataclass
class Conflict:
    known: tuple[str, str]
    device: tuple[str, str]
    known_profile_id: int
    other_profile_id: int
    reason: str

    def as_dict(self) -> dict:
        return {
            "known": list(self.known),
            "device": list(self.device),
            "known_profile_id": self.known_profile_id,
            "other_profile_id": self.other_profile_id,
            "reason": self.reason,
        }


@dataclass
class LinkResult:
    profile_ids: dict[str, int] = field(default_factory=dict)  # known value -> its profile after linking
    merges: list[ProfileMerge] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    created: int = 0


def _known_kinds_of(profile_ids: list[int]) -> dict[int, bool]:
    """profile id -> whether it holds any known credential."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT p, EXISTS (SELECT 1 FROM audiences_identity i WHERE i.profile_id = p
                   AND (i.kind = ANY(%s) OR i.kind LIKE 'property:%%'))
               FROM unnest(%s::bigint[]) AS p""",
            [list(KNOWN_KINDS), profile_ids],
        )
        return dict(cursor.fetchall())


def merge_profiles(
    workspace_id: int, kept_id: int, removed_id: int, *, reason: str, cause: Cause | None = None
) -> ProfileMerge:
    """Fold the anonymous profile `removed_id` into `kept_id`. Refuses (ValueError) if it holds a known credential."""
    if kept_id == removed_id:
        raise ValueError("cannot merge a profile into itself")
    with transaction.atomic():
        hold_people(workspace_id)
        # Lock both rows in id order so two merges touching the same people cannot deadlock.
        profiles = {
            p.pk: p
            for p in Profile.objects.select_for_update()
            .filter(workspace_id=workspace_id, pk__in=sorted([kept_id, removed_id]))
            .order_by("pk")
        }
        if len(profiles) != 2:
            raise ValueError("both profiles must exist in the workspace")
        if _known_kinds_of([removed_id])[removed_id]:
            raise ValueError(
                f"profile {removed_id} holds a known credential; known profiles are never merged automatically"
            )
        moved = list(profiles[removed_id].identities.order_by("id").values_list("kind", "value"))
        merge = ProfileMerge.objects.create(
            workspace_id=workspace_id,
            kept_profile_id=kept_id,
            removed_profile_id=removed_id,
            identities=[list(pair) for pair in moved],
            reason=reason,
            cause_type=cause.type if cause else "",
            cause_id=cause.id if cause else None,
        )
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audiences_identity SET profile_id = %s WHERE profile_id = %s", [kept_id, removed_id])
            # Known profile's properties win; event counts add up per event type.
            cursor.execute(
                """UPDATE audiences_profile k SET
                       properties = r.properties || k.properties,
                       event_counts = (
                           SELECT coalesce(jsonb_object_agg(key, total), '{}'::jsonb) FROM (
                               SELECT key, sum(value::numeric) AS total FROM (
                                   SELECT * FROM jsonb_each_text(k.event_counts)
                                   UNION ALL SELECT * FROM jsonb_each_text(r.event_counts)
                               ) e GROUP BY key
                           ) s),
                       updated_at = now()
                   FROM audiences_profile r WHERE k.id = %s AND r.id = %s""",
                [kept_id, removed_id],
            )
            cursor.execute(
                "UPDATE audiences_event SET profile_id = %s WHERE workspace_id = %s AND profile_id = %s",
                [kept_id, workspace_id, removed_id],
            )
            # Earlier merges into the anonymous profile now point at the survivor (else they'd cascade away).
            cursor.execute(
                "UPDATE audiences_profilemerge SET kept_profile_id = %s WHERE kept_profile_id = %s",
                [kept_id, removed_id],
            )
        merge_cause = Cause(source="merge", type="merge", id=merge.pk)
        for segment in Segment.objects.filter(members__profile_id=removed_id).distinct():
            apply_changes(segment, add=[kept_id], cause=merge_cause)
            apply_changes(segment, remove=[removed_id], cause=merge_cause)
        # Raw DELETE, not the ORM's: Django would cascade to MembershipChange (db_constraint=False) and
        # erase the anonymous profile's ledger history, which must survive the merge.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audiences_profile WHERE id = %s", [removed_id])
    return merge


def link_identity(
    workspace_id: int,
    known: tuple[str, str],
    device: tuple[str, str],
    *,
    cause: Cause | None = None,
    source: str = "push",
) -> tuple[int, ProfileMerge | Conflict | None]:
    """Make `known` (e.g. user_id) and `device` (e.g. device_id) name one profile. Returns (profile id, what happened)."""
    known_kind, known_value = known
    device_kind, device_value = device
    with transaction.atomic():
        device_owner = lookup(workspace_id, device_kind, [device_value]).get(device_value)
        known_owner = lookup(workspace_id, known_kind, [known_value]).get(known_value)
        if known_owner is None and device_owner is not None and not _known_kinds_of([device_owner])[device_owner]:
            # The anonymous person registers: their profile gains the credential, no merge.
            attach_identities(workspace_id, known_kind, [known_value], [device_owner], source)
            known_owner = lookup(workspace_id, known_kind, [known_value])[known_value]
            if known_owner == device_owner:
                return known_owner, None
        if known_owner is None:
            known_owner = resolve(workspace_id, known_kind, [known_value], source=source).profile_ids[known_value]
        if device_owner is None:
            attach_identities(workspace_id, device_kind, [device_value], [known_owner], source)
            device_owner = lookup(workspace_id, device_kind, [device_value])[device_value]
        if device_owner == known_owner:
            return known_owner, None
        if _known_kinds_of([device_owner])[device_owner]:
            return known_owner, Conflict(
                known,
                device,
                known_owner,
                device_owner,
                f"{device_kind} {device_value!r} belongs to profile {device_owner}, which holds a known credential too; "
                "known profiles are never merged automatically",
            )
        merge = merge_profiles(
            workspace_id,
            known_owner,
            device_owner,
            reason=f"{device_kind} {device_value!r} identified as {known_kind} {known_value!r}",
            cause=cause,
        )
        return known_owner, merge


def attach_identities(workspace_id: int, kind: str, values: list[str], profile_ids: list[int], source: str) -> None:
    """Give profiles new identities, set-wise; a value someone else already holds is left alone."""
    hold_people(workspace_id)
    with connection.cursor() as cursor:
        cursor.execute(
            insert_identities_sql(
                "unnest(%(values)s::text[], %(profiles)s::bigint[]) AS t(v, p)",
                kind="%(kind)s",
                value="v",
                profile_id="p",
            )
            + " ON CONFLICT (workspace_id, kind, value) DO NOTHING",
            {"workspace": workspace_id, "kind": kind, "source": source, "values": values, "profiles": profile_ids},
        )


def link_pairs(
    workspace_id: int,
    known_kind: str,
    pairs: list[tuple[str, str]],
    *,
    cause: Cause | None = None,
    source: str = "push",
) -> LinkResult:
    """Link many (known value, device id) pairs, set-wise for the common cases.

    Pairs already on one profile, new devices of known people, and brand-new people are handled by a
    few statements; only pairs that need a merge or a conflict decision go one by one, in order.
    """
    result = LinkResult()
    if not pairs:
        return result
    # A value seen in two pairs needs the sequential rules (the second may be a conflict).
    seen_known: dict[str, int] = {}
    seen_device: dict[str, int] = {}
    for known_value, device_value in pairs:
        seen_known[known_value] = seen_known.get(known_value, 0) + 1
        seen_device[device_value] = seen_device.get(device_value, 0) + 1
    simple = [(k, d) for k, d in pairs if seen_known[k] == 1 and seen_device[d] == 1]
    ordered = [(k, d) for k, d in pairs if seen_known[k] > 1 or seen_device[d] > 1]
    with transaction.atomic():
        known_owner = lookup(workspace_id, known_kind, [k for k, _ in simple])
        device_owner = lookup(workspace_id, ANONYMOUS_KIND, [d for _, d in simple])
        anonymous = _known_kinds_of(list(set(device_owner.values()))) if device_owner else {}
        # Anonymous people registering: their device-only profile gains the credential.
        registering = [
            (k, device_owner[d])
            for k, d in simple
            if k not in known_owner and d in device_owner and not anonymous[device_owner[d]]
        ]
        if registering:
            attach_identities(
                workspace_id, known_kind, [k for k, _ in registering], [p for _, p in registering], source
            )
            known_owner.update(lookup(workspace_id, known_kind, [k for k, _ in registering]))
        brand_new = [k for k, _ in simple if k not in known_owner]
        if brand_new:
            resolution = resolve(workspace_id, known_kind, brand_new, source=source)
            result.created += resolution.created
            known_owner.update(resolution.profile_ids)
        new_devices = [(d, known_owner[k]) for k, d in simple if d not in device_owner]
        if new_devices:
            attach_identities(
                workspace_id, ANONYMOUS_KIND, [d for d, _ in new_devices], [p for _, p in new_devices], source
            )
            device_owner.update(lookup(workspace_id, ANONYMOUS_KIND, [d for d, _ in new_devices]))
        result.profile_ids.update(known_owner)
        for known_value, device_value in simple:
            if device_owner.get(device_value) != known_owner[known_value]:
                ordered.append((known_value, device_value))
    for known_value, device_value in ordered:
        profile_id, outcome = link_identity(
            workspace_id, (known_kind, known_value), (ANONYMOUS_KIND, device_value), cause=cause, source=source
        )
        result.profile_ids[known_value] = profile_id
        if isinstance(outcome, ProfileMerge):
            result.merges.append(outcome)
        elif isinstance(outcome, Conflict):
            result.conflicts.append(outcome)
    return result
