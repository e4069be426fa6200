import re

from playwright.sync_api import expect

from integrations.models import ApiKey, Authorization
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD


def test_owner_signs_in_and_sees_the_empty_dashboard(page, alice):
    sign_in(page, "alice", PASSWORD)
    expect(page.locator("h1")).to_have_text("Acme")
    expect(page.locator("#first-run h2")).to_have_text("Get started: 0 of 5 done")
    screenshot(page, "dashboard-empty")


def test_owner_creates_an_inbound_key_shown_once(page, alice, acme):
    sign_in(page, "alice", PASSWORD)
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("link", name="API keys").click()
    page.fill("#id_name", "Amplitude cohort sync")
    page.select_option("#id_scope", "inbound")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key").inner_text()
    key = ApiKey.objects.get(workspace=acme, name="Amplitude cohort sync")
    assert shown.startswith(key.prefix)
    screenshot(page, "api-key-created")
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)


def test_owner_saves_an_authorization_and_never_sees_the_secret_again(page, alice, acme):
    sign_in(page, "alice", PASSWORD)
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("link", name="Authorizations").click()
    page.get_by_role("link", name="Amplitude", exact=True).click()
    page.fill("#id_label", "Production project")
    page.fill("#id_secret_api_key", "AMP-API-KEY-visible-nowhere")
    page.fill("#id_secret_secret_key", "AMP-SECRET-visible-nowhere")
    page.get_by_role("button", name="Save authorization").click()
    expect(page.get_by_role("link", name="Production project")).to_be_visible()
    assert "visible-nowhere" not in page.content()
    page.get_by_role("link", name="Production project").click()
    assert page.input_value("#id_secret_api_key") == ""
    assert "visible-nowhere" not in page.content()
    screenshot(page, "authorization-edit")
    assert Authorization.objects.get(workspace=acme).secrets["api_key"] == "AMP-API-KEY-visible-nowhere"


def test_marketer_reads_the_credentials_page(page, bob, acme_clevertap):
    sign_in(page, "bob", PASSWORD)
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("link", name="Authorizations").click()
    expect(page.locator("#ask-owner")).to_contain_text("read-only for you")
    expect(page.get_by_text("CleverTap EU")).to_be_visible()  # the label, never a field or a secret
    assert "ACME-1" not in page.content() and "acme-passcode-s3cret" not in page.content()
    screenshot(page, "marketer-read-only-credentials")


def test_workspace_switcher(page, alice, globex):
    from workspaces.models import Membership

    Membership.objects.create(user=alice, workspace=globex, role="viewer")
    sign_in(page, "alice", PASSWORD)
    page.locator("#account-menu > summary").click()  # the switcher sits in the account menu
    page.select_option("#ws-switch", "globex")
    page.wait_for_url(re.compile(r".*/$"))
    expect(page.locator("h1")).to_have_text("Globex")
