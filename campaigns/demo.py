"""Demo data for the partner destinations: CleverTap, Kahuna and Kochava on their sandbox servers.

Each part is skipped when its SANDBOX_<PARTNER>_URL is unset (the run command sets them). Idempotent:
authorizations, destinations and jobs are found by name and updated.
"""

import os

from audiences.models import Segment
from integrations.delivery.engine import enqueue, start_run
from integrations.delivery.models import Destination, RunStatus, SyncJob
from integrations.models import Authorization
from integrations.sandbox.demo_servers import DEMO_CREDENTIALS

KOCHAVA_MAPPING = {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"}


def _destination(workspace, kind: str, name: str, config: dict, secrets: dict, fields: dict) -> Destination:
    auth, _ = Authorization.objects.get_or_create(workspace=workspace, provider=kind, label=f"{name} (demo)")
    auth.fields = fields
    auth.set_secrets(secrets)
    auth.save()
    config = Destination(kind=kind).connector_class.validate_config(config)
    destination, _ = Destination.objects.update_or_create(
        workspace=workspace, name=name, defaults={"kind": kind, "config": config, "authorization": auth})
    return destination


def _sync(workspace, segment, destination, out) -> None:
    job, _ = SyncJob.objects.get_or_create(workspace=workspace, segment=segment, destination=destination,
                                           defaults={"cadence": "hourly", "timezone": workspace.timezone})
    run = start_run(job, trigger="demo", mode="full")  # sandboxes forget everything on restart
    if run.status == RunStatus.QUEUED:
        enqueue(run.pk)
    out.write(f"  Demo sync: {segment.name} → {destination.name}, hourly.")


def populate_demo(workspace, state: dict, out) -> None:
    segment = Segment.objects.filter(workspace=workspace).order_by("-size").first()
    credentials = DEMO_CREDENTIALS
    if url := os.environ.get("SANDBOX_CLEVERTAP_URL"):
        ct = credentials["clevertap"]
        destination = _destination(workspace, "clevertap", "CleverTap (sandbox)",
                                   {"base_url": url, "user_properties": ["city", "country", "language"]},
                                   {"passcode": ct["passcode"]}, {"account_id": ct["account_id"], "region": ""})
        if segment:
            _sync(workspace, segment, destination, out)
    else:
        out.write("  CleverTap demo skipped: SANDBOX_CLEVERTAP_URL is not set.")
    if url := os.environ.get("SANDBOX_KAHUNA_URL"):
        destination = _destination(workspace, "kahuna", "Kahuna (sandbox)", {"base_url": url, "environment": "p"},
                                   dict(credentials["kahuna"]), {})
        try:
            from campaigns.kahuna import refresh_campaigns

            out.write(f"  Kahuna demo: {refresh_campaigns(destination)} campaigns listed; Export to Kahuna is ready.")
        except Exception as exc:  # noqa: BLE001 - a demo must start even if the sandbox is slow
            out.write(f"  Kahuna demo: could not list campaigns ({exc}).")
    else:
        out.write("  Kahuna demo skipped: SANDBOX_KAHUNA_URL is not set.")
    if url := os.environ.get("SANDBOX_KOCHAVA_URL"):
        _destination(workspace, "kochava", "Kochava Post Install (sandbox)",
                     {"base_url": url, "app_guid": credentials["kochava"]["app_guid"], "mapping": KOCHAVA_MAPPING,
                      "event_types": ["Purchase", "Add to Cart", "Sign Up"]}, {}, {"app_guid": credentials["kochava"]["app_guid"]})
        out.write("  Kochava demo: event stream configured (Purchase, Add to Cart, Sign Up).")
    else:
        out.write("  Kochava demo skipped: SANDBOX_KOCHAVA_URL is not set.")
