"""Browser: a marketer opens a draft campaign, clicks Edit, finds the form filled with the draft,
renames it, saves, and the campaign's page shows the new name (still a draft, the reach kept)."""

from playwright.sync_api import expect

from campaigns import service
from campaigns.models import Campaign, Status
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_campaign_flow import synced, unpaced  # noqa: F401  (fixtures)
from tests.conftest import PASSWORD
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)


def test_marketer_renames_a_draft_from_its_page(page, bob, acme, synced):  # noqa: F811
    _, dest, segment, _, _ = synced
    campaign = service.create_campaign(
        acme,
        name="Weekend offer",
        kind="past",
        segment=segment,
        destination=dest,
        channel="push",
        content={"title": "This weekend", "body": "20% off"},
    )
    service.estimate(campaign)
    sign_in(page, "bob", PASSWORD)
    page.goto(f"/campaigns/{campaign.pk}/")
    expect(page.locator("#campaign-reach")).to_contain_text("10 people")
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("heading", name="Edit draft campaign")).to_be_visible()
    expect(page.locator("#name")).to_have_value("Weekend offer")
    expect(page.locator("#content_title")).to_have_value("This weekend")
    expect(page.locator("#segment")).to_have_value(str(segment.pk))
    expect(page.locator("input[name=channel][value=push]")).to_be_checked()
    screenshot(page, "campaign-edit")
    page.fill("#name", "Long weekend offer")
    page.get_by_role("button", name="Save changes").click()
    expect(page).to_have_url(f"{page.url.split('/campaigns/')[0]}/campaigns/{campaign.pk}/")
    expect(page.locator("#campaign-count h2")).to_contain_text("Long weekend offer")
    expect(page.get_by_text("Saved the changes to “Long weekend offer”.")).to_be_visible()
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "draft")
    expect(page.locator("#campaign-reach")).to_contain_text("10 people")  # same audience: the estimate stays
    campaign.refresh_from_db()
    assert campaign.name == "Long weekend offer" and campaign.status == Status.DRAFT and campaign.reach == 10
    assert Campaign.objects.count() == 1
