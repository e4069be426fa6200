"""Kochava's figures for /metrics (read by config.metrics through the registry)."""

# Counters by destination and outcome: (metric name, help, SQL giving (destination_id, outcome, value)).
COUNTERS = (
    (
        "kochava_stream_events",
        "Events a Kochava stream has handled since the destination was created, by outcome.",
        (
            "SELECT s.destination_id, o.outcome, o.value FROM campaigns_kochavastream s, LATERAL (VALUES "
            "('sent', s.events_sent), ('skipped', s.events_skipped), ('rejected', s.events_rejected)) "
            "o(outcome, value) ORDER BY 1, 2"
        ),
    ),
)
