"""Kochava Post Install streaming: events (a cursor over audiences.Event ids) and Send Users.

Events: the selected event types, imported or pushed, in id order, one /track/json call each,
`concurrency` calls in flight. The cursor moves only over a contiguous run of answered events
(sent, skipped by the mapping, or refused by Kochava with a reason) and moves as each request is
answered (one transaction for the oldest answer and those answered right behind it): at most
`concurrency` events after the cursor are ever sent or answered but not recorded, so a stop in the
middle — a long 429, a worker killed — resends at most those and loses nothing not yet answered.
A pass carries a heartbeat (KochavaStream.heartbeat_at); beat's lost-run check says when a worker
was lost mid-pass and adds what it may have sent twice to resend_bound.
A 429 with a short Retry-After is waited in process; a long one ends the pass and is kept in
KochavaStream.next_run_at.

Users: the people whose events were sent (and the members a segment sync to Kochava could not link
yet) are queued in KochavaUserLink. IdentityLink only attaches to a device Kochava has an install
for; until then the link is held back with next_attempt_at (capped exponential backoff) and tried
again by the dispatcher.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from audiences.people_lock import hold_people
from integrations.connectors.kochava.connector import HELD_BACK, KochavaConnector
from integrations.connectors.kochava.models import KochavaEventOutcome, KochavaStream, KochavaUserLink, LinkStatus
from integrations.delivery.calls import CallLog, Verdict, call_with_retries, log_calls, prune_call_log
from integrations.delivery.health import set_health
from integrations.delivery.models import Destination, Health
from integrations.delivery.planning import destination_connector
from integrations.delivery.semaphore import DestinationSemaphore, connector_slots
from integrations.locks import held_lock
from integrations.run_heartbeat import RunHeartbeat

PAGE = 1000
_EVENT_COLUMNS = (
    "id",
    "profile_id",
    "event_type",
    "event_time",
    "user_id",
    "device_id",
    "ip_address",
    "platform",
    "os_name",
    "device_type",
    "country",
    "region",
    "city",
    "amplitude_id",
    "session_id",
    "event_properties",
    "user_properties",
    "data",
)


def connector_for(destination: Destination, calls: CallLog | None = None) -> KochavaConnector:
    """The Kochava destination's connector (its class comes from the destination's kind)."""
    return destination_connector(destination, on_call=calls)


@dataclass
class StreamResult:
    sent: int = 0
    skipped: int = 0
    rejected: int = 0
    last_event_id: int = 0
    stopped: str = ""  # why the pass ended early ("" = caught up or hit max_events)


def _send_one(
    connector: KochavaConnector, body: dict, summary: str, stop: threading.Event, slots: DestinationSemaphore
) -> tuple[str, str, float]:
    """(status, reason, wait) for one record: sent | rejected | stop (then reason + seconds to wait;
    -1 when an operator must act).

    A stop is signalled here, by the worker, so records queued behind it are not sent at all.
    """
    result = call_with_retries(
        lambda: connector.send_record(body, summary), slots, stop=stop, rule=connector.retry_rule
    )
    if result.verdict == Verdict.SENT:
        accepted, error = result.value
        return ("sent", "", 0.0) if accepted else ("rejected", f"Kochava: {error}", 0.0)
    if result.verdict == Verdict.REJECTED:
        return "rejected", result.message, 0.0
    stop.set()
    if result.verdict == Verdict.PARK:
        return "stop", result.message, max(result.wait_seconds, 1.0)
    if result.verdict == Verdict.FAILED:
        return "stop", result.message, 60.0
    if result.error is not None:  # AUTH / PERMANENT
        return "stop", result.message, -1.0
    return "stop", "stopping", 0.0


def stream_events(destination: Destination, *, max_events: int | None = None) -> StreamResult:
    """One pass of the event stream: from the cursor to the newest event (or max_events)."""
    stream, _ = KochavaStream.objects.get_or_create(
        destination=destination, defaults={"workspace_id": destination.workspace_id}
    )
    result = StreamResult(last_event_id=stream.last_event_id)
    config = destination.config
    if not config.get("send_events", True) or destination.health == Health.DISABLED:
        return result
    calls = CallLog()
    connector = connector_for(destination, calls)
    stop = threading.Event()
    slots = connector_slots(connector, destination.pk)
    with _one_pass(destination) as alone:
        if not alone:  # the scheduler and "run now" never stream one destination twice at once
            result.stopped = "another pass of this stream is running"
            return result
        stream.refresh_from_db()  # the cursor as the previous pass left it, read under the lock
        result.last_event_id = stream.last_event_id
        table = KochavaStream._meta.db_table
        KochavaStream.objects.filter(pk=stream.pk).update(
            heartbeat_at=timezone.now(), in_flight_limit=max(1, connector.concurrent_requests())
        )
        try:
            with RunHeartbeat(table, stream.pk, owned="heartbeat_at IS NOT NULL"):
                _stream_pages(destination, stream, connector, calls, stop, slots, result, max_events)
        finally:  # the pass is over (a lost worker never gets here: its heartbeat ages instead)
            KochavaStream.objects.filter(pk=stream.pk).update(heartbeat_at=None)
    if not result.stopped and stream.last_error:
        KochavaStream.objects.filter(pk=stream.pk).update(last_error="")
    prune_call_log(destination.pk)
    return result


@contextmanager
def _one_pass(destination: Destination):
    """An advisory lock for the pass: a second pass would resend events and could move the cursor
    backwards. Held across the pass's many transactions (integrations.locks); a killed worker's
    connections close and release it."""
    with held_lock(f"kochava-stream:{destination.pk}") as acquired:
        yield acquired


def _stream_pages(destination, stream, connector, calls, stop, slots, result: StreamResult, max_events) -> None:
    event_types = destination.config.get("event_types", [])
    window = max(1, connector.concurrent_requests())
    pending: deque = deque()  # (event, body, future) in id order: submitted, not recorded yet
    buffered: deque = deque()  # read, not submitted yet
    read_after, drained, submitted = result.last_event_id, False, 0
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix=f"kochava{destination.pk}") as pool:
        while not result.stopped:
            # Fill the window: never more than `window` events sent or answered but not recorded.
            while len(pending) < window and (max_events is None or submitted < max_events):
                if not buffered and not drained:
                    page = _read_events(destination, read_after, event_types, PAGE)
                    drained = not page
                    buffered.extend(page)
                    read_after = page[-1]["id"] if page else read_after
                if not buffered:
                    break
                event = buffered.popleft()
                body = connector.event_record(event)
                summary = f"event {event['id']} {event['event_type']}"
                future = pool.submit(_send_one, connector, body, summary, stop, slots) if body else None
                pending.append((event, body, future))
                submitted += 1
            if not pending:
                break
            # Wait for the oldest answer; record it with every answer already in right behind it.
            answered = []
            while pending and (not answered or pending[0][2] is None or pending[0][2].done()):
                event, body, future = pending[0]
                status, reason, wait = (
                    ("skipped", "mapping found no Kochava device id, IP address or device ids", 0.0)
                    if future is None
                    else future.result()
                )
                if status == "stop":
                    # The rest stays after the cursor: resent next pass (at least once).
                    stop.set()
                    result.stopped = reason
                    _stop_stream(destination, stream, reason, wait)
                    break
                pending.popleft()
                answered.append((event, body, status, reason))
            if answered:
                _record_answered(destination, stream, connector, answered, calls, result)


def _record_answered(destination, stream, connector, answered: list, calls: CallLog, result: StreamResult) -> None:
    config = destination.config
    outcomes, links, sent = [], [], 0
    for event, body, status, reason in answered:
        if status == "sent":
            sent += 1
            if config.get("send_users", True) and event["profile_id"]:
                links.append(_link_for(connector, event, body))
        else:
            setattr(result, status, getattr(result, status) + 1)
            outcomes.append(
                KochavaEventOutcome(stream=stream, event_id=event["id"], status=status, reason=reason[:2000])
            )
    answered_to = answered[-1][0]["id"]
    _record_page(stream, destination, answered_to, sent, outcomes, links, calls)
    result.sent += sent
    result.last_event_id = answered_to


def _read_events(destination: Destination, after: int, event_types: list[str], limit: int) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM audiences_event "
            "WHERE workspace_id = %s AND id > %s AND event_type = ANY(%s) ORDER BY id LIMIT %s",
            [destination.workspace_id, after, list(event_types), limit],
        )
        rows = cursor.fetchall()
    events = [dict(zip(_EVENT_COLUMNS, row, strict=True)) for row in rows]
    for event in events:  # Django's psycopg setup hands jsonb back as text on raw cursors
        for name in ("event_properties", "user_properties", "data"):
            if isinstance(event[name], str):
                event[name] = json.loads(event[name])
    return events


def _link_for(connector: KochavaConnector, event: dict, body: dict) -> tuple[int, str, dict]:
    chosen = connector.config.get("user_properties", [])
    identities = {k: v for k, v in (event.get("user_properties") or {}).items() if k in chosen}
    if event.get("user_id"):
        identities["User ID"] = event["user_id"]
    return event["profile_id"], body["kochava_device_id"], identities


def _stop_stream(destination: Destination, stream: KochavaStream, reason: str, wait: float) -> None:
    if wait < 0:  # auth or misconfiguration: nothing else can succeed until an operator acts
        set_health(destination, Health.DISABLED if "401" in reason or "403" in reason else Health.DEGRADED, reason)
        wait = 300.0
    KochavaStream.objects.filter(pk=stream.pk).update(
        next_run_at=timezone.now() + dt.timedelta(seconds=wait), last_error=reason[:2000]
    )


_QUEUE_LINKS = """
INSERT INTO campaigns_kochavauserlink
    (workspace_id, destination_id, profile_id, kochava_device_id, identities, status, attempts,
     next_attempt_at, last_error, updated_at)
SELECT %(ws)s, %(dest)s, p, d, i::jsonb, 'pending', 0, now(), '', now()
FROM unnest(%(profiles)s::bigint[], %(devices)s::text[], %(identities)s::text[]) AS t(p, d, i)
ON CONFLICT (destination_id, profile_id, kochava_device_id) DO UPDATE
SET identities = EXCLUDED.identities, status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
WHERE campaigns_kochavauserlink.identities IS DISTINCT FROM EXCLUDED.identities
"""


def queue_links(destination: Destination, links: list[tuple[int, str, dict]]) -> None:
    """Queue (profile, device, identities) for IdentityLink; an unchanged, known link is left alone."""
    unique = {(p, d): i for p, d, i in links if d and i}  # one row per person and device per call
    if not unique:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _QUEUE_LINKS,
            {
                "ws": destination.workspace_id,
                "dest": destination.pk,
                "profiles": [p for p, _ in unique],
                "devices": [d for _, d in unique],
                "identities": [json.dumps(i, sort_keys=True) for i in unique.values()],
            },
        )


def _record_page(
    stream: KochavaStream,
    destination: Destination,
    answered_to: int,
    sent: int,
    outcomes: list[KochavaEventOutcome],
    links: list,
    calls: CallLog,
) -> None:
    """One transaction per answer (or run of answers): cursor, counters, outcomes, queued links and
    the call log agree."""
    skipped = sum(1 for o in outcomes if o.status == "skipped")
    with transaction.atomic():
        if outcomes or links:
            # The events were read before: an erasure since then took some of their people and events away.
            hold_people(destination.workspace_id)
            outcomes, links = _still_there(outcomes, links)
        KochavaEventOutcome.objects.bulk_create(outcomes)
        queue_links(destination, links)
        log_calls(destination.pk, None, calls.drain())
        KochavaStream.objects.filter(pk=stream.pk).update(
            last_event_id=answered_to,
            events_sent=F("events_sent") + sent,
            events_skipped=F("events_skipped") + skipped,
            events_rejected=F("events_rejected") + len(outcomes) - skipped,
        )


def _still_there(outcomes: list[KochavaEventOutcome], links: list) -> tuple[list, list]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM audiences_event WHERE id = ANY(%s)", [[o.event_id for o in outcomes]])
        events = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT id FROM audiences_profile WHERE id = ANY(%s)", [[p for p, _, _ in links]])
        people = {row[0] for row in cursor.fetchall()}
    return [o for o in outcomes if o.event_id in events], [link for link in links if link[0] in people]


# ---- Send Users ----------------------------------------------------------------------------------

_SWEEP = """
INSERT INTO campaigns_kochavauserlink
    (workspace_id, destination_id, profile_id, kochava_device_id, identities, status, attempts,
     next_attempt_at, last_error, updated_at)
SELECT DISTINCT ON (r.profile_id, r.device_id) %(ws)s, %(dest)s, r.profile_id, r.device_id,
       jsonb_strip_nulls(jsonb_build_object('User ID', r.user_id,
           s.partner_name || ' cohort ' || s.name || ' (' || s.external_id || ')',
           CASE r.action WHEN 'add' THEN 'true' ELSE 'false' END)),
       'pending', 1, now() + make_interval(secs => %(delay)s), r.reason, now()
FROM delivery_deliveryrow r
JOIN delivery_syncjob j ON j.id = r.job_id
JOIN audiences_segment s ON s.id = j.segment_id
WHERE j.destination_id = %(dest)s AND r.partner_code = %(held)s AND r.id > %(after)s AND r.device_id IS NOT NULL
ORDER BY r.profile_id, r.device_id, r.id DESC
ON CONFLICT (destination_id, profile_id, kochava_device_id) DO UPDATE
SET identities = campaigns_kochavauserlink.identities || EXCLUDED.identities, status = 'pending',
    next_attempt_at = least(campaigns_kochavauserlink.next_attempt_at, EXCLUDED.next_attempt_at), updated_at = now()
"""


def sweep_held_back_rows(destination: Destination) -> int:
    """Segment-sync rows Kochava could not link yet → the link queue (so they are retried, not lost)."""
    stream, _ = KochavaStream.objects.get_or_create(
        destination=destination, defaults={"workspace_id": destination.workspace_id}
    )
    with transaction.atomic(), connection.cursor() as cursor:
        hold_people(destination.workspace_id)  # copies delivery rows: never those of a person being erased
        cursor.execute("SELECT coalesce(max(id), 0) FROM delivery_deliveryrow")
        high = cursor.fetchone()[0]
        cursor.execute(
            _SWEEP,
            {
                "ws": destination.workspace_id,
                "dest": destination.pk,
                "held": HELD_BACK,
                "after": stream.last_swept_row_id,
                "delay": settings.KOCHAVA_LINK_RETRY_BASE_SECONDS,
            },
        )
        copied = cursor.rowcount
        KochavaStream.objects.filter(pk=stream.pk).update(last_swept_row_id=high)
    return copied


def link_due_users(destination: Destination, *, now=None, limit: int = 500) -> dict[str, int]:
    """Send due IdentityLinks; held-back ones get their next_attempt_at pushed out (capped backoff)."""
    now = now or timezone.now()
    calls = CallLog()
    connector = connector_for(destination, calls)
    with transaction.atomic():
        due = list(
            KochavaUserLink.objects.select_for_update(skip_locked=True)
            .filter(destination=destination, status=LinkStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:limit]
        )
        stop = threading.Event()
        slots = connector_slots(connector, destination.pk)
        with ThreadPoolExecutor(max_workers=connector.concurrent_requests()) as pool:
            answers = list(
                pool.map(
                    lambda link: _send_one(
                        connector,
                        connector.identity_link(link.kochava_device_id, link.identities).json,
                        f"identityLink profile {link.profile_id}",
                        stop,
                        slots,
                    ),
                    due,
                )
            )
        counts = {"linked": 0, "held_back": 0, "failed": 0, "stopped": 0}
        base, cap = settings.KOCHAVA_LINK_RETRY_BASE_SECONDS, settings.KOCHAVA_LINK_RETRY_CAP_SECONDS
        for link, (status, reason, _wait) in zip(due, answers, strict=True):
            link.attempts += 1
            if status == "sent":
                link.status, link.linked_at, link.last_error = LinkStatus.LINKED, now, ""
                counts["linked"] += 1
            elif status == "rejected" and "device not found" in reason.lower():
                delay = min(cap, base * 2 ** min(link.attempts - 1, 20))
                link.next_attempt_at, link.last_error = now + dt.timedelta(seconds=delay), reason
                counts["held_back"] += 1
            elif status == "rejected":
                link.status, link.last_error = LinkStatus.FAILED, reason
                counts["failed"] += 1
            else:  # the partner is throttling or down: try again soon, it is not this link's fault
                link.attempts -= 1
                link.next_attempt_at, link.last_error = now + dt.timedelta(seconds=60), reason
                counts["stopped"] += 1
        KochavaUserLink.objects.bulk_update(due, ["status", "attempts", "next_attempt_at", "last_error", "linked_at"])
        log_calls(destination.pk, None, calls.drain())
    prune_call_log(destination.pk)
    return counts


def run_stream(destination_id: int) -> dict:
    """The periodic unit of work for one Kochava destination (called by tasks.run_kochava_stream)."""
    destination = Destination.objects.select_related("authorization").get(pk=destination_id)
    started = time.monotonic()
    result = stream_events(destination)
    swept = sweep_held_back_rows(destination)
    links = link_due_users(destination)
    return {
        "sent": result.sent,
        "skipped": result.skipped,
        "rejected": result.rejected,
        "swept": swept,
        "links": links,
        "stopped": result.stopped,
        "seconds": round(time.monotonic() - started, 3),
    }
