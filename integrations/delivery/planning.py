"""Planning a sync run: which rows it sends, in SQL, and the connector that will send them.

`plan_run` stages a run's rows once, in one transaction, in DeliveryRow: the full membership on the
first run, afterwards the ledger rows with cursor < id ≤ snapshot collapsed to the net effect per
profile, plus failed rows carried over from earlier runs. Members with no usable identity are staged
as `invalid` with the reason, never sent. The snapshot is `ledger_high_water()`, an id below which
every ledger row is committed. `dry_run` runs the same SQL without writing and shows what the real
connector would send.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from audiences.identity import stored_kind
from audiences.people_lock import hold_people
from integrations.connectors.base import Batch, CallRecord, Connector, OutRow, SegmentInfo
from integrations.delivery.models import Destination, RunMode, SyncJob, SyncRun


class RunNotReady(Exception):
    """The ledger has writers in flight; try again shortly (the run waits, it is not failed)."""


# ---- the ledger high-water mark ------------------------------------------------------------------

_LEDGER_WRITERS_SQL = """
SELECT coalesce(array_agg(a.pid::text || ':' || a.backend_xid::text), '{}')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation = 'audiences_membershipchange'::regclass
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.mode = 'RowExclusiveLock' AND l.granted AND a.backend_xid IS NOT NULL AND l.pid <> pg_backend_pid()
"""


def ledger_high_water(max_wait: float = 30.0) -> int:
    """A ledger id below which every row is committed and visible: the safe snapshot for a cursor.

    max(id) is not safe: ids come from a sequence, so a writer holding id 100 may commit after
    one holding 101, and a cursor set to 101 would skip 100 forever. Instead read the sequence
    first, then wait until every transaction that was writing the ledger at that moment has
    ended (pid + xid, so a writer's *next* transaction, whose ids are all higher, is not waited
    for); after that no id ≤ the value read can still appear.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('audiences_membershipchange', 'id')::regclass)"
        )
        high = cursor.fetchone()[0] or 0
        cursor.execute(_LEDGER_WRITERS_SQL)
        writers = set(cursor.fetchone()[0])
        deadline = time.monotonic() + max_wait
        while writers:
            cursor.execute(_LEDGER_WRITERS_SQL)
            writers &= set(cursor.fetchone()[0])
            if writers and time.monotonic() > deadline:
                raise RunNotReady(f"{len(writers)} ledger writer(s) still in progress")
            if writers:
                time.sleep(0.05)
    return high


# ---- planning ------------------------------------------------------------------------------------

_CARRIED = """
carried AS (
    SELECT DISTINCT ON (profile_id) profile_id, action FROM delivery_deliveryrow
    WHERE job_id = %(job)s AND carry_over AND status = 'failed' ORDER BY profile_id, id DESC
)"""

# A full sync sends every member, and removes whoever the partner may still hold although they
# left: people this job last delivered as "add" (a full resync after a reset diff, a partner
# restored from backup) and removes still carried from a failed run.
_FULL_SOURCE = (
    "WITH"
    + _CARRIED
    + """,
delivered_in AS (
    SELECT profile_id FROM (
        SELECT DISTINCT ON (profile_id) profile_id, action FROM delivery_deliveryrow
        -- through the job's runs: the (run, id) index, and nothing to read on a first sync
        WHERE run_id IN (SELECT id FROM delivery_syncrun WHERE job_id = %(job)s) AND status = 'delivered'
        ORDER BY profile_id, id DESC) last
    WHERE action = 'add'
), source AS (
    SELECT m.profile_id, 'add' AS action FROM audiences_segmentmember m WHERE m.segment_id = %(segment)s
    UNION ALL
    SELECT gone.profile_id, 'remove' FROM (
        SELECT profile_id FROM delivered_in
        UNION SELECT c.profile_id FROM carried c WHERE c.action = 'remove') gone
    WHERE NOT EXISTS (
        SELECT 1 FROM audiences_segmentmember m WHERE m.segment_id = %(segment)s AND m.profile_id = gone.profile_id)
)"""
)

# Net effect per profile over the window: first and last action equal → that action; different
# (added then removed, or removed then added) → the person is where they were: nothing to send.
_CHANGES_SOURCE = (
    "WITH"
    + _CARRIED
    + """,
changes_window AS (
    SELECT profile_id,
           (array_agg(action ORDER BY id))[1] AS first_action,
           (array_agg(action ORDER BY id DESC))[1] AS last_action
    FROM audiences_membershipchange
    WHERE segment_id = %(segment)s AND id > %(from)s AND id <= %(to)s
    GROUP BY profile_id
), net AS (
    SELECT profile_id, CASE last_action WHEN 'added' THEN 'add' ELSE 'remove' END AS action
    FROM changes_window WHERE first_action = last_action
), source AS (
    SELECT profile_id, action FROM net
    UNION ALL
    SELECT c.profile_id, c.action FROM carried c WHERE NOT EXISTS (SELECT 1 FROM net n WHERE n.profile_id = c.profile_id)
)"""
)

_RETRY_SOURCE = "WITH" + _CARRIED + ", source AS (SELECT profile_id, action FROM carried)"


def _identity_expr(kind: str, param: str) -> str:
    """SQL for the first identity of `kind` of source.profile_id (or a profile property)."""
    if kind.startswith("property:"):
        return f"(SELECT pr.properties ->> %({param})s FROM audiences_profile pr WHERE pr.id = s.profile_id)"
    return (
        f"(SELECT i.value FROM audiences_identity i WHERE i.profile_id = s.profile_id "
        f"AND i.kind = %({param})s ORDER BY i.id LIMIT 1)"
    )


def _mapped_sql(source_sql: str, job: SyncJob, connector_cls: type[Connector], full: bool = False) -> tuple[str, dict]:
    """source + the mapped partner ids + why a row cannot be sent (NULL when it can)."""
    user_kind = stored_kind(job.user_id_kind or "user_id")
    device_kind = stored_kind(job.device_id_kind) if connector_cls.accepts_device_id and job.device_id_kind else ""
    params = {
        "user_kind": user_kind.removeprefix("property:"),
        "device_kind": device_kind.removeprefix("property:"),
        "workspace": job.workspace_id,
    }
    cannot_send = "user_id IS NULL AND device_id IS NULL"
    if connector_cls.requires_device_id:  # the partner knows people by device only: no device, no row
        cannot_send = "device_id IS NULL"
        missing = (
            f"no {device_kind} identity: this partner links people by their device"
            if device_kind
            else "no device id kind chosen for this sync: this partner links people by their device"
        )
    elif device_kind:
        missing = f"no {user_kind} or {device_kind} identity"
    else:
        missing = f"no {user_kind} identity (anonymous members are not sent to this destination)"
    params["missing"] = missing
    joins, columns = [], []
    for kind, param, alias in ((user_kind, "user_kind", "user_id"), (device_kind, "device_kind", "device_id")):
        if not kind:
            columns.append(f"NULL::text AS {alias}")
        elif full and not kind.startswith("property:"):
            # Whole memberships: one hash join beats a million index probes.
            joins.append(
                f"LEFT JOIN (SELECT DISTINCT ON (profile_id) profile_id, value FROM audiences_identity "
                f"WHERE workspace_id = %(workspace)s AND kind = %({param})s ORDER BY profile_id, id) {alias}_map "
                f"ON {alias}_map.profile_id = s.profile_id"
            )
            columns.append(f"nullif({alias}_map.value, '') AS {alias}")
        else:
            columns.append(f"nullif({_identity_expr(kind, param)}, '') AS {alias}")
    sql = (
        source_sql
        + f""",
mapped AS (
    SELECT s.profile_id, s.action, {", ".join(columns)}
    FROM source s {" ".join(joins)}
)
SELECT profile_id, action, user_id, device_id,
       CASE WHEN {cannot_send} THEN %(missing)s END AS invalid_reason
FROM mapped"""
    )
    return sql, params


def _source(job: SyncJob, run_mode: str, full: bool) -> str:
    if run_mode == RunMode.RETRY:
        return _RETRY_SOURCE
    return _FULL_SOURCE if full else _CHANGES_SOURCE


def plan_run(run: SyncRun, connector_cls: type[Connector]) -> None:
    """Stage the run's rows (idempotent: a second call on a planned run does nothing)."""
    job = run.job
    high = job.cursor if run.mode == RunMode.RETRY else ledger_high_water()
    full = run.mode == RunMode.FULL or (run.mode == RunMode.AUTO and job.cursor is None)
    sql, params = _mapped_sql(_source(job, run.mode, full), job, connector_cls, full)
    params.update({"job": job.pk, "segment": job.segment_id, "from": job.cursor or 0, "to": high or 0, "run": run.pk})
    with transaction.atomic(), connection.cursor() as cursor:
        locked = SyncRun.objects.select_for_update().get(pk=run.pk)
        if locked.planned:
            return
        hold_people(job.workspace_id)  # rows naming a person being erased are staged before or not at all
        # Ordered by action so batches (one action each) come out full; by profile for locality.
        cursor.execute(
            f"""INSERT INTO delivery_deliveryrow
                (run_id, job_id, profile_id, action, user_id, device_id, status, reason, partner_code, attempts,
                 carry_over)
            SELECT %(run)s, %(job)s, profile_id, action, user_id, device_id,
                   CASE WHEN invalid_reason IS NULL THEN 'pending' ELSE 'invalid' END,
                   coalesce(invalid_reason, ''), '', 0, false
            FROM ({sql}) planned ORDER BY action, profile_id""",
            params,
        )
        # The failed rows just staged again are no longer "failed": they live on in this run.
        cursor.execute(
            "UPDATE delivery_deliveryrow SET status = 'carried', carry_over = false, reason = %s "
            "WHERE job_id = %s AND carry_over AND status = 'failed' AND run_id <> %s",
            [f"carried into run #{run.pk}", job.pk, run.pk],
        )
        carried = cursor.rowcount
        cursor.execute(
            "SELECT action, status, count(*) FROM delivery_deliveryrow WHERE run_id = %s GROUP BY 1, 2", [run.pk]
        )
        counts = {(action, status): n for action, status, n in cursor.fetchall()}
        to_add = counts.get(("add", "pending"), 0)
        to_remove = counts.get(("remove", "pending"), 0)
        invalid = sum(n for (_, status), n in counts.items() if status == "invalid")
        SyncRun.objects.filter(pk=run.pk).update(
            planned=True,
            full=full,
            from_cursor=job.cursor,
            snapshot_cursor=high,
            to_add=to_add,
            to_remove=to_remove,
            invalid=invalid,
            rows_total=to_add + to_remove,
            carried_in=carried,
        )
    run.refresh_from_db()


# The selected profile properties of a row, read when the batch is cut (so a person's properties
# are as fresh as the send, not as the plan). Only the selected keys leave the database.
PROPERTIES_SQL = """(SELECT jsonb_object_agg(k.key, pr.properties -> k.key) FROM audiences_profile pr,
                      unnest(%(keys)s::text[]) AS k(key) WHERE pr.id = {alias}.profile_id AND pr.properties ? k.key)"""


def decoded_properties(properties: str | dict | None) -> dict:
    """A jsonb value as Django's raw cursors hand it over (text), decoded."""
    return json.loads(properties) if isinstance(properties, str) else (properties or {})


def destination_connector(
    destination: Destination,
    *,
    segment: SegmentInfo | None = None,
    partner_state: dict | None = None,
    run: SyncRun | None = None,
    on_call: Callable[[CallRecord], None] | None = None,
) -> Connector:
    """The destination's connector with its authorization's secrets and fields (none when it has none)."""
    auth = destination.authorization
    return destination.connector_class(
        destination.config,
        auth.secrets if auth and auth.secrets_ciphertext else {},
        auth_fields=auth.fields if auth else {},
        segment=segment or SegmentInfo(0, "", ""),
        partner_state=partner_state,
        run_id=run.pk if run else 0,
        run_started=run.started_at.timestamp() if run and run.started_at else None,
        on_call=on_call,
    )


def build_connector(
    job: SyncJob, *, run: SyncRun | None = None, on_call: Callable[[CallRecord], None] | None = None
) -> Connector:
    """The connector a run (or a dry run) of `job` sends with: its segment, its partner-side state."""
    return destination_connector(
        job.destination,
        segment=SegmentInfo.of(job.segment),
        partner_state=job.partner_state,
        run=run,
        on_call=on_call,
    )


def dry_run(job: SyncJob, *, mode: str = RunMode.AUTO, sample_size: int = 3) -> dict[str, Any]:
    """Counts and a sample payload built by the real connector. Writes nothing, sends nothing."""
    connector = build_connector(job)
    if not connector.partner_state.get("list_id"):
        connector.partner_state["list_id"] = "<created on the first sync>"
    full = mode == RunMode.FULL or (mode == RunMode.AUTO and job.cursor is None)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(max(id), 0) FROM audiences_membershipchange WHERE segment_id = %s", [job.segment_id]
        )
        high = cursor.fetchone()[0]
        sql, params = _mapped_sql(_source(job, mode, full), job, type(connector), full)
        params.update({"job": job.pk, "segment": job.segment_id, "from": job.cursor or 0, "to": high})
        cursor.execute(
            f"""SELECT count(*) FILTER (WHERE invalid_reason IS NULL AND action = 'add'),
                                  count(*) FILTER (WHERE invalid_reason IS NULL AND action = 'remove'),
                                  count(*) FILTER (WHERE invalid_reason IS NOT NULL)
                           FROM ({sql}) planned""",
            params,
        )
        to_add, to_remove, invalid = cursor.fetchone()
        samples, invalid_samples = {}, []
        for action in ("add", "remove"):
            keys = connector.property_keys()
            properties = PROPERTIES_SQL.format(alias="planned") if keys else "NULL::jsonb"
            cursor.execute(
                f"SELECT profile_id, action, user_id, device_id, {properties} FROM ({sql}) planned "
                f"WHERE invalid_reason IS NULL AND action = %(action)s ORDER BY profile_id LIMIT %(n)s",
                {**params, "action": action, "n": sample_size, "keys": keys},
            )
            rows = [
                OutRow(-i - 1, *row[:4], decoded_properties(row[4]) if keys else None)
                for i, row in enumerate(cursor.fetchall())
            ]
            if rows:
                samples[action] = connector.sample_request(Batch(action, rows))
        cursor.execute(
            f"SELECT profile_id, action, invalid_reason FROM ({sql}) planned "
            f"WHERE invalid_reason IS NOT NULL ORDER BY profile_id LIMIT %(n)s",
            {**params, "n": 10},
        )
        invalid_samples = [{"profile_id": p, "action": a, "reason": r} for p, a, r in cursor.fetchall()]
    return {
        "full": full,
        "to_add": to_add,
        "to_remove": to_remove,
        "invalid": invalid,
        "sample_requests": samples,
        "invalid_sample": invalid_samples,
        "records_per_request": connector.records_per_request(),
        "requests_estimate": -(-to_add // connector.records_per_request())
        - (-to_remove // connector.records_per_request()),
    }
