"""Identities of kind install_token become device_id (settings.DEVICE_ID_KINDS, issue 16.4).

Kahuna's install_token is Amplitude's device id; pushes now store it as device_id so that it merges
with identify's anonymousId. Existing rows are renamed where the workspace has no device_id of the
same value yet. Where it has (the same device already known under both names, on two profiles),
the row stays as it is: joining those two people is a merge decision (audiences.merge), not a
rename, and a later identify of that device links them by its device_id as before.
"""

from django.db import migrations

RENAME = """
UPDATE audiences_identity i SET kind = 'device_id'
WHERE i.kind = 'install_token'
  AND NOT EXISTS (
      SELECT 1 FROM audiences_identity d
      WHERE d.workspace_id = i.workspace_id AND d.kind = 'device_id' AND d.value = i.value
  )
"""


class Migration(migrations.Migration):
    dependencies = [("audiences", "0007_event_without_type_time_index")]

    operations = [migrations.RunSQL(RENAME, reverse_sql=migrations.RunSQL.noop)]
