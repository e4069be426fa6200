"""Campaigns: what is sent to people through a partner's campaigns (issue 18).

Its first models were partner flows and now live with their partner, in the partner's package under
integrations/connectors/; this app's migrations 0001-0002 created their tables, which keep their
campaigns_* names, and 0003 hands the models over without touching the tables. 0004 on are its own.
"""

import logging

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from integrations.delivery.engine import sync_run_finished

        sync_run_finished.connect(_after_sync_run, dispatch_uid="campaigns.after_sync_run")


def _after_sync_run(sender, run, **kwargs) -> None:
    from campaigns.engine import after_sync_run

    try:
        after_sync_run(run)
    except Exception:  # the run has ended either way; the tick enrolls from it later
        logging.getLogger(__name__).exception("campaigns after sync run %s", run.pk)
