"""Demo data for delivery: a List API destination on the sandbox partner and a working sync.

Skipped when SANDBOX_LIST_API_URL is unset (the run command sets it when it starts the sandboxes).
"""

import os

from audiences.models import Segment
from demo.servers import DEMO_CREDENTIALS
from integrations.delivery.actions import run_connection_test, run_now
from integrations.delivery.models import Destination, Health, SyncJob
from integrations.delivery.scheduling import schedule_if_unscheduled
from integrations.models import Authorization


def populate_demo(workspace, state: dict, out) -> None:
    base_url = os.environ.get("SANDBOX_LIST_API_URL")
    if not base_url:
        out.write("  Delivery demo skipped: SANDBOX_LIST_API_URL is not set.")
        return
    auth, _ = Authorization.objects.get_or_create(
        workspace=workspace, provider="list_api", label="Sandbox list partner"
    )
    # The key the run command's sandbox expects (demo.servers), set every time
    # so a workspace seeded by an older demo heals too.
    auth.set_secrets({"api_key": DEMO_CREDENTIALS["list_api"]["api_key"]})
    auth.save()
    config = Destination(kind="list_api").connector_class.validate_config({"base_url": base_url})
    destination, _ = Destination.objects.update_or_create(
        workspace=workspace,
        name="Sandbox list partner",
        defaults={"kind": "list_api", "config": config, "authorization": auth},
    )
    if destination.health != Health.HEALTHY:
        run_connection_test(destination)  # passing it restores a destination an older demo disabled
    segment = Segment.objects.filter(workspace=workspace).order_by("-size").first()
    if segment is None:
        out.write("  Delivery demo: no segment yet, so no sync was created.")
        return
    job, created = SyncJob.objects.get_or_create(
        workspace=workspace,
        segment=segment,
        destination=destination,
        defaults={"cadence": "hourly", "timezone": workspace.timezone},
    )
    if not created:
        # The sandbox forgets its lists on restart: sync again from scratch into a fresh list.
        SyncJob.objects.filter(pk=job.pk).update(partner_state={}, cursor=None)
        job.refresh_from_db()
    schedule_if_unscheduled(job)
    run_now(job, trigger="demo", mode="full")
    out.write(f"  Demo sync: {segment.name} → {destination.name} ({base_url}), hourly.")
