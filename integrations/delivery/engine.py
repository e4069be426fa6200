"""The delivery engine: plan a run's rows in SQL, send them in capped batches, record every outcome.

A run goes queued → running → succeeded | partially_failed | failed (or waiting, when the partner
asks for a long pause; the dispatcher resumes it at next_attempt_at). Its life:

1. plan (once, in one transaction): stage (profile, action, partner ids) rows in DeliveryRow —
   the full membership on the first run, afterwards the ledger rows with cursor < id ≤ snapshot
   collapsed to the net effect per profile, plus failed rows carried over from earlier runs.
   Members with no usable identity are staged as `invalid` with the reason, never sent.
2. send: the main thread reads pending rows in id order and cuts batches (one action each, by
   count; by bytes the connector refuses before sending), a small thread pool does the HTTP with
   retries, and one recorder thread (its own connection, so reading, sending and recording overlap)
   writes each batch's outcome in a transaction that also marks the rows done — so a worker killed
   at any point resumes with exactly the rows not yet recorded (at most a few batches re-sent).
3. finish: leftover rows → failed (carried into the next run), counts and status written, the
   job's cursor moved to the snapshot, destination health updated (which emails on change).

Sender threads never touch the database: outcomes are written by the run's recorder thread (inline
by the run's thread when it runs inside an outer transaction, as in tests).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from integrations.connectors.base import (
    Batch,
    CallRecord,
    Connector,
    ConnectorError,
    OutRow,
    Policy,
    Rejection,
    SegmentInfo,
)
from integrations.delivery.calls import CallLog, backoff_seconds, log_calls, prune_call_log
from integrations.delivery.health import set_health
from integrations.delivery.models import (
    ACTIVE_STATUSES,
    Destination,
    Health,
    RunMode,
    RunStatus,
    SyncJob,
    SyncRun,
)
from integrations.delivery.semaphore import DestinationSemaphore, connector_slots

logger = logging.getLogger(__name__)
PAGE_BATCHES = 4  # batches read per page: enough to keep the pool busy, small enough for memory


class RunNotReady(Exception):
    """The ledger has writers in flight; try again shortly (the run waits, it is not failed)."""


# ---- starting runs -------------------------------------------------------------------------------


def start_run(job: SyncJob, *, trigger: str = "manual", mode: str = RunMode.AUTO, now=None) -> SyncRun:
    """Create a queued run, or a skipped one saying why (overlap guard, disabled destination).

    The caller enqueues queued runs (`enqueue`) after its transaction commits.
    """
    now = now or timezone.now()
    with transaction.atomic():
        job = SyncJob.objects.select_for_update().select_related("destination").get(pk=job.pk)
        active = SyncRun.objects.filter(job=job, status__in=ACTIVE_STATUSES).order_by("id").first()
        reason = ""
        if active is not None:
            reason = f"Skipped: run #{active.pk} is still {active.status}; runs of one sync never overlap."
        elif job.destination.health == Health.DISABLED:
            reason = f"Skipped: the destination is disabled ({job.destination.last_error or 'no error recorded'})."
        if reason:
            return SyncRun.objects.create(
                workspace_id=job.workspace_id,
                job=job,
                mode=mode,
                trigger=trigger,
                status=RunStatus.SKIPPED,
                error=reason,
                finished_at=now,
            )
        return SyncRun.objects.create(workspace_id=job.workspace_id, job=job, mode=mode, trigger=trigger)


def enqueue(run_id: int) -> None:
    from integrations.delivery.tasks import execute_run_task

    transaction.on_commit(lambda: execute_run_task.delay(run_id))


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


def _mapped_sql(source_sql: str, job: SyncJob, accepts_device: bool, full: bool = False) -> tuple[str, dict]:
    """source + the mapped partner ids + why a row cannot be sent (NULL when it can)."""
    user_kind = job.user_id_kind or "user_id"
    device_kind = job.device_id_kind if accepts_device else ""
    params = {
        "user_kind": user_kind.removeprefix("property:"),
        "device_kind": device_kind.removeprefix("property:"),
        "workspace": job.workspace_id,
    }
    if device_kind:
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
       CASE WHEN user_id IS NULL AND device_id IS NULL THEN %(missing)s END AS invalid_reason
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
    sql, params = _mapped_sql(_source(job, run.mode, full), job, connector_cls.accepts_device_id, full)
    params.update({"job": job.pk, "segment": job.segment_id, "from": job.cursor or 0, "to": high or 0, "run": run.pk})
    with transaction.atomic(), connection.cursor() as cursor:
        locked = SyncRun.objects.select_for_update().get(pk=run.pk)
        if locked.planned:
            return
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


# ---- sending -------------------------------------------------------------------------------------


@dataclass
class Stop:
    policy: str  # auth | permanent | wait
    message: str
    wait_seconds: float = 0.0


@dataclass
class Outcome:
    delivered: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    failed: list[Rejection] = field(default_factory=list)
    untouched: list[int] = field(default_factory=list)  # stay pending (run stopping or waiting)
    retried: int = 0
    stop: Stop | None = None
    # The batch's first/last row id and size: when every row was delivered, the rows are marked
    # by id range (one index range scan) instead of probing 10,000 ids one by one.
    first_seq: int = 0
    last_seq: int = 0
    size: int = 0


def deliver_batch(
    connector: Connector, batch: Batch, semaphore: DestinationSemaphore, stop: threading.Event
) -> Outcome:
    """Send one batch with retries; bisect what the partner refuses. Pure HTTP: no database here."""
    outcome = Outcome(first_seq=batch.rows[0].seq, last_seq=batch.rows[-1].seq, size=len(batch.rows))
    pending = [batch]
    while pending:
        part = pending.pop()
        if stop.is_set() or outcome.stop:
            outcome.untouched += [row.seq for row in part.rows]
            continue
        _send_with_retries(connector, part, semaphore, stop, outcome, pending)
    return outcome


def _send_with_retries(
    connector: Connector,
    batch: Batch,
    semaphore: DestinationSemaphore,
    stop: threading.Event,
    outcome: Outcome,
    pending: list[Batch],
) -> None:
    attempt = rate_waits = 0
    seqs = [row.seq for row in batch.rows]
    while True:
        try:
            with semaphore.slot(stop):
                rejections = connector.send(batch)
        except InterruptedError:
            outcome.untouched += seqs
            return
        except ConnectorError as error:
            wait_for = None
            if error.policy == Policy.RATE_LIMITED:
                # Rate-limit waits do not burn attempts: the partner asked us to slow down, nothing failed.
                rate_waits += 1
                wait_for = error.retry_after if error.retry_after is not None else backoff_seconds(rate_waits)
                if rate_waits > settings.DELIVERY_MAX_RATE_LIMIT_WAITS:
                    wait_for = max(wait_for, settings.DELIVERY_SHORT_WAIT_SECONDS + 1)
            elif error.policy == Policy.TRANSIENT:
                attempt += 1
                if attempt >= settings.DELIVERY_MAX_ATTEMPTS:
                    outcome.failed += [Rejection(seq, error.message, str(error.status or "")) for seq in seqs]
                    return
                outcome.retried += len(seqs)
                wait_for = error.retry_after if error.retry_after is not None else backoff_seconds(attempt)
            elif error.policy in (Policy.TOO_LARGE, Policy.REJECTED):
                if len(batch.rows) > 1:  # bisect: halves go back on the stack, the good half gets through
                    pending.extend(reversed(batch.halves()))
                else:
                    reason = error.message if error.policy == Policy.REJECTED else f"too large alone: {error.message}"
                    outcome.rejected.append(Rejection(seqs[0], reason, error.code or str(error.status or "")))
                return
            else:  # AUTH / PERMANENT: nothing else can succeed; stop the whole run
                outcome.stop = Stop(error.policy.value, error.message)
                outcome.untouched += seqs
                return
            if wait_for > settings.DELIVERY_SHORT_WAIT_SECONDS:
                # A long wait is kept in the database (run "waiting", next_attempt_at), never in a worker.
                outcome.stop = Stop("wait", error.message, wait_for)
                outcome.untouched += seqs
                return
            if stop.wait(wait_for):
                outcome.untouched += seqs
                return
            continue
        rejected = {r.seq for r in rejections}
        outcome.rejected += rejections
        outcome.delivered += [seq for seq in seqs if seq not in rejected]
        return


# The selected profile properties of a row, read when the batch is cut (so a person's properties
# are as fresh as the send, not as the plan). Only the selected keys leave the database.
_PROPERTIES_SQL = """(SELECT jsonb_object_agg(k.key, pr.properties -> k.key) FROM audiences_profile pr,
                      unnest(%(keys)s::text[]) AS k(key) WHERE pr.id = {alias}.profile_id AND pr.properties ? k.key)"""


def _decoded(properties) -> dict:
    return json.loads(properties) if isinstance(properties, str) else (properties or {})


def _pending_batches(run_id: int, per_request: int, property_keys: list[str] = ()):
    """Pending rows in id order, cut into single-action batches of at most `per_request` rows."""
    last_id = 0
    current: list[OutRow] = []
    properties = _PROPERTIES_SQL.format(alias="d") if property_keys else "NULL::jsonb"
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, profile_id, action, user_id, device_id, {properties} FROM delivery_deliveryrow d "
                "WHERE run_id = %(run)s AND status = 'pending' AND id > %(after)s ORDER BY id LIMIT %(limit)s",
                {"run": run_id, "after": last_id, "limit": per_request * PAGE_BATCHES, "keys": list(property_keys)},
            )
            page = cursor.fetchall()
        if not page:
            break
        last_id = page[-1][0]
        for seq, profile_id, action, user_id, device_id, props in page:
            if current and (current[0].action != action or len(current) >= per_request):
                yield Batch(current[0].action, current)
                current = []
            # Django hands jsonb over as text (its JSONField decodes it itself).
            current.append(
                OutRow(seq, profile_id, action, user_id, device_id, _decoded(props) if property_keys else None)
            )
    if current:
        yield Batch(current[0].action, current)


_MARK_SQL = """
UPDATE delivery_deliveryrow d
SET status = %(status)s, carry_over = %(status)s = 'failed', reason = r.reason, partner_code = r.code,
    attempts = d.attempts + 1
FROM unnest(%(ids)s::bigint[], %(reasons)s::text[], %(codes)s::text[]) AS r(id, reason, code)
WHERE d.id = r.id AND d.run_id = %(run)s AND d.status = 'pending'
"""


def record_outcome(run_id: int, destination_id: int, outcome: Outcome, calls: list[CallRecord]) -> None:
    """One transaction: rows marked with their outcome, partner calls logged, run counters moved."""
    with transaction.atomic(), connection.cursor() as cursor:
        if outcome.delivered and len(outcome.delivered) == outcome.size:
            # The whole batch: its rows are exactly the run's pending rows in [first, last], because
            # batches are cut from consecutive pending rows in id order and nothing else makes rows
            # pending during a run (rows of other statuses in the range are left alone).
            cursor.execute(
                "UPDATE delivery_deliveryrow SET status = 'delivered', attempts = attempts + 1 "
                "WHERE run_id = %s AND id BETWEEN %s AND %s AND status = 'pending'",
                [run_id, outcome.first_seq, outcome.last_seq],
            )
        elif outcome.delivered:
            cursor.execute(
                "UPDATE delivery_deliveryrow SET status = 'delivered', attempts = attempts + 1 "
                "WHERE run_id = %s AND id = ANY(%s::bigint[]) AND status = 'pending'",
                [run_id, outcome.delivered],
            )
        for status, rows in (("rejected", outcome.rejected), ("failed", outcome.failed)):
            if rows:
                cursor.execute(
                    _MARK_SQL,
                    {
                        "status": status,
                        "run": run_id,
                        "ids": [r.seq for r in rows],
                        "reasons": [r.reason[:2000] for r in rows],
                        "codes": [r.code[:32] for r in rows],
                    },
                )
        log_calls(destination_id, run_id, calls)
        done = len(outcome.delivered) + len(outcome.rejected) + len(outcome.failed)
        cursor.execute(
            "UPDATE delivery_syncrun SET delivered = delivered + %s, rejected = rejected + %s, failed = failed + %s, "
            "retried = retried + %s, rows_done = rows_done + %s, heartbeat_at = now() WHERE id = %s",
            [len(outcome.delivered), len(outcome.rejected), len(outcome.failed), outcome.retried, done, run_id],
        )


def build_connector(job: SyncJob, *, run: SyncRun | None = None, on_call=None) -> Connector:
    destination = job.destination
    auth = destination.authorization
    segment = job.segment
    return destination.connector_class(
        destination.config,
        auth.secrets if auth and auth.secrets_ciphertext else {},
        auth_fields=auth.fields if auth else {},
        segment=SegmentInfo(segment.pk, segment.name, segment.external_id, segment.partner_name),
        partner_state=job.partner_state,
        run_id=run.pk if run else 0,
        run_started=run.started_at.timestamp() if run and run.started_at else None,
        on_call=on_call,
    )


# ---- the run -------------------------------------------------------------------------------------


def execute_run(run_id: int) -> SyncRun | None:
    """Claim a queued run and take it to a final (or waiting) state. Safe to call twice: the
    second call finds the run no longer queued and does nothing."""
    claimed = SyncRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, heartbeat_at=timezone.now()
    )
    if not claimed:
        return None
    SyncRun.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=timezone.now())
    run = SyncRun.objects.select_related("job__destination__authorization", "job__segment").get(pk=run_id)
    job, destination = run.job, run.job.destination
    calls = CallLog()
    try:
        connector = build_connector(job, run=run, on_call=calls)
        if not run.planned:
            plan_run(run, type(connector))
        stop = _prepare_target(job, connector)
        if stop is None and run.rows_total:
            stop = _send_rows(run, destination, connector)
    except RunNotReady as exc:
        stop = Stop("wait", str(exc), 5.0)
    except Exception as exc:  # a bug must end the run visibly, not leave it "running" forever
        logger.exception("sync run %s crashed", run_id)
        stop = Stop("permanent", f"internal error: {type(exc).__name__}: {exc}")
    log_calls(destination.pk, run.pk, calls.drain())
    return finish_run(run, stop)


def _prepare_target(job: SyncJob, connector: Connector) -> Stop | None:
    """Create the partner-side target if needed (list creation), with the same retry policy as batches."""
    attempt = 0
    # Setup calls count against the partner's cap like batches do: another run of the destination
    # may already have every slot in flight.
    slots = connector_slots(connector, job.destination_id)
    while True:
        try:
            with slots.slot():
                state = connector.prepare()
            break
        except ConnectorError as error:
            if error.policy not in (Policy.RATE_LIMITED, Policy.TRANSIENT):
                return Stop("auth" if error.policy == Policy.AUTH else "permanent", error.message)
            attempt += error.policy == Policy.TRANSIENT
            wait_for = error.retry_after if error.retry_after is not None else backoff_seconds(max(attempt, 1))
            if attempt >= settings.DELIVERY_MAX_ATTEMPTS or wait_for > settings.DELIVERY_SHORT_WAIT_SECONDS:
                return Stop("wait", error.message, max(wait_for, 30.0))
            time.sleep(wait_for)
    if state != job.partner_state:
        # Saved at once: a crash later must never make the next attempt create a second list.
        SyncJob.objects.filter(pk=job.pk).update(partner_state=state)
        job.partner_state = state
    return None


class OutcomeRecorder:
    """Writes batch outcomes on its own thread and database connection, so the run's thread keeps
    reading rows and handing batches to the senders while an UPDATE runs (the two were serial, and
    recording was the bottleneck of a first sync: the partner sat idle during every UPDATE).

    The queue is bounded: when recording falls behind, the run's thread waits instead of sending
    more, so at most `workers` in flight + `workers` queued batches are ever sent-but-unrecorded
    (a crash costs at most those, re-sent on resume; list adds/removes are idempotent for them).
    Outcomes that queued up meanwhile are written in one transaction.
    """

    def __init__(self, run_id: int, destination_id: int, calls, capacity: int) -> None:
        self.run_id, self.destination_id, self.calls = run_id, destination_id, calls
        self.queue: queue.Queue[Outcome | None] = queue.Queue(maxsize=capacity)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name=f"run{run_id}-recorder", daemon=True)
        self.thread.start()

    def put(self, outcome: Outcome) -> None:
        while self.thread.is_alive():
            try:
                self.queue.put(outcome, timeout=0.5)
                return
            except queue.Full:
                continue
        raise RuntimeError(f"outcome recorder stopped: {self.error!r}")

    def close(self) -> None:
        """Waits until every queued outcome is written; re-raises a recording error."""
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=0.5)  # the thread may die with a full queue: do not block
                break
            except queue.Full:
                continue
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _record(self, outcomes: list[Outcome]) -> None:
        calls = self.calls.drain() if isinstance(self.calls, CallLog) else []
        with transaction.atomic():
            for number, outcome in enumerate(outcomes):
                record_outcome(self.run_id, self.destination_id, outcome, calls if number == 0 else [])

    def _loop(self) -> None:
        try:
            closing = False
            while not closing:
                outcomes = [self.queue.get()]
                while True:  # whatever else is already waiting goes into the same transaction
                    try:
                        outcomes.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                closing = outcomes[-1] is None
                outcomes = [outcome for outcome in outcomes if outcome is not None]
                if outcomes:
                    self._record(outcomes)
        except BaseException as exc:  # noqa: BLE001 - handed to the run's thread by close()
            self.error = exc
        finally:
            connection.close()  # this thread's own connection


def _send_rows(run: SyncRun, destination: Destination, connector: Connector) -> Stop | None:
    per_request = connector.records_per_request()
    workers = max(1, connector.concurrent_requests())
    semaphore = connector_slots(connector, destination.pk)
    stopping = threading.Event()
    first_stop: Stop | None = None
    batches = _pending_batches(run.pk, per_request, connector.property_keys())
    calls = connector.http.on_call
    # A second connection cannot see rows of an enclosing, uncommitted transaction (the tests'
    # transactional fixtures): there the outcomes are written inline, by this thread.
    recorder = None if connection.in_atomic_block else OutcomeRecorder(run.pk, destination.pk, calls, workers)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"run{run.pk}") as pool:
            in_flight = set()
            exhausted = False
            while True:
                while not exhausted and not stopping.is_set() and len(in_flight) < workers:
                    batch = next(batches, None)
                    if batch is None:
                        exhausted = True
                        break
                    in_flight.add(pool.submit(deliver_batch, connector, batch, semaphore, stopping))
                if not in_flight:
                    break
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    if recorder is not None:
                        recorder.put(outcome)
                    else:
                        record_outcome(
                            run.pk, destination.pk, outcome, calls.drain() if isinstance(calls, CallLog) else []
                        )
                    if outcome.stop and first_stop is None:
                        first_stop = outcome.stop
                        stopping.set()
    finally:
        if recorder is not None:
            recorder.close()
    return first_stop


def finish_run(run: SyncRun, stop: Stop | None) -> SyncRun:
    """The one place a started run reaches its end state."""
    now = timezone.now()
    job = run.job
    destination = job.destination
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        if stop is not None and stop.policy == "wait":
            run.status = RunStatus.WAITING
            run.next_attempt_at = now + dt.timedelta(seconds=stop.wait_seconds)
            run.error = f"Waiting {stop.wait_seconds:.0f}s: {stop.message}"
            run.save(update_fields=["status", "next_attempt_at", "error"])
            return run
        reason = stop.message if stop else "not attempted"
        with connection.cursor() as cursor:
            # Rows never answered are carried into the next run, like rows that exhausted retries.
            cursor.execute(
                "UPDATE delivery_deliveryrow SET status = 'failed', carry_over = true, reason = %s "
                "WHERE run_id = %s AND status = 'pending'",
                [f"not sent: {reason}"[:2000], run.pk],
            )
            left = cursor.rowcount
        run.failed += left
        run.rows_done += left
        if stop is not None:
            run.status, run.error = RunStatus.FAILED, stop.message
        elif run.failed or run.rejected:
            run.status = RunStatus.PARTIALLY_FAILED if run.delivered or run.rejected else RunStatus.FAILED
            run.error = f"{run.rejected} rejected, {run.failed} failed (carried into the next run)."
        else:
            run.status, run.error = RunStatus.SUCCEEDED, ""
        run.finished_at = now
        run.save()
        # The cursor moves when the run completes, even with failed rows: those are carried by
        # their status, so the next run covers them without re-reading the ledger.
        SyncJob.objects.filter(pk=job.pk).update(
            cursor=run.snapshot_cursor if run.planned else job.cursor, last_run_at=now
        )
    prune_call_log(destination.pk)
    if stop is not None and stop.policy == "auth":
        set_health(destination, Health.DISABLED, stop.message)
    elif stop is not None or run.failed:
        set_health(destination, Health.DEGRADED, stop.message if stop else run.error)
    else:
        set_health(destination, Health.HEALTHY)
    return run


# ---- operator actions ----------------------------------------------------------------------------


def reset_diff(job: SyncJob) -> int:
    """Move the cursor to now without sending, and drop carried failures. Returns the new cursor."""
    high = ledger_high_water()
    with transaction.atomic():
        job = SyncJob.objects.select_for_update().get(pk=job.pk)
        if SyncRun.objects.filter(job=job, status__in=ACTIVE_STATUSES).exists():
            raise ValueError("A run of this sync is in progress; wait for it to finish.")
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE delivery_deliveryrow SET status = 'carried', carry_over = false, reason = 'dropped by reset diff' "
                "WHERE job_id = %s AND carry_over AND status = 'failed'",
                [job.pk],
            )
        SyncJob.objects.filter(pk=job.pk).update(cursor=high)
    return high


def dry_run(job: SyncJob, *, mode: str = RunMode.AUTO, sample_size: int = 3) -> dict:
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
        sql, params = _mapped_sql(_source(job, mode, full), job, connector.accepts_device_id, full)
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
            properties = _PROPERTIES_SQL.format(alias="planned") if keys else "NULL::jsonb"
            cursor.execute(
                f"SELECT profile_id, action, user_id, device_id, {properties} FROM ({sql}) planned "
                f"WHERE invalid_reason IS NULL AND action = %(action)s ORDER BY profile_id LIMIT %(n)s",
                {**params, "action": action, "n": sample_size, "keys": keys},
            )
            rows = [
                OutRow(-i - 1, *row[:4], _decoded(row[4]) if keys else None) for i, row in enumerate(cursor.fetchall())
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


def run_connection_test(destination: Destination) -> tuple[bool, str]:
    """Runs the connector's probe; success restores a disabled/degraded destination to healthy."""
    from integrations.connectors.base import SegmentInfo as Seg

    calls = CallLog()
    auth = destination.authorization
    connector = destination.connector_class(
        destination.config,
        auth.secrets if auth and auth.secrets_ciphertext else {},
        auth_fields=auth.fields if auth else {},
        segment=Seg(0, "connection test", "0"),
        on_call=calls,
    )
    try:
        message = connector.test_connection()
        ok = True
    except ConnectorError as error:
        ok, message = False, error.message
        if error.policy == Policy.AUTH:
            set_health(destination, Health.DISABLED, message)
    log_calls(destination.pk, None, calls.drain())
    if ok:
        set_health(destination, Health.HEALTHY)
    return ok, message
