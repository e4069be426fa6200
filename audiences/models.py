"""People, their identities, segments, the membership ledger and events.

The ledger (MembershipChange) is the truth (docs/invariants.md, invariant 1): SegmentMember is its current
state, Segment.size its running count; both are written only by audiences.ledger in the same
statement as the ledger rows, so they cannot disagree.
"""

from typing import Self

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from workspaces.models import Workspace, WorkspaceScopedQuerySet

# Identity kinds that name a known person. Device-like kinds (device_id, install_token,
# amplitude_id) do not: a profile holding only those is anonymous and may be merged into a known one.
KNOWN_KINDS = frozenset({"user_id", "email", "username", "fb_id", "phone"})
DEVICE_KINDS = frozenset({"device_id", "install_token", "amplitude_id", "idfa", "idfv", "adid", "android_id"})


# Hot tables (profiles, identities, members) are written 10,000 rows at a time by inbound pushes
# and imports. Their foreign keys are kept in Django (cascading deletes, joins) but not enforced by
# PostgreSQL: deferred FK checks cost about half of each batch's commit time, and every write to
# these tables goes through audiences.identity / audiences.ledger / audiences.merge, which only
# ever reference rows they just read or created in the same transaction.
class Profile(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="profiles", db_constraint=False)
    properties = models.JSONField(default=dict, blank=True)
    # Per event type counts, maintained set-wise by the event loaders: {"Purchase": 3, ...}.
    event_counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    # No index on updated_at (nothing orders or filters people by it): a cohort re-import rewrites
    # every member's properties, and with no indexed column changing, and the free half of each
    # page that the table's fillfactor (50, migration 0004) keeps, those updates are HOT: no new
    # index entries, and each page's old versions are pruned when it is next updated.

    def __str__(self) -> str:
        return f"profile {self.pk}"


class Identity(models.Model):
    """One identifier of one profile: unique per workspace and kind."""

    # Indexes are chosen by hand on the hot tables below: each one costs every bulk insert.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="identities", db_index=False, db_constraint=False
    )
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities", db_constraint=False)
    kind = models.CharField(max_length=64, help_text="user_id, email, device_id, install_token, amplitude_id, …")
    # Collated "C" (byte order): equality is the same as under any deterministic collation, and a
    # prefix ("find people whose id starts with …") is one range of the unique index below, whatever
    # the database's default collation.
    value = models.CharField(max_length=512, db_collation="C")
    source = models.CharField(max_length=32, default="push", help_text="Which path first gave it: push, import, …")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "identities"
        # Also serves "find a person by any identity value", whatever its kind: the value is probed
        # under each of the workspace's kinds (audiences.identity.identities_with_value), so no
        # second (workspace, value) index slows every bulk insert of identities.
        constraints = [models.UniqueConstraint(fields=["workspace", "kind", "value"], name="identity_unique")]

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"

    @property
    def is_known(self) -> bool:
        return self.kind in KNOWN_KINDS or self.kind.startswith("property:")


class SegmentType(models.TextChoices):
    PARTNER_AMPLITUDE = "partner_amplitude", "Partner - Amplitude"
    AMPLITUDE_IMPORT = "amplitude_import", "Amplitude import"
    SEGMENT_TRAIT = "segment_trait", "Partner - Segment/RudderStack"
    MANUAL = "manual", "Manual"


class Segment(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=32, choices=SegmentType.choices)
    external_id = models.CharField(max_length=255, help_text="The partner's id, e.g. the Amplitude cohort id.")
    partner_name = models.CharField(max_length=64, default="Amplitude")
    description = models.TextField(blank=True)
    # Maintained in the same statement as the ledger rows (audiences.ledger): never a COUNT(*) per page view.
    size = models.BigIntegerField(default=0)
    last_changed_at = models.DateTimeField(null=True, blank=True)
    last_computed_at = models.DateTimeField(null=True, blank=True, help_text="When the partner last computed it.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace", "name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "type", "external_id"], name="segment_external_unique")
        ]

    def __str__(self) -> str:
        return self.name


class SegmentMember(models.Model):
    """Who is in a segment now. Written only by audiences.ledger."""

    # The unique (segment, profile) index serves segment lookups; profile gets the FK's own index.
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="members", db_index=False, db_constraint=False
    )
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="memberships", db_constraint=False)
    added_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "profile"], name="segment_member_unique")]
        # A segment's members newest first (the segment page, the API's member list) in keyset
        # pages: without it a 1M-member segment's first page walked the whole table backwards
        # (1.7 s with 3M member rows; bench/scale).
        indexes = [models.Index(fields=["segment", "id"], name="segment_member_newest")]


class ChangeAction(models.TextChoices):
    ADDED = "added", "Added"
    REMOVED = "removed", "Removed"


class ChangeSource(models.TextChoices):
    PUSH = "push", "Push"
    IMPORT = "import", "Import"
    MANUAL = "manual", "Manual"
    MERGE = "merge", "Merge"


class MembershipChangeQuerySet(WorkspaceScopedQuerySet):
    def since(self, when) -> Self:
        return self.filter(occurred_at__gte=when)


class MembershipChange(models.Model):
    """The membership ledger: one row per real entry into or exit from a segment.

    Partitioned by month of occurred_at (audiences.partitions): the primary key in the database is
    (id, occurred_at); `id` alone is still unique (one sequence) and is Django's primary key.

    Each row is the "Partner Sync" event: Partner Segment Name, Action, Partner Segment ID, Source,
    Partner Name (see partner_sync_properties). Outbound syncs read it with an id cursor.
    """

    id = models.BigAutoField(primary_key=True)
    # An append-only history written 10,000 rows at a time: no database-level foreign keys (each
    # would be checked per row at commit) and only the composite indexes below, which also serve
    # the single-column lookups. Deletes still cascade through the ORM. No (cause_type, cause_id)
    # index: a cause's rows are found through the segment or the profile they belong to.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="changes", db_constraint=False, db_index=False
    )
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="changes", db_constraint=False, db_index=False
    )
    action = models.CharField(max_length=8, choices=ChangeAction.choices)
    source = models.CharField(max_length=8, choices=ChangeSource.choices)
    cause_type = models.CharField(max_length=32, help_text="inbound_batch, import_run, merge, manual")
    cause_id = models.BigIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField()

    objects = MembershipChangeQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["segment", "id"], name="ledger_segment_cursor"),
            models.Index(fields=["segment", "occurred_at"], name="ledger_segment_time"),
            models.Index(fields=["profile", "id"], name="ledger_profile"),
            models.Index(fields=["workspace", "id"], name="ledger_workspace_cursor"),
        ]

    def partner_sync_properties(self) -> dict:
        segment = self.segment
        return {
            "Partner Segment Name": segment.name,
            "Action": self.get_action_display(),
            "Partner Segment ID": segment.external_id,
            "Source": self.get_source_display(),
            "Partner Name": segment.partner_name,
        }


class ProfileMerge(models.Model):
    """An anonymous (device-only) profile folded into a known one. Kept for the per-person trace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    kept_profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges_in")
    removed_profile_id = models.BigIntegerField(help_text="The anonymous profile's id; that row is deleted.")
    identities = models.JSONField(default=list, help_text="The identities moved: [[kind, value], …]")
    reason = models.CharField(max_length=255)
    cause_type = models.CharField(max_length=32, blank=True)
    cause_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["removed_profile_id"])]


class Event(models.Model):
    """A behavioral event (Export API import or a /v1 track call), linked to its profile.

    Partitioned by month of event_time (audiences.partitions); database primary key (id, event_time).
    """

    id = models.BigAutoField(primary_key=True)
    # Like the other hot tables: no database foreign key (a deferred check per row at commit) and no
    # single-column indexes: event_profile_time leads with profile, the unique indexes with workspace.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False, db_index=False
    )
    source = models.CharField(max_length=16, default="import")
    uuid = models.CharField(max_length=64, null=True, blank=True)
    insert_id = models.CharField(max_length=255, null=True, blank=True)
    event_type = models.CharField(max_length=255)
    # The partition key (audiences.partitions), so part of the primary key and never null: an event
    # without a time gets its upload time or its arrival (audiences.events), as Amplitude does.
    event_time = models.DateTimeField(db_default=Now())
    user_id = models.CharField(max_length=512, null=True, blank=True)
    device_id = models.CharField(max_length=512, null=True, blank=True)
    amplitude_id = models.BigIntegerField(null=True, blank=True)
    session_id = models.BigIntegerField(null=True, blank=True)
    platform = models.CharField(max_length=64, null=True, blank=True)
    os_name = models.CharField(max_length=64, null=True, blank=True)
    device_type = models.CharField(max_length=128, null=True, blank=True)
    country = models.CharField(max_length=64, null=True, blank=True)
    region = models.CharField(max_length=128, null=True, blank=True)
    city = models.CharField(max_length=128, null=True, blank=True)
    ip_address = models.CharField(max_length=64, null=True, blank=True)
    event_properties = models.JSONField(default=dict, blank=True)
    user_properties = models.JSONField(default=dict, blank=True)
    group_properties = models.JSONField(default=dict, blank=True)
    # Every other field of the source row (an Export API event has many: docs/partner-apis.md section 2), verbatim.
    data = models.JSONField(default=dict, blank=True)
    server_upload_time = models.DateTimeField(null=True, blank=True)
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Every unique index of a partitioned table holds its partition key (event_time): the
            # same uuid at the same time is the same event (docs/operations.md, "Partitions").
            models.UniqueConstraint(
                fields=["workspace", "uuid", "event_time"], condition=Q(uuid__isnull=False), name="event_uuid_unique"
            ),
            models.UniqueConstraint(
                fields=["workspace", "insert_id", "event_time"],
                condition=Q(insert_id__isnull=False),
                name="event_insert_id_unique",
            ),
        ]
        # Only the per-person timeline (profile, event_time) is indexed: no query reads events by
        # type and time (the Kochava stream walks the primary key), and every index costs every
        # imported event (a (workspace, event_type, event_time) index was a fifth of the insert).
        indexes = [models.Index(fields=["profile", "event_time"], name="event_profile_time")]


class ErasureVia(models.TextChoices):
    API = "api", "Management API"
    CONSOLE = "console", "Console"
    ADMIN = "admin", "Admin"


class Erasure(models.Model):
    """The audit row of one erasure (audiences.erasure): that it happened, when, through which door
    and who asked; how many rows went and what each destination answered. Never whom: no identifier
    of the person and no hash of one (a hash of an email is reversed by guessing emails)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, help_text="The asker as they were named then.")
    via = models.CharField(max_length=8, choices=ErasureVia.choices)
    counts = models.JSONField(default=dict, help_text="Rows removed or rewritten, per table.")
    destinations = models.JSONField(default=list, help_text="Each destination's outcome.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When the partners had answered.")

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"erasure {self.pk} by {self.requested_by_label}"

    OUTCOME_LABELS = {
        "pending": "not asked yet",
        "deleted": "deleted",
        "failed": "failed",
        "not_supported": "remove by hand",
        "not_sent": "never sent",
    }

    @property
    def outcomes(self) -> list[dict]:
        """The destinations' outcomes with a label for people."""
        return [{**d, "label": self.OUTCOME_LABELS.get(d.get("outcome"), d.get("outcome"))} for d in self.destinations]
