"""The delivery engine: take a queued run, send its planned rows in capped batches, record every outcome.

A run goes queued → running → succeeded | partially_failed | failed (or waiting, when the partner
asks for a long pause; the dispatcher resumes it at next_attempt_at). Runs are started by
integrations.delivery.actions and handed to a worker (integrations.delivery.tasks), which calls
`execute_run`. Its life:

1. plan (once, in one transaction; integrations.delivery.planning): stage the run's rows in
   DeliveryRow, each with its partner ids, or `invalid` with the reason.
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
import logging
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from audiences.people_lock import SendGate
from integrations.connectors.base import (
    Batch,
    CallRecord,
    Connector,
    OutRow,
    Policy,
    Rejection,
)
from integrations.delivery.calls import CallLog, Verdict, call_with_retries, log_calls, prune_call_log
from integrations.delivery.health import set_health
from integrations.delivery.models import (
    Destination,
    Health,
    RunStatus,
    SyncJob,
    SyncRun,
)
from integrations.delivery.planning import PROPERTIES_SQL, RunNotReady, build_connector, decoded_properties, plan_run
from integrations.delivery.semaphore import DestinationSemaphore, connector_slots
from integrations.run_heartbeat import RunHeartbeat

logger = logging.getLogger(__name__)
PAGE_BATCHES = 4  # batches read per page: enough to keep the pool busy, small enough for memory


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
    seqs = [row.seq for row in batch.rows]
    result = call_with_retries(lambda: connector.send(batch), semaphore, stop=stop, rule=connector.retry_rule)
    outcome.retried += result.retried * len(seqs)
    error = result.error
    if result.verdict == Verdict.SENT:
        rejected = {r.seq for r in result.value}
        outcome.rejected += result.value
        outcome.delivered += [seq for seq in seqs if seq not in rejected]
    elif result.verdict == Verdict.REJECTED:
        if len(batch.rows) > 1:  # bisect: halves go back on the stack, the good half gets through
            pending.extend(reversed(batch.halves()))
        else:
            reason = error.message if error.policy == Policy.REJECTED else f"too large alone: {error.message}"
            outcome.rejected.append(Rejection(seqs[0], reason, error.code or str(error.status or "")))
    elif result.verdict == Verdict.FAILED:  # carried into the next run
        outcome.failed += [Rejection(seq, error.message, str(error.status or "")) for seq in seqs]
    else:
        outcome.untouched += seqs
        if result.verdict == Verdict.PARK:
            # A long wait is kept in the database (run "waiting", next_attempt_at), never in a worker.
            outcome.stop = Stop("wait", error.message, result.wait_seconds)
        elif error is not None:  # AUTH / PERMANENT: nothing else can succeed; stop the whole run
            outcome.stop = Stop(error.policy.value, error.message)


def _pending_batches(run_id: int, per_request: int, property_keys: list[str] = ()):
    """Pending rows in id order, cut into single-action batches of at most `per_request` rows."""
    last_id = 0
    current: list[OutRow] = []
    properties = PROPERTIES_SQL.format(alias="d") if property_keys else "NULL::jsonb"
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
                OutRow(
                    seq, profile_id, action, user_id, device_id, decoded_properties(props) if property_keys else None
                )
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


# ---- the run -------------------------------------------------------------------------------------


def execute_run(run_id: int) -> SyncRun | None:
    """Claim a queued run and take it to a final (or waiting) state. Safe to call twice: the
    second call finds the run no longer queued and does nothing."""
    claimed = SyncRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, heartbeat_at=timezone.now(), attempt=F("attempt") + 1
    )
    if not claimed:
        return None
    SyncRun.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=timezone.now())
    run = SyncRun.objects.select_related("job__destination__authorization", "job__segment").get(pk=run_id)
    job, destination = run.job, run.job.destination
    calls = CallLog()
    # The heartbeat tells beat's lost-run check this worker is alive; `attempt` makes it ours only:
    # if this worker was declared lost (silent too long) and another took the run, it stops sending.
    heartbeat = RunHeartbeat(
        SyncRun._meta.db_table, run.pk, owned="status = 'running' AND attempt = %s", owned_params=[run.attempt]
    )
    with heartbeat:
        try:
            connector = build_connector(job, run=run, on_call=calls)
            if not run.planned:
                plan_run(run, type(connector))
            stop = _prepare_target(job, connector)
            if stop is None and run.rows_total:
                stop = _send_rows(run, destination, connector, heartbeat.lost)
        except RunNotReady as exc:
            stop = Stop("wait", str(exc), 5.0)
        except Exception as exc:  # a bug must end the run visibly, not leave it "running" forever
            logger.exception("sync run %s crashed", run_id)
            stop = Stop("permanent", f"internal error: {type(exc).__name__}: {exc}")
    log_calls(destination.pk, run.pk, calls.drain())
    if heartbeat.lost.is_set():  # another worker has the run now: its end is that worker's to write
        logger.warning("sync run %s was taken over by another worker; this one stops", run_id)
        return None
    return finish_run(run, stop)


def _prepare_target(job: SyncJob, connector: Connector) -> Stop | None:
    """Create the partner-side target if needed (list creation), with the same retry policy as batches."""
    # Setup calls count against the partner's cap like batches do: another run of the destination
    # may already have every slot in flight.
    slots = connector_slots(connector, job.destination_id)
    result = call_with_retries(connector.prepare, slots, rule=connector.retry_rule)
    if result.verdict in (Verdict.PARK, Verdict.FAILED):
        # Nothing can be sent without the target: the run waits, and the dispatcher tries again.
        return Stop("wait", result.message, max(result.wait_seconds, 30.0))
    if result.verdict != Verdict.SENT:
        auth = result.error is not None and result.error.policy == Policy.AUTH
        return Stop("auth" if auth else "permanent", result.message)
    state = result.value
    if state != job.partner_state:
        # Saved at once: a crash later must never make the next attempt create a second list.
        SyncJob.objects.filter(pk=job.pk).update(partner_state=state)
        job.partner_state = state
    return None


class OutcomeRecorder:
    """Writes batch outcomes on its own thread and database connection, so the run's thread keeps
    reading rows and handing batches to the senders while an UPDATE runs (the two were serial, and
    recording was the bottleneck of a first sync: the partner sat idle during every UPDATE).

    An answered batch holds its request slot until its outcome is committed (`unwritten`): the run's
    thread sends a new batch only while in flight + unwritten < the partner's concurrency, so at any
    moment at most that many batches are sent-but-unrecorded, and a crash re-sends at most what was
    in flight (SyncRun.in_flight_limit rows; counted into resend_bound when the worker is lost).
    Outcomes that queued up meanwhile are written in one transaction.
    """

    def __init__(self, run_id: int, destination_id: int, calls, capacity: int) -> None:
        self.run_id, self.destination_id, self.calls = run_id, destination_id, calls
        self.queue: queue.Queue[Outcome | None] = queue.Queue(maxsize=capacity)
        self.error: BaseException | None = None
        self._unwritten = 0
        self._written = threading.Condition()
        self.thread = threading.Thread(target=self._loop, name=f"run{run_id}-recorder", daemon=True)
        self.thread.start()

    def unwritten(self) -> int:
        """Answered batches whose outcome is not committed yet."""
        with self._written:
            return self._unwritten

    def wait_written(self, below: int) -> None:
        """Wait until fewer than `below` outcomes are unwritten (or the recorder stopped)."""
        with self._written:
            while self._unwritten >= below and self.thread.is_alive():
                self._written.wait(0.5)

    def put(self, outcome: Outcome) -> None:
        with self._written:
            self._unwritten += 1
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
                    with self._written:
                        self._unwritten -= len(outcomes)
                        self._written.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the run's thread by close()
            self.error = exc
        finally:
            connection.close()  # this thread's own connection


def _send_rows(
    run: SyncRun, destination: Destination, connector: Connector, lost: threading.Event | None = None
) -> Stop | None:
    per_request = connector.records_per_request()
    workers = max(1, connector.concurrent_requests())
    # The most this run can have sent but not recorded at any moment: what a lost worker may re-send.
    SyncRun.objects.filter(pk=run.pk).update(in_flight_limit=workers * per_request)
    lost = lost or threading.Event()
    semaphore = connector_slots(connector, destination.pk)
    stopping = threading.Event()
    first_stop: Stop | None = None
    batches = _pending_batches(run.pk, per_request, connector.property_keys())
    calls = connector.http.on_call
    # A second connection cannot see rows of an enclosing, uncommitted transaction (the tests'
    # transactional fixtures): there the outcomes are written inline, by this thread.
    recorder = None if connection.in_atomic_block else OutcomeRecorder(run.pk, destination.pk, calls, workers)
    gate = SendGate(run.workspace_id)  # an erasure never races a batch read before it (audiences.erasure)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"run{run.pk}") as pool:
            in_flight = set()
            exhausted = False
            while True:
                if lost.is_set():  # another worker took the run over: send nothing more
                    stopping.set()
                while not exhausted and not stopping.is_set() and len(in_flight) < workers:
                    if in_flight and gate.erasure_waiting():
                        break  # nothing new until the batches in flight are answered and the gate is free
                    if recorder is not None and len(in_flight) + recorder.unwritten() >= workers:
                        # An answered batch keeps its slot until its outcome is recorded (above).
                        if in_flight:
                            break
                        recorder.wait_written(workers)
                        if not recorder.thread.is_alive():
                            raise RuntimeError(f"outcome recorder stopped: {recorder.error!r}")
                        continue
                    batch = next(batches, None)
                    if batch is None:
                        exhausted = True
                        break
                    gate.hold()
                    batch = _still_pending(run.pk, batch)
                    if batch is not None:
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
                if not in_flight:
                    gate.release()
    finally:
        gate.release()
        if recorder is not None:
            recorder.close()
    return first_stop


def _still_pending(run_id: int, batch: Batch) -> Batch | None:
    """The batch without the rows an erasure removed after they were read (asked under its gate)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM delivery_deliveryrow WHERE run_id = %s AND id BETWEEN %s AND %s AND status = 'pending'",
            [run_id, batch.rows[0].seq, batch.rows[-1].seq],
        )
        if cursor.fetchone()[0] == len(batch.rows):  # the common case: one range count on the (run, id) index
            return batch
        cursor.execute(
            "SELECT id FROM delivery_deliveryrow WHERE run_id = %s AND id = ANY(%s) AND status = 'pending'",
            [run_id, [row.seq for row in batch.rows]],
        )
        present = {row_id for (row_id,) in cursor.fetchall()}
    rows = [row for row in batch.rows if row.seq in present]
    return Batch(batch.action, rows) if rows else None


# Sent once a run has reached its end state (not while it waits), with `run`.
sync_run_finished = Signal()


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
    # Who listens: campaigns (live-behaviour campaigns enroll the people this run delivered).
    sync_run_finished.send(sender=SyncRun, run=run)
    return run
