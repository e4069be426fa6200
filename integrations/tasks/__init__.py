"""Celery tasks, one module per queue (routing in config/celery.py is by module name)."""

from integrations.tasks import scheduler  # noqa: F401
