"""What people ask of Kahuna from the console, the API and the admin: an Export to Kahuna, checked and queued.

The export itself is sent by a worker (tasks.run_kahuna_export -> export.run_export).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from audiences.models import Segment
from integrations.connectors.kahuna.models import KahunaCampaign, KahunaExport
from integrations.connectors.kahuna.tasks import run_kahuna_export
from integrations.delivery.models import Health


class ExportRefused(Exception):
    """An export that cannot start; `field` names what to fix (for a 400 keyed by field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def request_export(
    segment: Segment, campaign: KahunaCampaign, *, user: AbstractBaseUser | AnonymousUser | None = None
) -> KahunaExport:
    """Check and queue an export; raises ExportRefused with the field to fix."""
    if campaign.workspace_id != segment.workspace_id:
        raise ExportRefused("campaign", "The campaign belongs to another workspace.")
    if campaign.campaign_type != "adaptive":
        raise ExportRefused(
            "campaign",
            f"{campaign.name!r} is a {campaign.campaign_type} campaign; exports go to Adaptive campaigns only.",
        )
    if not campaign.enabled:
        raise ExportRefused(
            "campaign",
            f"{campaign.name!r} is disabled in {campaign.get_environment_display()}; "
            "enable it in Kahuna (then refresh) or pick an enabled campaign.",
        )
    if campaign.destination.health == Health.DISABLED:
        raise ExportRefused("campaign", f"The Kahuna destination is disabled: {campaign.destination.last_error}")
    export = KahunaExport.objects.create(
        workspace_id=segment.workspace_id,
        segment=segment,
        campaign=campaign,
        environment=campaign.environment,
        requested_by=user if getattr(user, "pk", None) else None,
    )
    transaction.on_commit(lambda: run_kahuna_export.delay(export.pk))
    return export
