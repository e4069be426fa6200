"""The one function that changes a destination's health, and the notice each change sends."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from integrations.delivery.models import Destination, Health
from workspaces.models import Membership, Role

logger = logging.getLogger(__name__)


def set_health(destination: Destination, health: str, error: str = "") -> bool:
    """Move the destination to `health`; on a real change, email the workspace's owners and ops.

    Returns True when the state changed. Row-locked so two runs finishing together send one notice.
    """
    with transaction.atomic():
        current = Destination.objects.select_for_update().get(pk=destination.pk)
        changed = current.health != health
        fields = {"last_error": error[:2000] if health != Health.HEALTHY else ""}
        if changed:
            fields["health_changed_at"] = timezone.now()
            fields["health"] = health
        Destination.objects.filter(pk=current.pk).update(**fields)
        for name, value in fields.items():
            setattr(destination, name, value)
        if changed:
            previous = current.health
            transaction.on_commit(lambda: _notify(destination, previous, health, error))
    return changed


def _notify(destination: Destination, previous: str, health: str, error: str) -> None:
    recipients = list(
        Membership.objects.filter(workspace_id=destination.workspace_id, role__in=[Role.OWNER, Role.OPS])
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return
    labels = dict(Health.choices)
    if health == Health.HEALTHY:
        subject = f"[Cohort Console] {destination.name} recovered"
        body = f"The destination {destination.name} is healthy again (was {labels[previous].lower()})."
    else:
        subject = f"[Cohort Console] {destination.name} is {labels[health].lower()}"
        body = (
            f"The destination {destination.name} changed from {labels[previous].lower()} to "
            f"{labels[health].lower()}.\n\nLast error: {error or '-'}\n"
        )
        if health == Health.DISABLED:
            body += "\nSyncs to it are paused until its credentials or settings are fixed and Test connection passes.\n"
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:  # a mail outage must not fail the run that noticed the change
        logger.exception("could not send the health notice for destination %s", destination.pk)
