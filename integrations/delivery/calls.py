"""Calling a partner: the partner-call log and backoff, shared by the delivery engine and the partner
flows in campaigns/ (Export to Kahuna, the Kochava stream).

Calls are collected in memory by a CallLog (the connector's HTTP client reports each one, from any
thread) and written by the caller's own thread with `log_calls`, in the transaction that records
what the calls achieved; `prune_call_log` keeps the newest DELIVERY_CALL_LOG_SIZE per destination.
"""

from __future__ import annotations

import random
import threading

from django.conf import settings
from django.db import connection

from integrations.connectors.base import CallRecord
from integrations.delivery.models import PartnerCall


def backoff_seconds(attempt: int) -> float:
    """Capped exponential backoff with full jitter (attempt 1, 2, …)."""
    cap = settings.DELIVERY_BACKOFF_CAP_MS / 1000
    base = settings.DELIVERY_BACKOFF_BASE_MS / 1000
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


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
                    response_excerpt=c.response_excerpt,
                    duration_ms=c.duration_ms,
                    error=c.error,
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
