"""Calling a partner: the retry policy, backoff and the partner-call log, shared by the delivery engine
and the partners' own flows (integrations/connectors/<kind>/).

`call_with_retries` is the one place a ConnectorError's Policy, Retry-After, backoff and the attempt
caps are read; it answers sent / rejected / failed / park / stop and each caller says what that means
for its rows, stream or export. Calls are collected in memory by a CallLog (the connector's HTTP client reports each one, from any
thread) and written by the caller's own thread with `log_calls`, in the transaction that records
what the calls achieved; `prune_call_log` keeps the newest DELIVERY_CALL_LOG_SIZE per destination.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from django.conf import settings
from django.db import connection

from integrations.connectors.base import CallRecord, ConnectorError, Policy, RetryRule
from integrations.delivery.models import PartnerCall
from integrations.delivery.semaphore import DestinationSemaphore

T = TypeVar("T")


def backoff_seconds(attempt: int) -> float:
    """Capped exponential backoff with full jitter (attempt 1, 2, …)."""
    cap = settings.DELIVERY_BACKOFF_CAP_MS / 1000
    base = settings.DELIVERY_BACKOFF_BASE_MS / 1000
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


class Verdict(StrEnum):
    SENT = "sent"  # the call succeeded: CallResult.value is what it returned
    REJECTED = "rejected"  # the partner refuses this payload (4xx, too large): sending it again is useless
    FAILED = "failed"  # transient errors used up DELIVERY_MAX_ATTEMPTS
    PARK = "park"  # come back in CallResult.wait_seconds: too long to wait in a worker
    STOP = "stop"  # auth or configuration: nothing else can succeed (no error: the caller asked to stop)


@dataclass(frozen=True)
class CallResult(Generic[T]):
    verdict: Verdict
    value: T | None = None
    error: ConnectorError | None = None  # the last error (none when sent, or stopped by the caller)
    wait_seconds: float = 0.0  # PARK: how long the partner (or the backoff) asks to wait
    retried: int = 0  # transient errors retried on the way (429 waits are not counted)

    @property
    def message(self) -> str:
        return self.error.message if self.error is not None else "stopping"


def call_with_retries(
    call: Callable[[], T],
    slots: DestinationSemaphore,
    *,
    rule: RetryRule,
    stop: threading.Event | None = None,
) -> CallResult[T]:
    """Make one partner call, each attempt inside one of `slots`, and retry it as the error's Policy says.

    - RATE_LIMITED (429): wait Retry-After, else backoff, without using up an attempt — the partner
      asked us to slow down, nothing failed; after DELIVERY_MAX_RATE_LIMIT_WAITS such waits, PARK.
    - TRANSIENT (timeout, 5xx): wait Retry-After, else backoff, and try again; the
      DELIVERY_MAX_ATTEMPTS-th transient error is FAILED.
    - A wait over DELIVERY_SHORT_WAIT_SECONDS is a PARK: long waits are kept in the database, never
      in a worker — unless `rule.park_long_waits` is False (the connector's data), then the short wait is waited instead.
    - REJECTED / TOO_LARGE: REJECTED. AUTH / PERMANENT: STOP.
    `stop` set before an attempt, while waiting for a slot or while waiting to retry: STOP, no error.
    """
    stop = stop or threading.Event()
    attempts = rate_waits = retried = 0
    while not stop.is_set():
        try:
            with slots.slot(stop):
                value = call()
            return CallResult(Verdict.SENT, value, retried=retried)
        except InterruptedError:  # stop was set while waiting for a slot
            break
        except ConnectorError as error:
            if error.policy in (Policy.AUTH, Policy.PERMANENT):
                return CallResult(Verdict.STOP, error=error, retried=retried)
            if error.policy in (Policy.REJECTED, Policy.TOO_LARGE):
                return CallResult(Verdict.REJECTED, error=error, retried=retried)
            if error.policy == Policy.RATE_LIMITED:
                rate_waits += 1
                wait = error.retry_after if error.retry_after is not None else backoff_seconds(rate_waits)
                if rate_waits > settings.DELIVERY_MAX_RATE_LIMIT_WAITS:
                    wait = max(wait, settings.DELIVERY_SHORT_WAIT_SECONDS + 1)
                    return CallResult(Verdict.PARK, error=error, wait_seconds=wait, retried=retried)
            else:  # TRANSIENT
                attempts += 1
                if attempts >= settings.DELIVERY_MAX_ATTEMPTS:
                    return CallResult(Verdict.FAILED, error=error, retried=retried)
                retried += 1
                wait = error.retry_after if error.retry_after is not None else backoff_seconds(attempts)
            if wait > settings.DELIVERY_SHORT_WAIT_SECONDS:
                if rule.park_long_waits:
                    return CallResult(Verdict.PARK, error=error, wait_seconds=wait, retried=retried)
                wait = settings.DELIVERY_SHORT_WAIT_SECONDS
            stop.wait(wait)
    return CallResult(Verdict.STOP, retried=retried)


class CallLog:
    """Collects partner calls from worker threads; the caller's thread writes them with `log_calls`."""

    def __init__(self) -> None:
        self._calls: list[CallRecord] = []
        self._lock = threading.Lock()

    def __call__(self, record: CallRecord) -> None:
        with self._lock:
            self._calls.append(record)

    def drain(self) -> list[CallRecord]:
        with self._lock:
            calls, self._calls = self._calls, []
        return calls


def log_calls(destination_id: int, run_id: int | None, calls: list[CallRecord]) -> None:
    """Write partner calls to the destination's call log (summaries only: the records hold no secrets)."""
    if calls:
        PartnerCall.objects.bulk_create(
            [
                PartnerCall(
                    destination_id=destination_id,
                    run_id=run_id,
                    method=c.method,
                    url=c.url[:1000],
                    request_summary=c.request_summary[:500],
                    status_code=c.status_code,
                    response_summary=c.response_summary[:500],
                    response_excerpt=c.response_excerpt,
                    duration_ms=c.duration_ms,
                    error=c.error,
                    error_detail=c.error_detail,
                )
                for c in calls
            ]
        )


def prune_call_log(destination_id: int) -> None:
    """Keep only the destination's newest DELIVERY_CALL_LOG_SIZE calls."""
    keep = settings.DELIVERY_CALL_LOG_SIZE
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM delivery_partnercall WHERE destination_id = %s AND id < ("
            " SELECT id FROM delivery_partnercall WHERE destination_id = %s ORDER BY id DESC OFFSET %s LIMIT 1)",
            [destination_id, destination_id, keep - 1],
        )
