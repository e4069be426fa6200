"""Demo campaigns, on the sandbox CleverTap, through the real code paths (campaigns.service and
the engine the worker runs):

- a past-behaviour campaign on the segment the partners part synced to CleverTap: estimated,
  launched, CleverTap's campaign created (sent);
- a live-behaviour campaign on the pushed "Power users" list: the list is synced to CleverTap, the
  campaign launched, then Amplitude pushes 20 more people into the list; the next sync delivers
  them, and each is enrolled and sent the push (the person page shows why);
- a draft, estimated but not launched, to open, edit and launch in the console;
- Kahuna's adaptive campaign and its export come from the partners part (Campaigns page).

Skipped when the CleverTap demo is (no SANDBOX_CLEVERTAP_URL). Once: a second start finds the
campaigns by name and leaves them as they are.
"""

import datetime as dt

from django.utils import timezone

from audiences.models import Segment
from campaigns import engine, service
from campaigns.models import Campaign
from demo.inbound import CONTEXT, _post
from integrations.delivery.actions import start_run
from integrations.delivery.engine import execute_run
from integrations.delivery.models import Destination, RunStatus, SyncJob, SyncRun
from integrations.inbound import views
from integrations.inbound.apply import apply_pending, pending_scopes

PAST = "Weekend offer (demo)"
DRAFT = "Monday reminder (demo draft)"
LIVE = "Power users welcome push (demo)"
NEW_POWER_USERS = [f"demo-user-{n:04d}" for n in range(250, 270)]


def populate_demo(workspace, state: dict, out) -> None:
    destination = Destination.objects.filter(workspace=workspace, kind="clevertap").first()
    if destination is None:
        out.write("  Campaigns demo skipped: no CleverTap destination.")
        return
    try:
        _past(workspace, destination, out)
        _draft(workspace, destination, out)
        _live(workspace, destination, state, out)
    except Exception as exc:  # noqa: BLE001 - a demo must start even if the sandbox is slow
        out.write(f"  Campaigns demo: could not finish ({exc}).")


def _sync_now(job: SyncJob, mode: str = "auto") -> SyncRun:
    """Run a sync here and now (the demo's campaigns need CleverTap to know the members first): the
    run the partners part queued, if it is still waiting for the worker, else a new one. The worker
    later finds it done (execute_run claims a queued run once)."""
    run = SyncRun.objects.filter(job=job, status=RunStatus.QUEUED).order_by("-id").first()
    if run is None:
        run = start_run(job, trigger="demo", mode=mode)
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def _past(workspace, destination, out) -> None:
    if Campaign.objects.filter(workspace=workspace, name=PAST).exists():
        return
    job = SyncJob.objects.filter(workspace=workspace, destination=destination).order_by("pk").first()
    if job is None:
        out.write("  Campaigns demo: no segment synced to CleverTap, so no past-behaviour campaign.")
        return
    if not SyncRun.objects.filter(job=job, delivered__gt=0).exists():
        _sync_now(job)
    campaign = service.create_campaign(
        workspace,
        name=PAST,
        kind="past",
        segment=job.segment,
        destination=destination,
        channel="push",
        content={"title": "This weekend only", "body": "20% off everything you looked at."},
    )
    reach = service.estimate(campaign).reach
    service.launch(campaign)
    engine.run_campaign(campaign.pk)  # now, not when the worker starts; the queued task then finds it done
    campaign.refresh_from_db()
    out.write(
        f"  Campaigns demo: “{PAST}” on {job.segment.name}: reach {reach}, {campaign.get_status_display().lower()}."
    )


def _draft(workspace, destination, out) -> None:
    if Campaign.objects.filter(workspace=workspace, name=DRAFT).exists():
        return
    job = SyncJob.objects.filter(workspace=workspace, destination=destination).order_by("pk").first()
    if job is None:
        return
    campaign = service.create_campaign(
        workspace,
        name=DRAFT,
        kind="past",
        segment=job.segment,
        destination=destination,
        channel="email",
        content={"subject": "Your week in music", "body": "New picks for the week ahead."},
        when="at",
        send_at=next_monday_morning(workspace),
        repeat="weekly",
    )
    reach = service.estimate(campaign).reach
    out.write(f"  Campaigns demo: “{DRAFT}”, a weekly draft (reach {reach}) to edit and launch in the console.")


def next_monday_morning(workspace) -> dt.datetime:
    """09:00 next Monday in the workspace's zone."""
    local = timezone.now().astimezone(workspace.tz)
    days = (7 - local.weekday()) % 7 or 7
    return (local + dt.timedelta(days=days)).replace(hour=9, minute=0, second=0, microsecond=0)


def _live(workspace, destination, state: dict, out) -> None:
    if Campaign.objects.filter(workspace=workspace, name=LIVE).exists():
        return
    segment = Segment.objects.filter(workspace=workspace, external_id="26umsb5").first()  # the pushed list
    key = state.get("inbound_key")
    if segment is None or not key:
        out.write("  Campaigns demo: no pushed list, so no live campaign.")
        return
    job, _ = SyncJob.objects.get_or_create(
        workspace=workspace,
        segment=segment,
        destination=destination,
        defaults={"cadence": "real_time", "timezone": workspace.timezone},
    )
    _sync_now(job, mode="full")  # CleverTap learns who is in the list now
    campaign = service.create_campaign(
        workspace,
        name=LIVE,
        kind="live",
        segment=segment,
        destination=destination,
        channel="push",
        content={"title": "Welcome to the power users", "body": "Here is what you unlocked."},
        reentry="after_removal",
    )
    service.launch(campaign)
    # Amplitude pushes 20 more people into the list; the sync tells CleverTap (Partner Sync, Added),
    # and the live campaign enrolls and messages each of them.
    _post(views.list_add, key, {"userIds": NEW_POWER_USERS, "context": CONTEXT}, list_id=str(segment.pk))
    for ws, scope in pending_scopes():
        if ws == workspace.pk:
            apply_pending(ws, scope)
    _sync_now(job)
    engine.run_campaign(campaign.pk)
    sent = campaign.enrollments.filter(status="sent").count()
    out.write(f"  Campaigns demo: “{LIVE}” on {segment.name}: {sent} people pushed in, enrolled and sent.")
