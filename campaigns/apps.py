"""Campaigns: what is sent to people through a partner's campaigns (issue 18).

Its first models were partner flows and now live with their partner, in the partner's package under
integrations/connectors/; this app's migrations 0001-0002 created their tables, which keep their
campaigns_* names, and 0003 hands the models over without touching the tables. 0004 on are its own.
"""

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        # Imported in ready(), as Django asks: models are loaded only now.
        from campaigns.scheduling import on_sync_run_finished
        from integrations.delivery.engine import sync_run_finished

        sync_run_finished.connect(on_sync_run_finished, dispatch_uid="campaigns.after_sync_run")
