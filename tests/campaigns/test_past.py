"""Past-behaviour campaigns: reach from estimate_only, launch now / at a time / recurring, refusals,
a lost create answer settled by lookup, Stop Campaign, report figures."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from campaigns import engine, scheduling, service
from campaigns.models import Launch, PartnerState
from campaigns.service import CampaignRefused


def past(world, **fields):
    return world.campaign(kind="past", **fields)


def test_launch_is_refused_until_the_segment_has_a_successful_sync_to_that_destination(world):
    campaign = past(world)
    with pytest.raises(CampaignRefused) as refused:
        service.launch(campaign)
    assert "has no successful sync" in str(refused.value) and "Run its sync" in str(refused.value)
    assert service.estimate(campaign).reach is None
    world.add(range(3))
    world.sync()
    assert service.launch(campaign).status == "running"


def test_reach_comes_from_clevertaps_estimate_and_creates_nothing(world):
    world.add(range(6))
    world.sync()
    campaign = past(world)
    estimate = service.estimate(campaign)
    assert estimate.reach == 6 and "6 people" in estimate.message
    campaign.refresh_from_db()
    assert campaign.reach == 6
    assert world.fake.stats()["campaigns"] == 0
    body = world.fake.find("/1/targets/create.json")[-1]["body"]
    assert body["estimate_only"] is True
    flag = body["where"]["common_profile_properties"]["profile_fields"][0]
    assert flag["name"].endswith(world.segment.external_id) and flag["value"] is True


def test_launch_now_creates_one_clevertap_campaign_and_finishes(world):
    world.add(range(4))
    world.sync()
    campaign = service.launch(past(world, channel="email", content={"subject": "Hi", "body": "Back in stock"}))
    engine.run_campaign(campaign.pk)
    engine.run_campaign(campaign.pk)  # redelivered: nothing more
    campaign.refresh_from_db()
    assert campaign.status == "finished"
    launch = Launch.objects.get(campaign=campaign)
    assert launch.state == PartnerState.ACCEPTED and launch.partner_id
    assert world.fake.stats()["campaigns"] == 1
    created = world.fake.find("/1/targets/create.json")[-1]["body"]
    assert created["target_mode"] == "email" and campaign.marker in created["name"]


def test_a_timeout_on_create_is_looked_up_and_creates_no_second_campaign(world):
    world.add(range(2))
    world.sync()
    campaign = service.launch(past(world))
    world.fake.lose_answers = 1  # CleverTap creates it; the answer is lost
    engine.run_campaign(campaign.pk)
    launch = Launch.objects.get(campaign=campaign)
    assert launch.state == PartnerState.ACCEPTED and "Found at CleverTap" in launch.answer
    engine.run_campaign(campaign.pk)
    assert world.fake.stats()["campaigns"] == 1
    assert len(world.fake.find("/1/targets/create.json")) == 1
    assert len(world.fake.find("/1/targets/list.json")) >= 1


def test_a_create_that_never_arrived_is_created_once_after_two_lookups(world):
    world.add(range(2))
    world.sync()
    campaign = service.launch(past(world))
    world.fake.set_faults(script=[{"drop": True}])  # dropped before CleverTap applied it
    engine.run_campaign(campaign.pk)
    launch = Launch.objects.get(campaign=campaign)
    assert launch.state == PartnerState.UNKNOWN and launch.get_state_display() == "Unknown — checking"
    engine.run_campaign(campaign.pk)  # second look: still absent, so it is created now
    launch.refresh_from_db()
    assert launch.state == PartnerState.ACCEPTED
    assert world.fake.stats()["campaigns"] == 1


def test_a_refused_create_fails_the_campaign_with_clevertaps_reason(world):
    world.add(range(2))
    world.sync()
    campaign = service.launch(past(world))
    world.fake.set_faults(script=[{"status": 400, "message": "Invalid content"}])
    engine.run_campaign(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == "failed" and "Invalid content" in campaign.status_reason
    launch = Launch.objects.get(campaign=campaign)
    assert launch.state == PartnerState.FAILED and "Invalid content" in launch.answer_raw


def test_a_scheduled_campaign_waits_for_its_time_in_the_workspace_zone(world):
    world.add(range(2))
    world.sync()
    tz = zoneinfo.ZoneInfo(world.workspace.timezone)
    at = (timezone.now() + dt.timedelta(days=1)).astimezone(tz).replace(hour=9, minute=30, second=0, microsecond=0)
    campaign = service.launch(past(world, when="at", send_at=at, repeat="daily"))
    assert campaign.status == "scheduled" and campaign.next_run_at == at
    assert scheduling.dispatch_due(at - dt.timedelta(minutes=1)) == []
    # Due: the occurrence is created, and the next one is the same wall-clock time the next day.
    assert engine.occurrence_due(campaign, at + dt.timedelta(minutes=1)) == at
    engine.run_past(campaign, at + dt.timedelta(minutes=1))
    campaign.refresh_from_db()
    assert campaign.status == "running"
    assert campaign.next_run_at.astimezone(tz).replace(tzinfo=None) == (at + dt.timedelta(days=1)).replace(tzinfo=None)
    assert Launch.objects.get(campaign=campaign).occurrence == at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


def test_weekly_occurrences_keep_the_local_time_across_a_dst_change(world):
    campaign = past(world, when="at", send_at=timezone.now() + dt.timedelta(hours=1), repeat="weekly")
    tz = zoneinfo.ZoneInfo("America/New_York")
    before = dt.datetime(2026, 10, 30, 9, 0, tzinfo=tz)  # Friday; clocks go back on 1 November
    after = engine.next_occurrence(campaign, before)
    assert after.astimezone(tz).hour == 9 and (after - before) == dt.timedelta(days=7, hours=1)


def test_stop_calls_stop_campaign_and_refreshes_nothing_more(world):
    world.add(range(3))
    world.sync()
    campaign = service.launch(past(world, repeat="daily"))
    engine.run_campaign(campaign.pk)
    launch = Launch.objects.get(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.status == "running"
    service.stop(campaign)
    stops = world.fake.find("/1/targets/stop.json")
    assert [r["body"] for r in stops] == [{"id": int(launch.partner_id)}]
    assert world.fake.campaigns[int(launch.partner_id)]["status"] in ("stopped", "completed")
    campaign.refresh_from_db()
    assert campaign.status == "stopped" and campaign.next_run_at is None
    with pytest.raises(CampaignRefused):
        service.stop(campaign)


def test_report_figures_are_refreshed_by_the_tick(world, settings):
    settings.CAMPAIGN_REPORT_REFRESH_SECONDS = 0
    world.add(range(4))
    world.sync()
    campaign = service.launch(past(world))
    engine.run_campaign(campaign.pk)
    scheduling.dispatch_due(timezone.now())
    campaign.refresh_from_db()
    assert campaign.report["sent"] == 4 and campaign.report_refreshed_at is not None
    assert world.fake.find("/1/targets/result.json")
