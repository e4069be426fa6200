"""Erasing a person: every row that names them, in one transaction, safe against concurrent writers.

What goes (docs/privacy.md says it for operators):
- rows that point at the person's profile, found from the models of every app (any foreign key to
  Profile, any integer column named profile_id): identities, memberships (segment sizes follow),
  ledger rows, events, merge records, delivery rows, Kochava links, … and whatever table a later
  app adds with such a column (campaign enrollments, say) — no list to keep up to date here;
- rows that point at those events (any column named event_id, e.g. Kochava event outcomes);
- the person inside raw inbound bodies, applied or not: their ids and their messages are removed
  from the stored JSON and the rest of the batch is kept (other people's data is not deleted), so a
  batch not applied yet cannot bring them back; invalid rows and conflicts naming them go too;
- their identifiers in other people's events (a shared device: nulled), other people's rows keyed
  by them (keyed_by_id(): deleted), and the bounded logs and error texts (log_columns(): "[erased]");
- one Erasure row records that an erasure happened, when, through which door and who asked — never
  whom (no identifier, no hash of one).

Concurrency (audiences.people_lock): the erasure holds the workspace's SERIAL lock throughout (one
at a time; senders see it and pause) and takes its PEOPLE lock exclusively once the batches are
scrubbed, so it waits for writers in flight and later writers wait for it. A push arriving
meanwhile is applied after the erasure and makes a new, clean person.
Set-based throughout: one statement per table, whatever the number of events or ledger rows.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone

from audiences.identity import identities_with_value, identity_kinds
from audiences.models import Erasure, Profile
from audiences.people_lock import PEOPLE_LOCK, SERIAL_LOCK, lock
from integrations.connectors.registry import partner_declarations
from integrations.delivery import erasure as partners
from integrations.inbound.models import InboundBatch, InboundRequest
from integrations.inbound.views import PREVIEW_CHARS

logger = logging.getLogger(__name__)

ERASED = "[erased]"
# Characters that continue an identifier: a value is only redacted from text where it stands alone,
# so erasing "42" leaves "1420" alone.
_ID_CHAR = r"[\w.@+\-]"

# Free text that may quote an identifier (a partner's answer, an error), in bounded or small tables:
# (table, text columns, jsonb columns, the workspace's rows). Inbound bodies are handled on their own.
# Partner apps add their own tables (their erasure.py, through the registry).
LOG_COLUMNS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("inbound_inboundrequest", ("body_preview", "path", "error"), ("headers",), "workspace_id = %(workspace)s"),
    (
        "delivery_partnercall",
        ("url", "request_summary", "response_excerpt", "error"),
        (),
        "destination_id IN (SELECT id FROM delivery_destination WHERE workspace_id = %(workspace)s)",
    ),
    ("delivery_syncrun", ("error",), (), "workspace_id = %(workspace)s"),
    ("delivery_destination", ("last_error",), (), "workspace_id = %(workspace)s"),
    ("sources_importrun", ("error", "phase"), ("counts",), "workspace_id = %(workspace)s"),
)


def log_columns() -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
    return [*LOG_COLUMNS, *partner_declarations("erasure", "LOG_COLUMNS")]


def keyed_by_id() -> list[tuple[str, str]]:
    """Other people's rows keyed by an identifier, which may be the erased person's (a partner's link
    of a shared device, say): (table, column); the table has workspace_id. Partner apps declare them."""
    return partner_declarations("erasure", "KEYED_BY_ID")


class ErasureBusy(Exception):
    """A long writer (a cohort import, say) holds the workspace's people: try again in a while."""


class AmbiguousIdentity(Exception):
    """The value names several people under different kinds: the caller must say which kind."""

    def __init__(self, kinds: list[str]):
        super().__init__(f"This value names {len(kinds)} people (as {', '.join(kinds)}); say which kind.")
        self.kinds = kinds


# ---- naming a person -----------------------------------------------------------------------------


def _id_text(leaf: object) -> str | None:
    """A JSON leaf as the identity value it would become (ids may be numbers: 12 and 12.0 are "12")."""
    if isinstance(leaf, bool) or leaf is None:
        return None
    if isinstance(leaf, float) and leaf.is_integer():
        leaf = int(leaf)
    return str(leaf).strip() if isinstance(leaf, str | int | float) else None


class Redactor:
    """Knows what names the person: their identities as (kind, value), and the bare values.

    Where the kind is known (the ids of a push: the key's kind, anonymous ids are device ids) only
    their identities count, so another person whose user id happens to equal their device id keeps
    their data. In free text and other people's properties only the bare value is there to go by.
    """

    def __init__(self, identities: Iterable[tuple[str, str]] = (), values: Iterable[str] = ()):
        self.identities = frozenset((kind, str(value)) for kind, value in identities)
        self.values = frozenset(v for v in [*(value for _, value in self.identities), *map(str, values)] if v)
        alternatives = "|".join(re.escape(v) for v in sorted(self.values, key=len, reverse=True))
        self.pattern = re.compile(rf"(?<!{_ID_CHAR})(?:{alternatives})(?!{_ID_CHAR})") if self.values else None

    def owns(self, kind: str, leaf: object) -> bool:
        """The leaf is the person's identity of this kind (or their bare value, when no kind is known
        for it: a value the erasure was asked for that nobody holds)."""
        value = _id_text(leaf)
        return value is not None and ((kind, value) in self.identities or value in self.loose)

    @property
    def loose(self) -> frozenset[str]:
        return self.values - {value for _, value in self.identities}

    def names(self, leaf: object) -> bool:
        return _id_text(leaf) in self.values

    def text(self, text: str) -> str:
        return self.pattern.sub(ERASED, text) if self.pattern and text else text

    def mentions(self, obj: object) -> bool:
        if isinstance(obj, dict):
            return any(self.mentions(k) or self.mentions(v) for k, v in obj.items())
        if isinstance(obj, list):
            return any(self.mentions(item) for item in obj)
        if isinstance(obj, str) and self.pattern and self.pattern.search(obj):
            return True
        return self.names(obj)

    def json(self, obj: object) -> object:
        """A copy without the values: a leaf naming the person becomes null, a key naming them goes,
        text quoting them gets "[erased]"."""
        if isinstance(obj, dict):
            return {self.text(k): self.json(v) for k, v in obj.items() if not self.names(k)}
        if isinstance(obj, list):
            return [self.json(item) for item in obj]
        if self.names(obj):
            return None
        return self.text(obj) if isinstance(obj, str) else obj


# A pushed message's ids and their kinds ("key" = the kind of the API key that pushed it).
_MESSAGE_IDS = (("userId", "key"), ("user_id", "key"), ("anonymousId", "device_id"), ("anonymous_id", "device_id"))


def _message_is_theirs(message: dict, key_kind: str, redactor: Redactor) -> bool:
    """Their message: its user id is theirs or, without one, its anonymous id. Someone else's message
    that mentions them (on a shared device, say) is not theirs: it stays, the mention nulled."""
    for names, kind in ((("userId", "user_id"), key_kind), (("anonymousId", "anonymous_id"), "device_id")):
        primary = next((message[name] for name in names if message.get(name) not in (None, "")), None)
        if primary is not None:
            return redactor.owns(kind, primary)
    return False


def _scrub_message(message: object, key_kind: str, redactor: Redactor) -> object:
    """Someone else's message: their own ids stay (unless they are the person's), the rest is redacted."""
    if not isinstance(message, dict):
        return redactor.json(message)
    kinds = {name: key_kind if kind == "key" else kind for name, kind in _MESSAGE_IDS}
    cleaned = {}
    for name, value in message.items():
        if name in kinds:
            cleaned[name] = None if redactor.owns(kinds[name], value) else value
        elif name == "previousId":  # alias: an earlier user id, or an anonymous id
            theirs = redactor.owns(key_kind, value) or redactor.owns("device_id", value)
            cleaned[name] = None if theirs else value
        else:
            cleaned[redactor.text(name)] = redactor.json(value)
    return cleaned


def scrub_batch_body(body: bytes, key_kind: str, redactor: Redactor) -> bytes | None:
    """The stored body without the person, or None if it does not name them.

    Their ids leave a list push; their messages leave an identify/track batch or a cohort webhook;
    any other mention of them is nulled. Everything else stays, so a batch not applied yet still
    applies for everyone else, and a replay of the original request still matches the batch's
    dedupe key (it is a duplicate and brings nobody back).
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):  # never stored that way (bodies are checked at receipt)
        text = bytes(body).decode("utf-8", "replace")
        cleaned = redactor.text(text)
        return cleaned.encode() if cleaned != text else None
    if not isinstance(payload, dict) or not redactor.mentions(payload):
        return None
    rest = {k: redactor.json(v) for k, v in payload.items() if k not in ("userIds", "users", "batch")}
    if isinstance(payload.get("userIds"), list):  # Amplitude list add/remove
        rest["userIds"] = [value for value in payload["userIds"] if not redactor.owns(key_kind, value)]
    elif isinstance(payload.get("users"), list):  # Amplitude cohort webhook: {"user_id", "user_properties"}
        rest["users"] = [
            {k: v if k == "user_id" else redactor.json(v) for k, v in user.items()} if isinstance(user, dict) else user
            for user in payload["users"]
            if not redactor.owns(key_kind, user.get("user_id") if isinstance(user, dict) else user)
        ]
    elif isinstance(payload.get("batch"), list):  # identify / Segment batches
        rest["batch"] = [
            _scrub_message(message, key_kind, redactor)
            for message in payload["batch"]
            if not (isinstance(message, dict) and _message_is_theirs(message, key_kind, redactor))
        ]
    elif _message_is_theirs(payload, key_kind, redactor):  # one message, theirs: an empty batch applies to nobody
        rest = {"batch": []}
    else:
        rest = _scrub_message(payload, key_kind, redactor)
    order = list(payload) + [k for k in rest if k not in payload]  # keys in their original order
    cleaned = {k: rest[k] for k in order if k in rest}
    if cleaned == payload:  # the value was only someone else's id of another kind
        return None
    return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")).encode()


# ---- what points at a person ---------------------------------------------------------------------


def _points_at(model_field: models.Field, target, name: str) -> bool:
    if model_field.is_relation:
        return model_field.related_model is target and model_field.concrete
    # Exactly `name`: a cursor such as KochavaStream.last_event_id is not a reference.
    return isinstance(model_field, models.IntegerField) and model_field.name == name


def reference_columns(target_label: str, name: str) -> list[tuple[str, str]]:
    """(table, column) of every column of every app pointing at `target_label` rows: a foreign key,
    or an integer column called `name` (the hot tables keep plain ids). Read from the models, so a
    new app's table is covered without a change here."""
    target = apps.get_model(target_label)
    found = []
    for model in apps.get_models():
        if model is target or model._meta.proxy or not model._meta.managed:
            continue
        for model_field in model._meta.concrete_fields:
            if _points_at(model_field, target, name):
                found.append((model._meta.db_table, model_field.column))
    return found


# ---- the erasure ---------------------------------------------------------------------------------


@dataclass
class Person:
    profile_ids: list[int] = field(default_factory=list)
    identities: set[tuple[str, str]] = field(default_factory=set)  # (kind, value) they hold
    loose: set[str] = field(default_factory=set)  # values asked for that nobody held

    @property
    def redactor(self) -> Redactor:
        return Redactor(self.identities, self.loose)


@dataclass
class ErasureResult:
    erasure_id: int
    counts: dict[str, int]
    destinations: list[dict]


def _person(cursor, workspace_id: int, profile_ids: Iterable[int], person: Person) -> Person:
    """The profiles given, whoever holds the person's identities (or a loose value) now, and every
    identity they hold. Run again after the people lock: writers in between may have added some."""
    pairs = sorted(person.identities)
    cursor.execute(
        """SELECT DISTINCT i.profile_id FROM audiences_identity i
           JOIN unnest(%(kinds)s::text[], %(values)s::text[]) AS p(kind, value) ON i.kind = p.kind AND i.value = p.value
           WHERE i.workspace_id = %(workspace)s
           UNION
           SELECT profile_id FROM audiences_identity
           WHERE workspace_id = %(workspace)s AND kind = ANY(%(all_kinds)s) AND value = ANY(%(loose)s)""",
        {
            "workspace": workspace_id,
            "kinds": [k for k, _ in pairs],
            "values": [v for _, v in pairs],
            # Probed under each kind: the unique (workspace, kind, value) index is the only way in.
            "all_kinds": identity_kinds(workspace_id) if person.loose else [],
            "loose": sorted(person.loose),
        },
    )
    ids = {pid for (pid,) in cursor.fetchall()} | set(profile_ids)
    cursor.execute(
        "SELECT id FROM audiences_profile WHERE id = ANY(%s) AND workspace_id = %s", [sorted(ids), workspace_id]
    )
    ids = sorted(pid for (pid,) in cursor.fetchall())
    cursor.execute("SELECT kind, value FROM audiences_identity WHERE profile_id = ANY(%s)", [ids])
    identities = set(cursor.fetchall()) | person.identities
    return Person(ids, identities, person.loose - {value for _, value in identities})


def erase(
    workspace,
    *,
    value: str | None = None,
    kind: str | None = None,
    profile_id: int | None = None,
    user=None,
    label: str = "",
    via: str = "api",
) -> ErasureResult:
    """Erase the person holding `value` (of `kind`, when given) or the profile `profile_id`.

    A value nobody holds is still erased from inbound bodies and logs (it may only be in a batch
    not applied yet). Raises AmbiguousIdentity, ErasureBusy, LookupError (nobody to erase).
    Call it outside a transaction: the partners are asked to delete after the commit, when the
    person can no longer be sent to them again.
    """
    asked = Person()
    if profile_id is not None:
        if not Profile.objects.filter(pk=profile_id, workspace=workspace).exists():
            raise LookupError(f"No person {profile_id} in this workspace.")
        asked.profile_ids.append(profile_id)
    if value is not None and value.strip():
        value = value.strip()
        held = list(identities_with_value(workspace.pk, value, kind).values_list("profile_id", "kind"))
        if len({pid for pid, _ in held}) > 1:
            raise AmbiguousIdentity(sorted({k for _, k in held}))
        asked.profile_ids += [pid for pid, _ in held]
        asked.identities |= {(held_kind, value) for _, held_kind in held}
        if not held:
            asked.loose.add(value)
    if not asked.profile_ids and not asked.loose:
        raise LookupError("Name the person: an identity value or a profile.")

    counts: dict[str, int] = {}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            timeout = f"{settings.ERASURE_LOCK_TIMEOUT_SECONDS}s"
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])
            lock(cursor, "pg_advisory_xact_lock", SERIAL_LOCK, workspace.pk)
            person = _person(cursor, workspace.pk, asked.profile_ids, asked)
            # Batches first, before the people lock: an applier holding one of them finishes (it
            # needs the people lock, shared) and the batch is scrubbed after it.
            _scrub_batches(cursor, workspace.pk, person, counts, skip_locked=False)
            lock(cursor, "pg_advisory_xact_lock", PEOPLE_LOCK, workspace.pk)
            # Writers that finished in between may have given the person another identity.
            person = _person(cursor, workspace.pk, person.profile_ids, person)
            # Batches naming a new value: one locked now is being applied behind the people lock,
            # so it comes after the erasure, like a push made after it.
            _scrub_batches(cursor, workspace.pk, person, counts, skip_locked=True)
            targets = partners.targets(workspace.pk, person.profile_ids)
            # Logs before rows: a run finishing now locks its run row, then its delivery rows; taking
            # them in the same order means the two never wait for each other in a circle.
            _redact_logs(cursor, workspace.pk, person.redactor, counts)
            _delete_rows(cursor, person, counts)
            _redact_other_rows(cursor, workspace.pk, person, counts)
            erasure = Erasure.objects.create(
                workspace=workspace,
                requested_by=user if getattr(user, "pk", None) else None,
                requested_by_label=label[:150],
                via=via,
                counts=counts,
                destinations=[target.outcome("pending") for target in targets],
            )
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == "55P03":  # lock_not_available: lock_timeout passed
            raise ErasureBusy(
                "People of this workspace are being written by a long job (an import, a sync being "
                "planned); nothing was erased. Try again in a few minutes."
            ) from None
        raise
    outcomes = partners.request_deletions(targets, person.redactor)
    Erasure.objects.filter(pk=erasure.pk).update(destinations=outcomes, finished_at=timezone.now())
    logger.info("erasure %s of workspace %s done: %s", erasure.pk, workspace.pk, counts)
    return ErasureResult(erasure.pk, counts, outcomes)


def _scrub_batches(cursor, workspace_id: int, person: Person, counts: dict, *, skip_locked: bool) -> None:
    """Remove the person from every stored inbound body of the workspace that names them.

    A body names them if it holds one of their values as raw bytes, or holds any JSON escape (then
    a value could be written escaped): only those few are parsed, the rest is a byte search.
    """
    redactor = person.redactor
    if not redactor.values:
        return
    cursor.execute(
        f"""SELECT id FROM inbound_inboundbatch
            WHERE workspace_id = %(workspace)s
              AND (position('\\x5c'::bytea IN body) > 0
                   OR EXISTS (SELECT 1 FROM unnest(%(needles)s::bytea[]) n WHERE position(n IN body) > 0))
            ORDER BY id FOR UPDATE {"SKIP LOCKED" if skip_locked else ""}""",
        {"workspace": workspace_id, "needles": [v.encode() for v in sorted(redactor.values)]},
    )
    candidates = [batch_id for (batch_id,) in cursor.fetchall()]
    changed = 0
    for start in range(0, len(candidates), 100):
        for batch in InboundBatch.objects.filter(pk__in=candidates[start : start + 100]).only(
            "id", "identity_kind", "body", "invalid", "conflicts", "last_error"
        ):
            body = scrub_batch_body(bytes(batch.body), batch.identity_kind, redactor)
            invalid = [row for row in batch.invalid if not redactor.mentions(row)]
            conflicts = [
                c
                for c in batch.conflicts
                if not redactor.mentions(c)
                and not {c.get("known_profile_id"), c.get("other_profile_id")} & set(person.profile_ids)
            ]
            last_error = redactor.text(batch.last_error)
            if (body, invalid, conflicts, last_error) == (None, batch.invalid, batch.conflicts, batch.last_error):
                continue
            InboundBatch.objects.filter(pk=batch.pk).update(
                body=body if body is not None else batch.body,
                invalid=invalid,
                invalid_count=len(invalid),
                conflicts=conflicts,
                last_error=last_error,
            )
            if body is not None:  # the request log's copy shows the rewritten body
                InboundRequest.objects.filter(batch_id=batch.pk).update(
                    body_preview=body[:PREVIEW_CHARS].decode("utf-8", "replace")
                )
            changed += 1
    counts["inbound batches rewritten"] = counts.get("inbound batches rewritten", 0) + changed


def _delete_rows(cursor, person: Person, counts: dict) -> None:
    """Every row pointing at the person's profiles, then the profiles: one statement per table."""
    ids = person.profile_ids
    # Memberships, with the segment sizes they counted in (the ledger rows that added them go too).
    cursor.execute(
        """WITH gone AS (DELETE FROM audiences_segmentmember WHERE profile_id = ANY(%s) RETURNING segment_id),
                counted AS (SELECT segment_id, count(*) AS n FROM gone GROUP BY segment_id)
           UPDATE audiences_segment s SET size = s.size - c.n FROM counted c WHERE s.id = c.segment_id
           RETURNING c.n""",
        [ids],
    )
    _count(counts, "audiences_segmentmember", sum(n for (n,) in cursor.fetchall()))
    cursor.execute("DROP TABLE IF EXISTS erased_events")
    cursor.execute("CREATE TEMP TABLE erased_events (id bigint PRIMARY KEY) ON COMMIT DROP")
    cursor.execute(
        "WITH gone AS (DELETE FROM audiences_event WHERE profile_id = ANY(%s) RETURNING id) "
        "INSERT INTO erased_events SELECT id FROM gone",
        [ids],
    )
    _count(counts, "audiences_event", cursor.rowcount)
    for table, column in reference_columns("audiences.Event", "event_id"):
        cursor.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM erased_events)")
        _count(counts, table, cursor.rowcount)
    for table, column in reference_columns("audiences.Profile", "profile_id"):
        if table in ("audiences_segmentmember", "audiences_event"):
            continue
        cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [ids])
        _count(counts, table, cursor.rowcount)
    # The admin's history of their rows: its titles repeat their identities ("user_id=…").
    cursor.execute(
        """DELETE FROM django_admin_log l USING django_content_type ct
           WHERE l.content_type_id = ct.id AND ct.app_label = 'audiences'
             AND ((ct.model = 'profile' AND l.object_id = ANY(%s)) OR (ct.model = 'identity' AND l.object_repr = ANY(%s)))""",
        [[str(i) for i in ids], [f"{kind}={value}"[:200] for kind, value in person.identities]],
    )
    cursor.execute("DELETE FROM audiences_profile WHERE id = ANY(%s)", [ids])
    _count(counts, "audiences_profile", cursor.rowcount)
    cursor.execute("DROP TABLE erased_events")


def _count(counts: dict, table: str, rows: int) -> None:
    """Counts are kept under the table's plural name ("identities", "membership changes")."""
    label = next((str(m._meta.verbose_name_plural) for m in apps.get_models() if m._meta.db_table == table), table)
    counts[label] = counts.get(label, 0) + rows


def _redact_other_rows(cursor, workspace_id: int, person: Person, counts: dict) -> None:
    """Other people's rows carrying one of the person's ids: events with it as a second id (a shared
    device) lose it; rows keyed by it (keyed_by_id()) go, as there is nothing left without the key."""
    values = sorted(person.redactor.values)
    for table, column in keyed_by_id():
        cursor.execute(f"DELETE FROM {table} WHERE workspace_id = %s AND {column} = ANY(%s)", [workspace_id, values])
        _count(counts, table, cursor.rowcount)
    # Events carry ids by column: user ids (the user_id kind) and device ids (device_id).
    users = sorted({v for k, v in person.identities if k == "user_id"} | person.loose)
    devices = sorted({v for k, v in person.identities if k == "device_id"} | person.loose)
    cursor.execute(
        """UPDATE audiences_event
           SET user_id = CASE WHEN user_id = ANY(%(users)s) THEN NULL ELSE user_id END,
               device_id = CASE WHEN device_id = ANY(%(devices)s) THEN NULL ELSE device_id END
           WHERE workspace_id = %(workspace)s AND (user_id = ANY(%(users)s) OR device_id = ANY(%(devices)s))""",
        {"workspace": workspace_id, "users": users, "devices": devices},
    )
    counts["other people's events redacted"] = cursor.rowcount


def _redact_logs(cursor, workspace_id: int, redactor: Redactor, counts: dict) -> None:
    """The person's values out of the free text of log_columns(): a substring search, then the few
    matching rows rewritten in Python (so jsonb stays valid JSON)."""
    if not redactor.values:
        return
    redacted = 0
    for table, text_columns, json_columns, scope in log_columns():
        columns = [*text_columns, *json_columns]
        matches = " OR ".join(
            f"EXISTS (SELECT 1 FROM unnest(%(values)s::text[]) v WHERE strpos({c}{'::text' if c in json_columns else ''}, v) > 0)"
            for c in columns
        )
        cursor.execute(
            f"SELECT id, {', '.join(columns)} FROM {table} WHERE {scope} AND ({matches}) FOR UPDATE",
            {"workspace": workspace_id, "values": sorted(redactor.values)},
        )
        for row_id, *row in cursor.fetchall():
            cleaned = []
            for column, current in zip(columns, row, strict=True):
                if column in json_columns:
                    data = json.loads(current) if isinstance(current, str) else current
                    cleaned.append(json.dumps(redactor.json(data)))
                else:
                    cleaned.append(redactor.text(current or ""))
            assignments = ", ".join(f"{c} = %s{'::jsonb' if c in json_columns else ''}" for c in columns)
            cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*cleaned, row_id])
            redacted += 1
    counts["log entries redacted"] = redacted
