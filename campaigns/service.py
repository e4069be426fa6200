"""What a person does with a campaign (the console, the API and the admin call these)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from campaigns import engine, scheduling
from campaigns.models import API_TARGET_MODE, Campaign, EnrollmentStatus, Kind, Status, When
from campaigns.status import set_status
from campaigns.validation import channel_error, validate_campaign
from integrations.connectors.base import ConnectorError
from integrations.delivery.models import RunStatus, SyncJob, SyncRun

EDITABLE = ("name", "kind", "segment", "destination", "channel", "content", "when", "send_at", "repeat", "reentry")
# What CleverTap's reach estimate depends on: a change to any of them clears the estimate kept on
# the draft (a number for another audience would mislead), whoever makes it (API, console).
REACH_DEPENDS_ON = ("kind", "segment", "destination", "channel")


class CampaignInvalid(ValueError):
    """Field errors: {field: [reasons]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class CampaignRefused(ValueError):
    """The action is not possible now; the message says what to do."""


@dataclass
class Estimate:
    reach: int | None
    message: str


def _check(workspace, fields: dict, *, exclude_pk: int | None = None) -> None:
    errors = validate_campaign(fields, workspace=workspace)
    name = (fields.get("name") or "").strip()
    if not name:
        errors.setdefault("name", []).append("Give the campaign a name.")
    elif Campaign.objects.filter(workspace=workspace, name=name).exclude(pk=exclude_pk).exists():
        errors.setdefault("name", []).append("Another campaign of this workspace has that name.")
    if fields.get("segment") is None:
        errors.setdefault("segment", []).append("Choose the segment (the audience).")
    if fields.get("destination") is None:
        errors.setdefault("destination", []).append("Choose the CleverTap destination.")
    if errors:
        raise CampaignInvalid(errors)


def create_campaign(workspace, *, user=None, **fields) -> Campaign:
    data = {name: fields.get(name) for name in EDITABLE}
    data["content"] = data["content"] or {}
    data["when"] = data["when"] or When.NOW
    data["repeat"] = data["repeat"] or "once"
    data["reentry"] = data["reentry"] or "never"
    _check(workspace, data)
    data["name"] = data["name"].strip()
    creator = user if getattr(user, "pk", None) else None  # an API key acting is no person
    return Campaign.objects.create(workspace=workspace, created_by=creator, **data)


def update_campaign(campaign: Campaign, **fields) -> Campaign:
    if campaign.status != Status.DRAFT:
        raise CampaignRefused("Only a draft can be changed; stop this campaign and create a new one.")
    data = {name: fields.get(name, getattr(campaign, name)) for name in EDITABLE}
    _check(campaign.workspace, data, exclude_pk=campaign.pk)
    data["name"] = data["name"].strip()
    if any(data[name] != getattr(campaign, name) for name in REACH_DEPENDS_ON):
        data.update(reach=None, reach_checked_at=None)  # estimated for another audience: ask again
    for name, value in data.items():
        setattr(campaign, name, value)
    # Saved only while still a draft: a launch between the read and the write wins.
    updated = Campaign.objects.filter(pk=campaign.pk, status=Status.DRAFT).update(**data, updated_at=timezone.now())
    if not updated:
        raise CampaignRefused("Only a draft can be changed; it was launched meanwhile.")
    return campaign


def delete_campaign(campaign: Campaign) -> None:
    deleted, _ = Campaign.objects.filter(pk=campaign.pk, status=Status.DRAFT).delete()
    if not deleted:
        raise CampaignRefused("Only a draft can be deleted; stop the campaign instead.")


def launch_readiness(campaign: Campaign) -> str | None:
    """None when the campaign may be launched, else what to do first."""
    if campaign.channel not in API_TARGET_MODE:
        return engine_channel_message(campaign)
    job = SyncJob.objects.filter(segment_id=campaign.segment_id, destination_id=campaign.destination_id).first()
    synced = (
        job is not None
        and SyncRun.objects.filter(
            job=job, status__in=(RunStatus.SUCCEEDED, RunStatus.PARTIALLY_FAILED), delivered__gt=0
        ).exists()
    )
    if campaign.kind == Kind.PAST and not synced:
        return (
            f"“{campaign.segment.name}” has no successful sync to {campaign.destination.name} yet, so CleverTap "
            f"does not know who is in it. {'Run its sync' if job else 'Create a sync of it to that destination'} "
            "(Syncs), wait for it to succeed, then launch."
        )
    if campaign.kind == Kind.LIVE and job is None:
        return (
            f"“{campaign.segment.name}” is not synced to {campaign.destination.name}: a live campaign sends to "
            "people as that sync delivers them. Create the sync first (Syncs), then launch."
        )
    return None


def engine_channel_message(campaign: Campaign) -> str:
    return channel_error(campaign.kind, campaign.channel) or ""


def estimate(campaign: Campaign) -> Estimate:
    """The reach CleverTap expects (its estimate_only answer), kept on the campaign."""
    if campaign.kind == Kind.LIVE:
        message = "A live campaign reaches the people added to the segment from launch on; no estimate applies."
        return Estimate(None, message)
    problem = launch_readiness(campaign)
    if problem:
        return Estimate(None, problem)
    api = engine.Api(campaign)
    try:
        reach = api.estimate(engine.create_payload(campaign, api, f"{campaign.name} [{campaign.marker} estimate]"))
    except ConnectorError as exc:
        return Estimate(None, f"CleverTap could not estimate the reach: {exc}")
    finally:
        api.flush()
    Campaign.objects.filter(pk=campaign.pk).update(reach=reach, reach_checked_at=timezone.now())
    campaign.reach, campaign.reach_checked_at = reach, timezone.now()
    return Estimate(reach, f"CleverTap estimates {reach:,} people.")


def _ledger_high_water() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM audiences_membershipchange")
        return cursor.fetchone()[0]


def launch(campaign: Campaign, *, user=None) -> Campaign:
    if campaign.status != Status.DRAFT:
        raise CampaignRefused(f"This campaign is {campaign.get_status_display().lower()}; only a draft is launched.")
    errors = validate_campaign({name: getattr(campaign, name) for name in EDITABLE}, workspace=campaign.workspace)
    if errors:
        raise CampaignInvalid(errors)
    problem = launch_readiness(campaign)
    if problem:
        raise CampaignRefused(problem)
    now = timezone.now()
    with transaction.atomic():
        if campaign.kind == Kind.LIVE:
            # Only changes after the launch enroll; runs before it are not read again.
            last_run = (
                SyncRun.objects.filter(job__segment_id=campaign.segment_id, job__destination_id=campaign.destination_id)
                .exclude(status__in=(RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING))
                .order_by("-pk")
                .values_list("pk", flat=True)
                .first()
            )
            Campaign.objects.filter(pk=campaign.pk).update(
                start_after_change_id=_ledger_high_water(), enrolled_through_run_id=last_run or 0
            )
            moved = set_status(
                campaign, Status.RUNNING, reason="Launched: sends as people are added.", expect={Status.DRAFT}
            )
        elif campaign.when == When.AT:
            moved = set_status(campaign, Status.SCHEDULED, reason="Waiting for its time.", expect={Status.DRAFT})
            if moved:
                Campaign.objects.filter(pk=campaign.pk).update(next_run_at=campaign.send_at)
        else:
            moved = set_status(campaign, Status.RUNNING, reason="Launched.", expect={Status.DRAFT})
            if moved:
                Campaign.objects.filter(pk=campaign.pk).update(next_run_at=now)
                scheduling.enqueue(campaign.pk)
        if not moved:
            raise CampaignRefused("This campaign was launched or stopped meanwhile.")
    campaign.refresh_from_db()
    return campaign


def stop(campaign: Campaign, *, user=None) -> Campaign:
    """Stop: nothing more is sent (a send in flight is answered first), CleverTap's campaigns are stopped."""
    with transaction.atomic():
        moved = set_status(
            campaign,
            Status.STOPPED,
            reason=f"Stopped{f' by {user}' if user else ''}.",
            expect={Status.SCHEDULED, Status.RUNNING},
        )
        if not moved:
            campaign.refresh_from_db()
            raise CampaignRefused(
                f"This campaign is {campaign.get_status_display().lower()}; there is nothing to stop."
            )
        engine.skip_pending(campaign)
    problems = engine.stop_at_partner(campaign)
    if problems:
        Campaign.objects.filter(pk=campaign.pk).update(
            status_reason=f"Stopped here; CleverTap did not confirm every stop: {'; '.join(problems)}"[:2000]
        )
    campaign.refresh_from_db()
    return campaign


def progress(campaign: Campaign) -> dict[str, int]:
    counts = dict.fromkeys([s.value for s in EnrollmentStatus], 0)
    for row in campaign.enrollments.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return {
        "enrolled": sum(counts.values()),
        "pending": counts["pending"],
        "sending": counts["sending"],
        "sent": counts["sent"],
        "failed": counts["failed"],
        "unknown": counts["unknown"],
        "skipped": counts["skipped"],
    }
