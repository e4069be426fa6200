"""Celery tasks of the campaigns (routed to the deliveries queue: they talk to CleverTap)."""

from celery import shared_task

from campaigns import engine


@shared_task(name="campaigns.tasks.run_campaign")
def run_campaign_task(campaign_id: int) -> None:
    # Idempotent: enrollment is unique per (campaign, person, change), sends claim rows with SKIP
    # LOCKED and launches are looked up before any create; a redelivered message does no harm.
    engine.run_campaign(campaign_id)
