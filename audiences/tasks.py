"""Partition maintenance (beat: config/celery.py, daily)."""

import logging

from celery import shared_task

from audiences.partitions import ensure_partitions

logger = logging.getLogger(__name__)


@shared_task(name="audiences.tasks.maintain_partitions")
def maintain_partitions() -> list[str]:
    created = ensure_partitions()
    if created:
        logger.info("partitions created: %s", ", ".join(created))
    return created
