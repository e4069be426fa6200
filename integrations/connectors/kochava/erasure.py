"""What erasing a person must know about Kochava's tables (read by audiences.erasure through the registry).

The tables keep their first app's names (campaigns_*): applied migrations stay valid.
"""

# Error texts and queued identities may quote an id: (table, text columns, jsonb columns, the workspace's rows).
LOG_COLUMNS = (
    ("campaigns_kochavastream", ("last_error",), (), "workspace_id = %(workspace)s"),
    ("campaigns_kochavauserlink", ("last_error",), ("identities",), "workspace_id = %(workspace)s"),
)
# Other people's rows keyed by an identifier, which may be the erased person's: Kochava links another
# person's identity to a device (a shared one) by its id. (table, column); the table has workspace_id.
KEYED_BY_ID = (("campaigns_kochavauserlink", "kochava_device_id"),)
# Whether the person was sent to a Kochava destination: its link queue, and its event stream (their
# events up to its cursor). Rows of (destination_id, user_id, device_id); %(ids)s are their profiles.
SENT_SQL = (
    "SELECT destination_id, NULL, kochava_device_id FROM campaigns_kochavauserlink WHERE profile_id = ANY(%(ids)s)",
    """
SELECT s.destination_id, NULL, NULL FROM campaigns_kochavastream s JOIN delivery_destination d ON d.id = s.destination_id
WHERE s.workspace_id = %(workspace)s AND EXISTS (
    SELECT 1 FROM audiences_event e WHERE e.profile_id = ANY(%(ids)s) AND e.id <= s.last_event_id
      AND e.event_type IN (SELECT jsonb_array_elements_text(d.config -> 'event_types')))
""",
)
