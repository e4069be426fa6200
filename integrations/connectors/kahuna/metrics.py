"""Kahuna's runs for /metrics (read by config.metrics through the registry)."""

from integrations.connectors.kahuna.models import ExportStatus

ACTIVE = {ExportStatus.QUEUED, ExportStatus.RUNNING}
# (label, statuses a run is still active in, terminal statuses, SQL giving (label, status, active, count)).
# Exports are started by hand, one at a time, and stay a small table.
RUN_KINDS = (
    (
        "kahuna_export",
        [s for s in ExportStatus.values if s in ACTIVE],
        [s for s in ExportStatus.values if s not in ACTIVE],
        (
            "SELECT 'kahuna_export', status, finished_at IS NULL, count(*) FROM campaigns_kahunaexport"
            " WHERE finished_at IS NULL OR finished_at >= %(since)s GROUP BY 2, 3"
        ),
    ),
)
# Rows per destination of the exports finished in the window: (destination_id, sent, rejected, invalid, failed).
DESTINATION_ROWS = (
    (
        "SELECT c.destination_id, sum(e.users_sent), 0, sum(e.invalid), 0 FROM campaigns_kahunaexport e "
        "JOIN campaigns_kahunacampaign c ON c.id = e.campaign_id WHERE e.finished_at >= %(since)s "
        "GROUP BY c.destination_id"
    ),
)
