"""Browser: a marketer creates a live campaign (after seeing In-App refused for the Partner Sync
trigger), launches it, a push and a sync enroll and message people, and the enrollment is found on
the person's page; a past-behaviour campaign is estimated, launched and its count reaches done."""

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign, Enrollment, EnrollmentStatus, Launch
from integrations.connectors.kahuna.models import KahunaCampaign, KahunaExport
from integrations.redis_client import redis_client
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync

PASSCODE = "ct-browser-passcode"


@pytest.fixture(autouse=True)
def unpaced(settings):
    settings.CAMPAIGN_SENDS_PER_SECOND = 0  # pacing has its own tests; here the page is what matters
    for key in redis_client().scan_iter("campaigns:pace:*"):
        redis_client().delete(key)


@pytest.fixture
def synced(acme, partners):  # noqa: F811
    """A CleverTap sandbox, a destination on it, and "Cart drop off" synced there with 10 members."""
    partner = partners("clevertap", account_id="ACC-B", passcode=PASSCODE, campaign_rates={"send": 0, "create": 0})
    dest = destination(
        acme,
        "clevertap",
        {"base_url": partner.base_url},
        secrets={"passcode": PASSCODE},
        fields={"account_id": "ACC-B"},
        name="CleverTap",
    )
    segment = make_segment(acme, name="Cart drop off")
    job = job_for(segment, dest)
    people = make_profiles(acme, range(1, 21))
    add_members(segment, people[:10])
    assert sync(job).delivered == 10
    return partner, dest, segment, job, people


def fill_campaign(page, segment, *, channel: str, kind: str, name: str) -> None:
    page.check(f"input[name=channel][value={channel}]")
    page.check(f"input[name=kind][value={kind}]")
    page.select_option("#segment", str(segment.pk))
    page.fill("#name", name)
    page.fill("#content_title", "Still thinking it over?")
    page.fill("#content_body", "Your cart misses you: 10% off today.")


def test_marketer_creates_a_live_campaign_and_finds_the_enrollment_on_the_person_page(page, bob, acme, synced):
    partner, _, segment, job, people = synced
    sign_in(page, "bob", PASSWORD)
    page.get_by_role("link", name="Campaigns", exact=True).click()
    page.get_by_role("link", name="New campaign").click()
    fill_campaign(page, segment, channel="in_app", kind="live", name="Cart drop-off push")
    page.get_by_role("button", name="Save and estimate reach").click()
    refusal = page.locator("#channel-errors")
    expect(refusal).to_contain_text("In-App message cannot be triggered by Partner Sync")
    expect(refusal).to_contain_text("Partner Sync is not an SDK event")
    expect(page.locator("#name")).to_have_value("Cart drop-off push")  # nothing typed is lost
    screenshot(page, "campaign-refused-in-app")
    assert not Campaign.objects.exists()

    page.check("input[name=channel][value=push]")
    page.get_by_role("button", name="Save and estimate reach").click()
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "draft")
    expect(page.locator("#step-reach")).to_contain_text("from its launch on")
    page.get_by_role("button", name="Launch now").click()
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "running")
    campaign = Campaign.objects.get()

    # A push adds three people; the sync delivers them to CleverTap; the campaign enrolls and sends.
    add_members(segment, people[10:13])
    assert sync(job).delivered == 3
    page.reload()
    expect(page.locator("#count-enrolled")).to_have_text("3")
    expect(page.locator("#count-sent")).to_have_text("3")
    expect(page.locator("#enrollments tbody tr")).to_have_count(3)
    assert set(Enrollment.objects.filter(campaign=campaign).values_list("status", flat=True)) == {EnrollmentStatus.SENT}
    assert partner.fake.campaign_summary()["duplicate_sends"] == 0
    screenshot(page, "campaign-live")
    assert PASSCODE not in page.content()

    page.fill("#enroll-q", "u12")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#enrollments tbody tr")).to_have_count(1)
    page.locator("#enrollments").get_by_role("link", name=f"Person #{people[11]}").click()
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Entered “Cart drop-off push” because they were added to “Cart drop off” at")
    expect(timeline).to_contain_text("Sent “Cart drop-off push” (Mobile push) through CleverTap")
    expect(timeline).to_contain_text("Times in America/New_York")
    screenshot(page, "person-campaign-trace")


def test_marketer_launches_a_past_behaviour_campaign_and_watches_it_reach_done(page, bob, acme, synced):
    partner, _, segment, _, _ = synced
    sign_in(page, "bob", PASSWORD)
    page.goto("/campaigns/new/")
    fill_campaign(page, segment, channel="push", kind="past", name="Weekend offer")
    screenshot(page, "campaign-new")
    page.get_by_role("button", name="Save and estimate reach").click()
    expect(page.get_by_text("CleverTap estimates a reach of 10 people.")).to_be_visible()
    expect(page.locator("#campaign-reach")).to_contain_text("10 people")
    page.get_by_role("button", name="Launch now").click()
    # The launch queues CleverTap's create; the live part follows it until it is done.
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "finished")
    expect(page.locator("#campaign-done")).to_contain_text("Done: CleverTap has the campaign")
    launch = Launch.objects.get(campaign__name="Weekend offer")
    expect(page.locator("#launches")).to_contain_text(launch.partner_id)
    assert partner.fake.campaign_summary()["campaigns"] == 1
    screenshot(page, "campaign-past-done")

    # Kahuna's adaptive campaign, with an export of the segment, shares the page.
    kahuna = destination(acme, "kahuna", {"base_url": "http://127.0.0.1:9", "environment": "p"}, name="Kahuna")
    adaptive = KahunaCampaign.objects.create(
        workspace=acme, destination=kahuna, name="Welcome back", campaign_id="adaptive-welcome"
    )
    KahunaExport.objects.create(
        workspace=acme,
        segment=segment,
        campaign=adaptive,
        environment="p",
        status="succeeded",
        users_total=10,
        users_sent=10,
    )
    page.goto("/campaigns/")
    expect(page.locator("#kahuna-adaptive-campaigns")).to_contain_text("Welcome back")
    expect(page.locator("#kahuna-adaptive-campaigns")).to_contain_text("10 of 10 sent")
    row = page.locator("#campaigns-table tbody tr", has_text="Weekend offer")
    expect(row).to_contain_text("Past behaviour")
    expect(row).to_contain_text("Finished")
    expect(row).to_contain_text("10")  # the reach
    screenshot(page, "campaigns-list")
