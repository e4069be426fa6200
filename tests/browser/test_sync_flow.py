"""Browser: an owner adds a List API destination against the sandbox, creates a sync through the wizard,
saves it with "Save and sync now" and sees the progress reach done; a viewer is refused an action."""

from playwright.sync_api import expect

from integrations.delivery.models import Destination, SyncJob
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment


def test_owner_adds_destination_creates_sync_and_watches_it_finish(page, alice, acme, partners):  # noqa: F811
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 26)))
    sign_in(page, "alice", PASSWORD)
    page.get_by_role("link", name="Destinations", exact=True).click()
    page.get_by_role("link", name="List API (Amplitude list-based cohort sync)").click()
    page.fill("#name", "Partner list")
    page.fill("#secret_api_key", "test-api-key")
    page.fill("#cfg_base_url", partner.base_url)
    page.fill("#cfg_batch_size", "10")
    page.get_by_role("button", name="Save destination").click()
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-outcome")).to_contain_text("Connection OK")
    assert "test-api-key" not in page.content()
    screenshot(page, "destination-page")
    dest = Destination.objects.get(workspace=acme)

    page.goto(f"/syncs/new/?segment={segment.pk}")
    page.select_option("#destination", str(dest.pk))
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#target")).to_contain_text(f"[Amplitude] {segment.name}: {segment.external_id}")
    page.check("input[name=cadence][value=one_time]")
    screenshot(page, "sync-wizard")
    page.get_by_role("button", name="Save and sync now").click()  # one time: it starts as it is saved
    job = SyncJob.objects.get(segment=segment)
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#rows-done")).to_have_text("25")
    assert partner.fake.members(SyncJob.objects.get(pk=job.pk).partner_state["list_id"]) == {
        f"u{i}" for i in range(1, 26)
    }
    screenshot(page, "sync-page")


def test_viewer_is_refused_an_action(page, vera, acme):
    segment = make_segment(acme)
    dest = destination(acme, "list_api", {"base_url": "http://127.0.0.1:9"}, secrets={"api_key": "k"})
    job = job_for(segment, dest)
    sign_in(page, "vera", PASSWORD)
    page.goto(f"/syncs/{job.pk}/")
    expect(page.get_by_role("button", name="Sync now")).to_have_count(0)
    page.goto("/syncs/new/")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Save and sync now").click()
    expect(page.get_by_text("Viewers can read but not change anything")).to_be_visible()
    screenshot(page, "viewer-refused-sync")
    assert not SyncJob.objects.exclude(pk=job.pk).exists()
