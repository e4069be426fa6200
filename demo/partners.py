"""Demo data for the partner destinations: CleverTap, Kahuna and Kochava on their sandbox servers.

Each part is skipped when its SANDBOX_<PARTNER>_URL is unset (the run command sets them). Idempotent:
authorizations, destinations and jobs are found by name and updated.

So that the destination pages have something to show from the first minute, the demo also runs the
real code paths once, against the sandboxes: an Export to Kahuna of the biggest segment, and one
Kochava stream pass (events, then IdentityLinks). For some links to attach, the demo first plays the
app's Kochava SDK and reports installs for a third of the devices (Kochava links only devices it has
an install for); the others stay pending, as they would in production.
"""

import os

import requests
from django.db import connection

from audiences.models import Segment
from demo.servers import DEMO_CREDENTIALS
from integrations.connectors.kahuna.actions import request_export
from integrations.connectors.kahuna.export import refresh_campaigns, run_export
from integrations.connectors.kahuna.models import KahunaCampaign, KahunaExport
from integrations.connectors.kochava.stream import run_stream
from integrations.delivery.actions import run_now
from integrations.delivery.models import Destination, SyncJob
from integrations.delivery.scheduling import schedule_if_unscheduled
from integrations.models import Authorization

KOCHAVA_MAPPING = {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"}
KOCHAVA_EVENT_TYPES = ["Purchase", "Add To Cart", "Sign Up"]  # as the sandbox Amplitude names them


def _destination(workspace, kind: str, name: str, config: dict, secrets: dict, fields: dict) -> Destination:
    auth, _ = Authorization.objects.get_or_create(workspace=workspace, provider=kind, label=f"{name} (demo)")
    auth.fields = fields
    auth.set_secrets(secrets)
    auth.save()
    config = Destination(kind=kind).connector_class.validate_config(config)
    destination, _ = Destination.objects.update_or_create(
        workspace=workspace, name=name, defaults={"kind": kind, "config": config, "authorization": auth}
    )
    return destination


def _sync(workspace, segment, destination, out) -> None:
    job, _ = SyncJob.objects.get_or_create(
        workspace=workspace,
        segment=segment,
        destination=destination,
        defaults={"cadence": "hourly", "timezone": workspace.timezone},
    )
    schedule_if_unscheduled(job)
    run_now(job, trigger="demo", mode="full")  # sandboxes forget everything on restart
    out.write(f"  Demo sync: {segment.name} → {destination.name}, hourly.")


def populate_demo(workspace, state: dict, out) -> None:
    segment = Segment.objects.filter(workspace=workspace).order_by("-size").first()
    credentials = DEMO_CREDENTIALS
    if url := os.environ.get("SANDBOX_CLEVERTAP_URL"):
        ct = credentials["clevertap"]
        destination = _destination(
            workspace,
            "clevertap",
            "CleverTap (sandbox)",
            {"base_url": url, "user_properties": ["city", "country", "language"]},
            {"passcode": ct["passcode"]},
            {"account_id": ct["account_id"]},
        )
        if segment:
            _sync(workspace, segment, destination, out)
    else:
        out.write("  CleverTap demo skipped: SANDBOX_CLEVERTAP_URL is not set.")
    if url := os.environ.get("SANDBOX_KAHUNA_URL"):
        destination = _destination(
            workspace,
            "kahuna",
            "Kahuna (sandbox)",
            {"base_url": url, "environment": "p"},
            dict(credentials["kahuna"]),
            {},
        )
        try:
            out.write(f"  Kahuna demo: {refresh_campaigns(destination)} campaigns listed; Export to Kahuna is ready.")
            if segment:
                _kahuna_export(destination, segment, out)
        except Exception as exc:  # noqa: BLE001 - a demo must start even if the sandbox is slow
            out.write(f"  Kahuna demo: could not list campaigns or export ({exc}).")
    else:
        out.write("  Kahuna demo skipped: SANDBOX_KAHUNA_URL is not set.")
    if url := os.environ.get("SANDBOX_KOCHAVA_URL"):
        destination = _destination(
            workspace,
            "kochava",
            "Kochava Post Install (sandbox)",
            {
                "base_url": url,
                "app_guid": credentials["kochava"]["app_guid"],
                "mapping": KOCHAVA_MAPPING,
                "event_types": KOCHAVA_EVENT_TYPES,
            },
            {},
            {"app_guid": credentials["kochava"]["app_guid"]},
        )
        out.write(f"  Kochava demo: event stream configured ({', '.join(KOCHAVA_EVENT_TYPES)}).")
        try:
            _kochava_pass(destination, url, out)
        except Exception as exc:  # noqa: BLE001 - a demo must start even if the sandbox is slow
            out.write(f"  Kochava demo: the first stream pass failed ({exc}); the scheduler will retry.")
    else:
        out.write("  Kochava demo skipped: SANDBOX_KOCHAVA_URL is not set.")


def _kahuna_export(destination: Destination, segment: Segment, out) -> None:
    """Export to Kahuna once (the first enabled Adaptive production campaign), as a marketer would."""
    if KahunaExport.objects.filter(campaign__destination=destination).exists():
        return
    campaign = (
        KahunaCampaign.objects.filter(destination=destination, environment="p", enabled=True, campaign_type="adaptive")
        .order_by("name")
        .first()
    )
    if campaign is None:
        return
    export = request_export(segment, campaign)
    run_export(export.pk)  # now, not when the worker starts; the queued task then finds it claimed
    export.refresh_from_db()
    out.write(
        f"  Kahuna demo: exported {segment.name} to {campaign.name}: {export.get_status_display()}, "
        f"{export.users_sent} of {export.users_total} users."
    )


def _kochava_pass(destination: Destination, url: str, out) -> None:
    """Installs for a third of the streamed devices (the app's SDK would send them), then one stream pass."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT device_id FROM audiences_event WHERE workspace_id = %s"
            " AND event_type = ANY(%s) AND device_id IS NOT NULL ORDER BY device_id LIMIT 600",
            [destination.workspace_id, KOCHAVA_EVENT_TYPES],
        )
        devices = [row[0] for row in cursor.fetchall()][::3]
    guid = destination.config["app_guid"]
    with requests.Session() as session:
        for device in devices:
            session.post(
                f"{url.rstrip('/')}/track/json",
                timeout=10,
                json={
                    "action": "install",
                    "kochava_app_id": guid,
                    "kochava_device_id": device,
                    "data": {
                        "origination_ip": "203.0.113.7",
                        "device_ua": "Demo app/1.0",
                        "device_ver": "",
                        "device_ids": {"adid": device},
                    },
                },
            )
    result = run_stream(destination.pk)
    out.write(
        f"  Kochava demo: {len(devices)} installs reported by the app; stream pass sent {result['sent']} events "
        f"(skipped {result['skipped']}, rejected {result['rejected']}); users linked to a device: "
        + ", ".join(f"{count} {state.replace('_', ' ')}" for state, count in result["links"].items())
        + "."
    )
