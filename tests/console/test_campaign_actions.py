"""Campaign pages that act, on the sandbox CleverTap over HTTP: the form saves a draft and shows
CleverTap's reach, a launch without a successful sync is refused saying what to do, a past campaign
launches and finishes, a live one is stopped (Stop Campaign) and sends nothing more."""

import datetime as dt
import zoneinfo

import pytest

from campaigns.models import Campaign, Status
from tests.campaigns.conftest import campaign_settings, world  # noqa: F401  (fixtures)
from tests.connectors.conftest import fast_delivery, partners  # noqa: F401  (fixtures)


def form(world, **fields) -> dict:  # noqa: F811
    return {
        "channel": "push",
        "kind": "past",
        "segment": world.segment.pk,
        "destination": world.destination.pk,
        "name": "Weekend offer",
        "content_title": "This weekend",
        "content_body": "20% off",
        "when": "now",
        "repeat": "once",
        "reentry": "never",
        **fields,
    }


def test_marketer_saves_a_draft_sees_the_reach_and_launches_it_to_done(
    client,
    bob,
    world,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    world.add(range(8))
    world.sync()
    client.force_login(bob)
    response = client.post("/campaigns/new/", form(world), follow=True)
    campaign = Campaign.objects.get()
    assert response.redirect_chain[-1][0] == f"/campaigns/{campaign.pk}/"
    html = response.content.decode()
    assert "CleverTap estimates a reach of 8 people." in html and 'id="step-launch"' in html
    assert campaign.status == Status.DRAFT and campaign.reach == 8 and campaign.created_by == bob
    with django_capture_on_commit_callbacks(execute=True):  # the queued task runs (eager Celery)
        client.post(f"/campaigns/{campaign.pk}/launch/")
    html = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Status.FINISHED
    assert "Done: CleverTap has the campaign" in html
    occurrence = dt.datetime.fromisoformat(campaign.launches.get().occurrence).replace(tzinfo=dt.UTC)
    local = occurrence.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    assert f"<td>{local.day} {local:%b %Y, %H:%M} {local.tzname()}</td>" in html  # in Acme's zone, not UTC
    assert world.fake.campaign_summary()["campaigns"] == 1


def test_launch_without_a_successful_sync_is_refused_saying_what_to_do(client, bob, world):  # noqa: F811
    client.force_login(bob)
    html = client.post("/campaigns/new/", form(world), follow=True).content.decode()
    campaign = Campaign.objects.get()
    assert 'id="launch-readiness"' in html and "no successful sync" in html
    html = client.post(f"/campaigns/{campaign.pk}/launch/", follow=True).content.decode()
    assert "no successful sync" in html and "Run its sync" in html
    campaign.refresh_from_db()
    assert campaign.status == Status.DRAFT
    assert world.fake.campaign_summary()["campaigns"] == 0


def test_marketer_stops_a_live_campaign_and_nobody_added_after_is_messaged(
    client,
    bob,
    world,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    world.sync()
    client.force_login(bob)
    client.post("/campaigns/new/", form(world, kind="live", name="Cart drop-off push"))
    campaign = Campaign.objects.get()
    client.post(f"/campaigns/{campaign.pk}/launch/")
    world.add(range(3))
    with django_capture_on_commit_callbacks(execute=True):  # the finished run queues the campaign's task
        world.sync()
    assert campaign.enrollments.filter(status="sent").count() == 3
    html = client.post(f"/campaigns/{campaign.pk}/stop/", follow=True).content.decode()
    assert "is stopped: it sends nothing more" in html
    campaign.refresh_from_db()
    assert campaign.status == Status.STOPPED
    world.add(range(3, 6))
    with django_capture_on_commit_callbacks(execute=True):
        world.sync()
    assert campaign.enrollments.count() == 3
    assert world.fake.campaign_summary()["campaign_sends"] == 3
    html = client.post(f"/campaigns/{campaign.pk}/stop/", follow=True).content.decode()
    assert "nothing to stop" in html  # a second stop says so


@pytest.mark.parametrize("role", ["owner", "ops"])
def test_owners_and_ops_act_too_and_no_page_shows_a_secret(client, alice, oscar, world, role):  # noqa: F811
    world.sync()
    client.force_login(alice if role == "owner" else oscar)
    client.post("/campaigns/new/", form(world, name=f"By {role}"))
    campaign = Campaign.objects.get()
    for url in ("/campaigns/", f"/campaigns/{campaign.pk}/", "/campaigns/new/"):
        assert "pass-1" not in client.get(url).content.decode()
