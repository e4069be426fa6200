"""Browser: adding a destination or connecting Amplitude tests the credentials against the partner
(the sandboxes) first. A failed test saves nothing and never shows the typed secret again; "Save
anyway" saves with what was typed; corrected keys save after a passing test."""

import pytest
from playwright.sync_api import expect

from integrations.delivery.models import Destination
from integrations.sandbox.amplitude import AmplitudeSandbox, running_amplitude_sandbox
from integrations.sources.models import AmplitudeCohort, AmplitudeProject
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)

WRONG = "wrong-api-key-5f3"


def test_a_failed_credential_test_does_not_save_a_destination_and_save_anyway_does(page, alice, acme, partners):  # noqa: F811
    partner = partners("list_api")  # accepts only "test-api-key"
    sign_in(page, "alice", PASSWORD)
    page.goto("/destinations/new/list_api/")
    page.fill("#name", "Partner list")
    page.fill("#secret_api_key", WRONG)
    page.fill("#cfg_base_url", partner.base_url)
    page.get_by_role("button", name="Save destination").click()
    expect(page.locator("#test-failed")).to_contain_text("HTTP 401")
    assert not Destination.objects.exists()
    assert WRONG not in page.content()  # the typed secret is kept server-side, never sent back
    expect(page.locator("#name")).to_have_value("Partner list")
    expect(page.locator("#secret_api_key")).to_have_attribute(
        "placeholder", "kept from your last try: leave blank to use it"
    )
    screenshot(page, "destination-test-failed")

    page.get_by_role("button", name="Save anyway").click()
    expect(page.locator(".messages")).to_contain_text("Saved without a working connection")
    dest = Destination.objects.get(workspace=acme)
    assert dest.authorization.secrets == {"api_key": WRONG}
    assert page.url.endswith(f"/destinations/{dest.pk}/")


def test_a_destination_with_working_credentials_is_saved_after_its_test(page, alice, acme, partners):  # noqa: F811
    partner = partners("list_api")
    sign_in(page, "alice", PASSWORD)
    page.goto("/destinations/new/list_api/")
    page.fill("#name", "Partner list")
    page.fill("#secret_api_key", WRONG)
    page.fill("#cfg_base_url", partner.base_url)
    page.get_by_role("button", name="Save destination").click()
    expect(page.locator("#test-failed")).to_be_visible()
    page.fill("#secret_api_key", "test-api-key")  # corrected: tested again, passes, saved
    page.get_by_role("button", name="Save destination").click()
    expect(page.locator(".messages")).to_contain_text("Connection tested")
    assert Destination.objects.get(workspace=acme).authorization.secrets == {"api_key": "test-api-key"}


@pytest.fixture
def amp(settings):
    settings.SOURCES_RETRY_BACKOFF = 0.0
    sandbox = AmplitudeSandbox(seed=5, anonymous_fraction=0)
    sandbox.add_cohort("c-test", name="Weekend Listeners", size=30)
    with running_amplitude_sandbox(sandbox) as running:
        yield running


def test_connecting_amplitude_with_wrong_keys_saves_nothing_until_they_work(page, alice, acme, amp):
    sign_in(page, "alice", PASSWORD)
    page.goto("/sources/")
    page.fill("#id_label", "Music app")
    page.fill("#id_api_key", amp.auth[0])
    page.fill("#id_secret_key", "not-the-secret")
    page.fill("#id_base_url", amp.base_url)
    page.get_by_role("button", name="Save authorization and connect").click()
    expect(page.locator("#test-failed")).to_contain_text("Amplitude refused the credentials")
    assert not AmplitudeProject.objects.exists()
    assert "not-the-secret" not in page.content()
    screenshot(page, "source-test-failed")

    page.fill("#id_secret_key", amp.auth[1])
    page.get_by_role("button", name="Save authorization and connect").click()
    expect(page.locator(".messages")).to_contain_text("Amplitude lists 1 cohort")
    project = AmplitudeProject.objects.get(workspace=acme)
    assert AmplitudeCohort.objects.filter(project=project, name="Weekend Listeners").exists()  # listed at once
