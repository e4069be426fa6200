"""Browser: connect Amplitude (the sandbox), import a cohort, open its segment page and chart,
find one of its people and read their trace."""

import pytest
from playwright.sync_api import expect

from audiences.models import Identity, Segment
from integrations.sandbox.amplitude import AmplitudeSandbox, running_amplitude_sandbox
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD


@pytest.fixture
def amp(settings):
    settings.SOURCES_POLL_INTERVAL = 0.0
    settings.SOURCES_RETRY_BACKOFF = 0.0
    sandbox = AmplitudeSandbox(seed=5, anonymous_fraction=0)
    sandbox.add_cohort("c-browser", name="Weekend Listeners", size=30)
    with running_amplitude_sandbox(sandbox) as running:
        yield running


def test_connect_import_segment_chart_and_person_trace(page, alice, acme, amp):
    sign_in(page, "alice", PASSWORD)
    page.get_by_role("link", name="Sources", exact=True).click()
    page.fill("#id_label", "Music app")
    page.fill("#id_api_key", amp.auth[0])
    page.fill("#id_secret_key", amp.auth[1])
    page.fill("#id_base_url", amp.base_url)
    page.get_by_role("button", name="Save authorization and connect").click()
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result")).to_contain_text("Connected: 1 cohort")
    screenshot(page, "source-connected")

    page.get_by_role("button", name="Refresh the cohorts from Amplitude").click()  # connecting listed them
    page.get_by_label("Weekend Listeners").check()
    expect(page.locator("#chosen-count")).to_have_text("1 chosen")
    page.select_option("#id_cadence", "one_time")
    page.locator("#cohort-form").get_by_role("button", name="Save and import now").click()  # starts as it is saved
    expect(page.locator("#import-runs table")).to_contain_text("Succeeded")
    screenshot(page, "source-imported")

    segment = Segment.objects.get(workspace=acme, external_id="c-browser")
    assert segment.size == 30
    page.get_by_role("link", name="Segments", exact=True).click()
    page.get_by_role("link", name="Weekend Listeners").click()
    expect(page.locator("#segment-size")).to_have_text("30")
    # The charts are drawn by the scripts at the end of the page, which may run after the size is
    # already on screen: wait for them (a chart never drawn fails here after the timeout).
    page.wait_for_function(
        "() => !!(window.Chart && Chart.getChart(document.getElementById('size-chart')))", timeout=10_000
    )
    screenshot(page, "segment-page")

    user_id = Identity.objects.filter(workspace=acme, kind="user_id").order_by("value").first().value
    page.fill("#person-q", user_id)
    page.press("#person-q", "Enter")
    expect(page.locator(".why")).to_contain_text("In “Weekend Listeners” since")
    expect(page.locator(".timeline")).to_contain_text("Added to segment “Weekend Listeners”")
    screenshot(page, "person-trace")

    page.get_by_role("link", name="Activity", exact=True).click()
    page.select_option("#fp-seg", str(segment.pk))
    page.get_by_role("button", name="Show").click()
    expect(page.locator("table")).to_contain_text(user_id)
    screenshot(page, "find-people")

    page.get_by_role("link", name="Dashboard", exact=True).click()
    screenshot(page, "dashboard")
