"""/api/v1/campaigns/: create, list, read, update/delete while draft, estimate, launch, stop, enrollments."""

from __future__ import annotations

import pytest
from django.utils import timezone

from campaigns import engine
from campaigns.models import Campaign, Enrollment
from campaigns.validation import channel_choices, validate_campaign
from integrations.models import ApiKey
from tests.conftest import key_client
from tests.delivery.helpers import make_segment

SDK_CHANNELS = ["in_app", "web_popup", "web_exit_intent", "app_inbox", "native_display"]


@pytest.fixture
def client(world):
    return key_client(ApiKey.issue(world.workspace, scope="management", name="t", access="write")[1])


def body(world, **fields):
    return {
        "name": "Cart drop-off push",
        "kind": "live",
        "segment": world.segment.pk,
        "destination": world.destination.pk,
        "channel": "push",
        "content": {"title": "Still thinking?", "body": "Your cart is waiting"},
        **fields,
    }


@pytest.mark.parametrize("channel", SDK_CHANNELS)
def test_partner_sync_is_refused_for_sdk_channels_naming_the_field_and_reason(world, client, channel):
    response = client.post("/api/v1/campaigns/", body(world, channel=channel), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["channel"]
    assert "Partner Sync is not an SDK event" in error["fields"]["channel"][0]
    assert Campaign.objects.count() == 0


@pytest.mark.parametrize("channel", SDK_CHANNELS)
def test_the_shared_validator_refuses_them_for_live_and_says_past_cannot_be_created_by_api(world, channel):
    live = validate_campaign({"kind": "live", "channel": channel, "content": {}})
    assert "Partner Sync is not an SDK event" in live["channel"][0]
    past = validate_campaign({"kind": "past", "channel": channel, "content": {}})
    assert "cannot be created through CleverTap's API" in past["channel"][0]
    row = next(c for c in channel_choices() if c[0] == channel)
    assert row[2:] == (False, False)  # shown as neither API-creatable nor allowed for Partner Sync


def test_create_list_read_update_delete_while_draft(world, client):
    created = client.post("/api/v1/campaigns/", body(world), format="json")
    assert created.status_code == 201, created.content
    campaign_id = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["progress"]["enrolled"] == 0
    listed = client.get("/api/v1/campaigns/?status=draft&kind=live").json()["results"]
    assert [c["id"] for c in listed] == [campaign_id]
    assert client.get("/api/v1/campaigns/?channel=email").json()["results"] == []
    changed = client.patch(f"/api/v1/campaigns/{campaign_id}/", {"reentry": "after_removal"}, format="json")
    assert changed.status_code == 200 and changed.json()["reentry"] == "after_removal"
    bad = client.patch(f"/api/v1/campaigns/{campaign_id}/", {"channel": "in_app"}, format="json")
    assert bad.status_code == 400 and "Partner Sync is not an SDK event" in bad.json()["error"]["fields"]["channel"][0]
    assert client.delete(f"/api/v1/campaigns/{campaign_id}/").status_code == 204
    assert not Campaign.objects.exists()


def test_a_launched_campaign_cannot_be_changed_or_deleted(world, client):
    world.sync()
    campaign_id = client.post("/api/v1/campaigns/", body(world), format="json").json()["id"]
    launched = client.post(f"/api/v1/campaigns/{campaign_id}/launch/")
    assert launched.status_code == 200 and launched.json()["status"] == "running"
    assert client.patch(f"/api/v1/campaigns/{campaign_id}/", {"name": "x"}, format="json").status_code == 409
    assert client.delete(f"/api/v1/campaigns/{campaign_id}/").status_code == 409
    stopped = client.post(f"/api/v1/campaigns/{campaign_id}/stop/")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert client.post(f"/api/v1/campaigns/{campaign_id}/stop/").status_code == 409


def test_launch_without_a_sync_is_refused_saying_what_to_do(world, client):
    campaign_id = client.post("/api/v1/campaigns/", body(world, kind="past"), format="json").json()["id"]
    refused = client.post(f"/api/v1/campaigns/{campaign_id}/launch/")
    assert refused.status_code == 409
    assert "no successful sync" in refused.json()["error"]["message"]


def test_send_at_without_an_offset_is_read_in_the_workspace_zone(world, client):
    response = client.post(
        "/api/v1/campaigns/", body(world, kind="past", when="at", send_at="2099-01-02T09:30:00"), format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["send_at"].startswith("2099-01-02T09:30:00-05:00")  # Acme is in New York


def test_estimate_and_enrollments_with_search_by_person(world, client):
    world.add(range(3))
    world.sync()
    past_id = client.post("/api/v1/campaigns/", body(world, kind="past", name="Past"), format="json").json()["id"]
    assert client.post(f"/api/v1/campaigns/{past_id}/estimate/").json()["reach"] == 3
    live_id = client.post("/api/v1/campaigns/", body(world), format="json").json()["id"]
    client.post(f"/api/v1/campaigns/{live_id}/launch/")
    world.add(range(3, 6))
    world.sync()
    engine.run_campaign(live_id)
    rows = client.get(f"/api/v1/campaigns/{live_id}/enrollments/").json()["results"]
    assert sorted(r["to_value"] for r in rows) == ["u3", "u4", "u5"]
    assert {r["status_label"] for r in rows} == {"Sent"} and "answer_raw" not in rows[0]
    found = client.get(f"/api/v1/campaigns/{live_id}/enrollments/?person=d4").json()["results"]
    assert [r["to_value"] for r in found] == ["u4"]  # found by another identity of the person
    assert client.get(f"/api/v1/campaigns/{live_id}/enrollments/?status=nope").status_code == 400


def test_viewers_read_but_cannot_create_and_other_workspaces_see_nothing(world, client, globex_management_key):
    campaign_id = client.post("/api/v1/campaigns/", body(world), format="json").json()["id"]
    viewer = key_client(ApiKey.issue(world.workspace, scope="management", name="v", access="read")[1])
    assert viewer.get(f"/api/v1/campaigns/{campaign_id}/").status_code == 200
    assert viewer.post("/api/v1/campaigns/", body(world, name="other"), format="json").status_code == 403
    assert viewer.post(f"/api/v1/campaigns/{campaign_id}/launch/").status_code == 403
    outsider = key_client(globex_management_key)
    assert outsider.get(f"/api/v1/campaigns/{campaign_id}/").status_code == 404
    assert outsider.post("/api/v1/campaigns/", body(world), format="json").status_code == 400  # not its segment
    assert Enrollment.objects.count() == 0


def test_an_update_that_changes_the_audience_clears_the_reach_and_one_that_does_not_keeps_it(world, client):
    """The reach is CleverTap's estimate for one audience: a new kind, segment, destination or channel
    makes it stale, so service.update_campaign clears it (the console's edit form saves through it too)."""
    world.add(range(5))
    world.sync()
    campaign_id = client.post("/api/v1/campaigns/", body(world, kind="past"), format="json").json()["id"]
    url = f"/api/v1/campaigns/{campaign_id}/"
    assert client.post(f"{url}estimate/").json()["reach"] == 5
    kept = client.patch(url, {"name": "Renamed", "content": {"title": "New", "body": "Words"}}, format="json")
    assert kept.status_code == 200 and kept.json()["reach"] == 5 and kept.json()["reach_checked_at"]
    other = make_segment(world.workspace, name="Someone else", external_id="other")
    email = {"channel": "email", "content": {"subject": "Hi", "body": "Words"}}
    for change in ({"segment": other.pk}, {"segment": world.segment.pk}, email, {"kind": "live"}):
        Campaign.objects.filter(pk=campaign_id).update(reach=5, reach_checked_at=timezone.now())  # as estimated
        changed = client.patch(url, change, format="json")
        assert changed.status_code == 200, changed.content
        assert changed.json()["reach"] is None and changed.json()["reach_checked_at"] is None, change
        assert Campaign.objects.get(pk=campaign_id).reach is None
