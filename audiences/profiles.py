"""Writes to profiles that several loaders share: the one statement that creates people, and
properties merged in from pushes."""

import json

from django.db import connection


def insert_profiles_sql(rows: str, *, profile_id: str = "profile_id", properties: str = "'{}'::jsonb") -> str:
    """The one statement that creates profiles: one per row of `rows` (a FROM item), with the id
    `profile_id` allocated beforehand and the jsonb `properties`, in workspace %(workspace)s, with
    no events counted yet.

    The id comes first because the identity that names the person decides who creates them
    (audiences.identity.resolve): identity resolution, the event loader and the cohort loader
    all create people with it.
    """
    return (
        "INSERT INTO audiences_profile (id, workspace_id, properties, event_counts, created_at, updated_at) "
        f"SELECT {profile_id}, %(workspace)s, {properties}, '{{}}'::jsonb, now(), now() FROM {rows}"
    )


def add_properties(workspace_id: int, properties: dict[int, dict]) -> None:
    """Merge properties into profiles ({profile id: {key: value}}), the given keys winning: one UPDATE."""
    if not properties:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE audiences_profile p SET properties = p.properties || t.props::jsonb, updated_at = now()
               FROM unnest(%s::bigint[], %s::text[]) AS t(id, props)
               WHERE p.id = t.id AND p.workspace_id + 0 = %s""",  # + 0: see audiences.events
            [list(properties), [json.dumps(props) for props in properties.values()], workspace_id],
        )
