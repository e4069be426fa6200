"""Ops in the admin: refused channels, filters, search by person, the stop action, the raw answer."""

from __future__ import annotations

import pytest

from campaigns import engine, service
from campaigns.models import Campaign, Enrollment
from integrations.models import ApiKey
from tests.conftest import key_client

SDK_CHANNELS = ["in_app", "web_popup", "web_exit_intent", "app_inbox", "native_display"]


@pytest.fixture
def ops(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def form(world, **fields):
    return {
        "workspace": world.workspace.pk,
        "name": "Admin campaign",
        "kind": "live",
        "segment": world.segment.pk,
        "destination": world.destination.pk,
        "channel": "push",
        "content": '{"title": "Hi", "body": "Back soon"}',
        "when": "now",
        "send_at_0": "",
        "send_at_1": "",
        "repeat": "once",
        "reentry": "never",
        **fields,
    }


@pytest.mark.parametrize("channel", SDK_CHANNELS)
def test_admin_refuses_partner_sync_on_sdk_channels(world, ops, channel):
    response = ops.post("/admin/campaigns/campaign/add/", form(world, channel=channel))
    assert response.status_code == 200  # the form again, with the error next to the field
    assert "Partner Sync is not an SDK event" in response.content.decode()
    assert not Campaign.objects.exists()


def test_admin_adds_a_valid_campaign_and_stops_it(world, ops):
    response = ops.post("/admin/campaigns/campaign/add/", form(world))
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get()
    world.sync()
    service.launch(campaign)
    listed = ops.get("/admin/campaigns/campaign/?status__exact=running&kind__exact=live&channel__exact=push")
    assert "Admin campaign" in listed.content.decode()
    assert "Admin campaign" not in ops.get("/admin/campaigns/campaign/?status__exact=draft").content.decode()
    ops.post(
        "/admin/campaigns/campaign/",
        {"action": "stop_campaigns", "_selected_action": [campaign.pk]},
    )
    campaign.refresh_from_db()
    assert campaign.status == "stopped"


def test_ops_find_an_enrollment_by_person_and_read_the_raw_answer_of_a_failed_one(world, ops):
    world.sync()
    campaign = service.launch(world.campaign())
    world.add(range(2))
    world.sync()
    world.fake.set_faults(
        script=[{"status": 400, "body": {"status": "fail", "error": "Bad content RAW-77", "code": 400}}]
    )
    engine.run_campaign(campaign.pk)
    failed = Enrollment.objects.filter(campaign=campaign, status="failed")
    assert failed.count() == 2
    found = ops.get("/admin/campaigns/enrollment/?q=d1")  # another identity of the person
    assert [e.to_value for e in found.context["cl"].result_list] == ["u1"]
    by_status = ops.get("/admin/campaigns/enrollment/?status__exact=sent")
    assert list(by_status.context["cl"].result_list) == []
    detail = ops.get(f"/admin/campaigns/enrollment/{failed.get(to_value='u1').pk}/change/").content.decode()
    assert "RAW-77" in detail
    # What users read (the API) is the parsed summary, never the raw answer.
    key = ApiKey.issue(world.workspace, scope="management", name="r", access="read")[1]
    rows = key_client(key).get(f"/api/v1/campaigns/{campaign.pk}/enrollments/").json()["results"]
    assert all("answer_raw" not in r for r in rows)
