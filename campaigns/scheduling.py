"""When campaign work is queued: at launch, after a sync run, on the scheduler's tick.

The engine does the work and never queues it (campaigns.tasks imports the engine, so the engine
cannot import the tasks); this module is the one place that queues.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from campaigns import engine
from campaigns.tasks import run_campaign_task
from integrations.delivery.models import SyncRun

logger = logging.getLogger(__name__)


def enqueue(campaign_id: int) -> None:
    """Queue the campaign's work once the caller's transaction commits (never for a rolled-back change)."""
    transaction.on_commit(lambda: run_campaign_task.delay(campaign_id))


def on_sync_run_finished(sender: object, run: SyncRun, **kwargs: object) -> None:
    """Receiver of sync_run_finished (connected in CampaignsConfig): the live campaigns the run
    feeds enroll and send what it delivered."""
    try:
        for campaign_id in engine.live_campaigns_fed_by(run):
            enqueue(campaign_id)
    except Exception:  # the run has ended either way; the tick enrolls from it later
        logger.exception("campaigns after sync run %s", run.pk)


def dispatch_due(now: dt.datetime) -> list[int]:
    """The scheduler tick's entry (config.scheduler.DISPATCHERS)."""
    queued = engine.claim_due(now)
    for campaign_id in queued:
        enqueue(campaign_id)
    return queued
