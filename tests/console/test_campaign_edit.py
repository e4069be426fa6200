"""Editing a draft campaign in the console: the create form filled with the draft's values, saved
through campaigns.service.update_campaign (the API's update: the same validation, only while a
draft, the reach cleared when the audience changes). Refused once launched, 403 for viewers, 404
for another workspace's campaign or an id that is no campaign; bad input answers with the form."""

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from campaigns import service
from campaigns.models import Campaign, Status
from campaigns.status import set_status
from tests.campaigns.conftest import campaign_settings, world  # noqa: F401  (fixtures)
from tests.connectors.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.console.test_campaign_actions import form
from tests.console.test_every_page_reads_well import problems_in, visible_text
from tests.delivery.helpers import make_segment

SAVED = ("name", "kind", "channel", "content", "segment_id", "destination_id", "when", "send_at", "repeat", "reentry")


def saved(campaign: Campaign) -> dict:
    campaign.refresh_from_db()
    return {name: getattr(campaign, name) for name in SAVED} | {"reach": campaign.reach, "status": campaign.status}


def draft(client, bob, world) -> Campaign:  # noqa: F811
    client.force_login(bob)
    assert client.post("/campaigns/new/", form(world)).status_code == 302
    return Campaign.objects.get()


def test_marketer_edits_a_draft_and_a_new_audience_clears_the_reach(client, bob, world):  # noqa: F811
    world.add(range(8))
    world.sync()
    campaign = draft(client, bob, world)
    assert campaign.reach == 8
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f'href="/campaigns/{campaign.pk}/edit/"' in page

    html = client.get(f"/campaigns/{campaign.pk}/edit/").content.decode()
    assert 'value="Weekend offer"' in html and 'value="This weekend"' in html and ">20% off</textarea>" in html
    assert 'name="channel" value="push" data-live-allowed="true" checked' in html
    assert f'<option value="{world.segment.pk}" selected>' in html
    assert "Save changes" in html

    # The words change, the audience does not: the estimate stays.
    changed = form(world, name="Weekend offer v2", content_title="Only this weekend", content_body="25% off")
    response = client.post(f"/campaigns/{campaign.pk}/edit/", changed, follow=True)
    assert response.redirect_chain[-1][0] == f"/campaigns/{campaign.pk}/"
    assert "Saved the changes to “Weekend offer v2”." in response.content.decode()
    now = saved(campaign)
    assert now["name"] == "Weekend offer v2" and now["content"] == {"title": "Only this weekend", "body": "25% off"}
    assert now["reach"] == 8 and now["status"] == Status.DRAFT

    # Another segment (never synced to CleverTap): the estimate for the old one is cleared, and the
    # new estimate says why there is none.
    other = make_segment(world.workspace, name="Window shoppers", external_id="other")
    response = client.post(f"/campaigns/{campaign.pk}/edit/", form(world, segment=other.pk), follow=True)
    html = response.content.decode()
    assert "CleverTap gave no reach estimate" in html and "no successful sync" in html
    now = saved(campaign)
    assert now["segment_id"] == other.pk and now["reach"] is None and campaign.reach_checked_at is None

    # Back to the synced segment: estimated again, as the create flow does.
    response = client.post(f"/campaigns/{campaign.pk}/edit/", form(world), follow=True)
    assert "CleverTap estimates a reach of 8 people." in response.content.decode()
    assert saved(campaign)["reach"] == 8


def test_the_send_time_is_shown_in_the_workspaces_zone(client, bob, world):  # noqa: F811
    campaign = draft(client, bob, world)
    new_york = zoneinfo.ZoneInfo("America/New_York")
    moment = (timezone.now() + dt.timedelta(days=30)).astimezone(new_york).replace(second=0, microsecond=0)
    at = form(world, when="at", send_at=moment.strftime("%Y-%m-%dT%H:%M"))
    assert client.post(f"/campaigns/{campaign.pk}/edit/", at).status_code == 302
    assert saved(campaign)["send_at"] == moment
    html = client.get(f"/campaigns/{campaign.pk}/edit/").content.decode()
    assert f'value="{moment:%Y-%m-%dT%H:%M}"' in html  # the input holds New York's wall-clock time
    shown = f"Saved: {moment.day} {moment:%b %Y, %H:%M} {moment.tzname()}"
    assert shown in html and 'name="when" value="at" checked' in html
    assert problems_in(visible_text(html)) == []  # no ISO timestamp in the visible text (the input's value is not)


def test_a_launched_campaign_is_no_longer_edited(client, bob, world):  # noqa: F811
    world.add(range(3))
    world.sync()
    campaign = draft(client, bob, world)
    service.launch(campaign)  # launched meanwhile, in another tab
    before = saved(campaign)
    assert before["status"] != Status.DRAFT
    for method in (client.get, client.post):
        response = method(f"/campaigns/{campaign.pk}/edit/", form(world, name="Too late"), follow=True)
        assert response.redirect_chain[-1][0] == f"/campaigns/{campaign.pk}/"
        html = response.content.decode()
        assert "so it can no longer be edited: only a draft can be changed" in html
        assert 'id="edit-campaign"' not in html
    assert saved(campaign) == before


def test_a_launch_between_the_check_and_the_save_wins(client, bob, world, monkeypatch):  # noqa: F811
    campaign = draft(client, bob, world)
    update = service.update_campaign

    def launched_meanwhile(campaign, **fields) -> Campaign:
        set_status(campaign, Status.RUNNING, reason="Launched in another tab.", expect={Status.DRAFT})
        campaign.status = Status.DRAFT  # the view read it as a draft
        return update(campaign, **fields)

    monkeypatch.setattr(service, "update_campaign", launched_meanwhile)
    response = client.post(f"/campaigns/{campaign.pk}/edit/", form(world, name="Too late"), follow=True)
    assert response.redirect_chain[-1][0] == f"/campaigns/{campaign.pk}/"
    assert "is running now, so it can no longer be edited" in response.content.decode()
    assert saved(campaign)["name"] == "Weekend offer"


def test_a_viewer_gets_403_and_no_edit_button(client, bob, vera, world):  # noqa: F811
    campaign = draft(client, bob, world)
    before = saved(campaign)
    client.force_login(vera)
    assert 'id="edit-campaign"' not in client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert client.get(f"/campaigns/{campaign.pk}/edit/").status_code == 403
    assert client.post(f"/campaigns/{campaign.pk}/edit/", form(world, name="Viewer's")).status_code == 403
    assert saved(campaign) == before


def test_another_workspaces_campaign_is_404(client, bob, charlie, world):  # noqa: F811
    campaign = draft(client, bob, world)
    before = saved(campaign)
    client.force_login(charlie)
    assert client.get(f"/campaigns/{campaign.pk}/edit/").status_code == 404
    assert client.post(f"/campaigns/{campaign.pk}/edit/", form(world, name="Globex's")).status_code == 404
    assert saved(campaign) == before


@pytest.mark.parametrize("pk", ["abc", "0", "-1", "99999999999999999999", "1e3", "%00"])
def test_ids_that_are_no_campaign_are_404_never_500(client, bob, world, pk):  # noqa: F811
    client.force_login(bob)
    assert client.get(f"/campaigns/{pk}/edit/").status_code == 404
    assert client.post(f"/campaigns/{pk}/edit/", form(world)).status_code == 404


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "nul\u0000"}, "name"),
        ({"content_title": "nul\u0000"}, "content"),
        ({"segment": "abc"}, "segment"),
        ({"segment": "99999999999999999999"}, "segment"),
        ({"segment": ""}, "segment"),
        ({"channel": "in_app", "kind": "live"}, "channel"),
        ({"when": "at", "send_at": "2026-13-45T99:99"}, "send_at"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_input_answers_with_the_form_and_saves_nothing(client, bob, world, fields, field):  # noqa: F811
    campaign = draft(client, bob, world)
    before = saved(campaign)
    response = client.post(f"/campaigns/{campaign.pk}/edit/", form(world, **{"name": "Renamed", **fields}))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="campaign-form"' in html and 'role="alert"' in html
    assert response.context["errors"].get(field), response.context["errors"]
    assert saved(campaign) == before


def test_another_workspaces_segment_is_refused(client, bob, globex, world):  # noqa: F811
    campaign = draft(client, bob, world)
    before = saved(campaign)
    theirs = make_segment(globex, name="Globex's own")
    response = client.post(f"/campaigns/{campaign.pk}/edit/", form(world, segment=theirs.pk))
    assert response.status_code == 400 and response.context["errors"]["segment"]
    assert saved(campaign) == before


def test_the_name_of_another_campaign_is_refused_its_own_is_not(client, bob, world):  # noqa: F811
    campaign = draft(client, bob, world)
    client.post("/campaigns/new/", form(world, name="Spring sale"))
    response = client.post(f"/campaigns/{campaign.pk}/edit/", form(world, name="Spring sale"))
    assert response.status_code == 400
    assert "Another campaign of this workspace has this name." in response.context["errors"]["name"]
    assert client.post(f"/campaigns/{campaign.pk}/edit/", form(world, repeat="daily")).status_code == 302
    assert saved(campaign)["repeat"] == "daily"
