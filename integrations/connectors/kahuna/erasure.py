"""What erasing a person must know about Kahuna's tables (read by audiences.erasure through the registry).

The tables keep their first app's names (campaigns_*): applied migrations stay valid.
"""

# Error texts of exports may quote an id: (table, text columns, jsonb columns, the workspace's rows).
LOG_COLUMNS = (("campaigns_kahunaexport", ("error",), (), "workspace_id = %(workspace)s"),)
KEYED_BY_ID = ()
# Whether the person was sent to a Kahuna destination: an export of a segment they were in when it ran.
# Rows of (destination_id, user_id, device_id); %(ids)s are the person's profiles.
SENT_SQL = (
    """
SELECT c.destination_id, NULL, NULL FROM campaigns_kahunaexport x JOIN campaigns_kahunacampaign c ON c.id = x.campaign_id
WHERE x.workspace_id = %(workspace)s AND x.status IN ('running', 'succeeded') AND EXISTS (
    SELECT 1 FROM audiences_membershipchange m
    WHERE m.profile_id = ANY(%(ids)s) AND m.segment_id = x.segment_id AND m.occurred_at <= coalesce(x.finished_at, now()))
""",
)
