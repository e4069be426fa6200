"""Celery side of the inbox: apply tasks on the inbound queue, and the dispatcher that re-queues
batches nobody applied (broker down at receipt, worker killed, no worker running)."""

import logging
from datetime import datetime, timedelta

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.utils import timezone

from integrations.inbound.apply import ApplyStalled, apply_pending, pending_scopes

logger = logging.getLogger(__name__)


@shared_task(name="integrations.inbound.tasks.apply_pending")
def apply_pending_task(workspace_id: int, segment_id: int | None = None) -> int:
    try:
        return apply_pending(workspace_id, segment_id)
    except ApplyStalled:
        # Already recorded on the batch; the dispatcher re-queues the scope on a later tick.
        return 0


def enqueue(workspace_id: int, segment_id: int | None) -> None:
    """Queue an apply. A broker outage is not the sender's problem: the batch is committed and the
    dispatcher (or the next worker start) picks it up."""
    try:
        apply_pending_task.apply_async((workspace_id, segment_id), retry=False)
    except Exception:  # noqa: BLE001 - any broker failure; the batch stays accepted in the database
        logger.warning(
            "could not queue inbound apply for workspace %s segment %s; the dispatcher will", workspace_id, segment_id
        )


def dispatch_pending(now: datetime, min_age_seconds: int | None = None) -> int:
    """Scheduler dispatcher: queue an apply for every scope with batches pending for a while."""
    age = settings.INBOUND_REQUEUE_AFTER_SECONDS if min_age_seconds is None else min_age_seconds
    scopes = pending_scopes(older_than=now - timedelta(seconds=age))
    for workspace_id, segment_id in scopes:
        enqueue(workspace_id, segment_id)
    return len(scopes)


@worker_ready.connect
def _apply_backlog_on_worker_start(sender=None, **kwargs) -> None:
    """Pushes accepted while every worker was down are applied as soon as one starts."""
    try:
        count = dispatch_pending(timezone.now(), min_age_seconds=0)
        if count:
            logger.info("queued %s inbound scope(s) left pending while no worker ran", count)
    except Exception:
        logger.exception("could not queue the inbound backlog at worker start")
