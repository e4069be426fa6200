"""Browser: the workspace's time zone on a run of a daily job, the shell on one line at 1280 px for
every role with the current page marked, the menu at 390 px, the branded 404 (issue 19.2 and 19.7)."""

import datetime as dt
import re
import zoneinfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.schedules import next_run_after
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD, _person
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, sync
from workspaces.models import Role

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_a_daily_job_at_six_berlin_shows_six_and_its_run_in_berlin_time(page, alice, acme, partners):  # noqa: F811
    acme.timezone = "Europe/Berlin"
    acme.save(update_fields=["timezone"])
    partner = partners("list_api")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 6)))
    dest = destination(acme, "list_api", {"base_url": partner.base_url}, secrets={"api_key": "k"})
    job = job_for(segment, dest, cadence="daily", time_of_day=dt.time(6, 0), timezone="Europe/Berlin")
    run = sync(job)
    job.next_run_at = next_run_after(job, timezone.now())
    job.save(update_fields=["next_run_at"])
    next_local = job.next_run_at.astimezone(BERLIN)
    assert (next_local.hour, next_local.minute) == (6, 0)  # what the page must say, not 05:00 UTC
    started = run.started_at.astimezone(BERLIN)

    sign_in(page, "alice", PASSWORD)
    page.goto(f"/syncs/{job.pk}/")
    label = next_local.tzname()  # CET in winter, CEST in summer
    expect(page.locator("#next-run")).to_have_text(f"{next_local.day} {next_local:%b %Y}, 06:00 {label}")
    expect(page.locator("#runs")).to_contain_text(f"{started.day} {started:%b %Y}, {started:%H:%M:%S} {label}")
    expect(page.locator("footer")).to_contain_text("times in Europe/Berlin")
    screenshot(page, "sync-page-berlin")

    page.goto("/syncs/")
    expect(page.locator("table")).to_contain_text(f"06:00 {label}")


LONG_NAME = "alexandra.fitzgerald-worthington@example.com"


@pytest.fixture
def long_named(acme):
    return _person(LONG_NAME, acme, Role.OWNER, is_staff=True)


# owner (staff), ops, marketer, viewer, and an owner whose user name is an email address
@pytest.mark.parametrize("role", ["alice", "oscar", "bob", "vera", "long_named"])
def test_the_shell_holds_on_one_line_at_1280_and_marks_the_current_page(page, acme, role, request):
    user = request.getfixturevalue(role)
    if role == "alice":  # the owner is also staff here: the widest menu (Admin)
        from django.contrib.auth import get_user_model

        get_user_model().objects.filter(username="alice").update(is_staff=True)
    role = user.username
    sign_in(page, role, PASSWORD)
    page.goto("/segments/")
    bar = page.locator("header.topbar").bounding_box()
    brand = page.locator(".brand").bounding_box()
    account = page.locator("#account-menu > summary").bounding_box()
    assert bar["height"] < 70, bar  # one line: a wrapped bar is twice as tall
    assert abs(brand["y"] - account["y"]) < 20 and account["x"] + account["width"] <= 1280
    for link in page.locator(".nav-main > li > a").all():
        assert abs(link.bounding_box()["y"] - brand["y"]) < 20, link.text_content()
    # Side by side, none over another: the menu's last entry, the person search, the account menu.
    settings_menu = page.locator("#settings-menu > summary").bounding_box()
    search = page.locator(".search input").bounding_box()
    assert settings_menu["x"] + settings_menu["width"] <= search["x"], (settings_menu, search)
    assert search["x"] + search["width"] <= account["x"], (search, account)
    current = page.locator(".nav-main a[aria-current=page]")
    expect(current).to_have_count(1)
    expect(current).to_have_text("Segments")
    expect(page.locator(".menu-toggle")).to_be_hidden()
    # The setup pages fold into one Settings menu.
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("link", name="API keys", exact=True).click()
    expect(page.locator("#settings-menu > summary")).to_have_class(re.compile("current"))
    if role == "alice":
        screenshot(page, "shell-1280")


def test_the_menu_at_390_px(browser, live_server, bob):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, "bob", PASSWORD)
        page.goto("/segments/")
        expect(page.locator(".nav-main")).to_be_hidden()
        toggle = page.get_by_role("button", name="Menu")
        expect(toggle).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.get_by_role("link", name="Syncs", exact=True)).to_be_visible()
        expect(page.locator("#person-q")).to_be_visible()
        search = page.locator("#person-q").bounding_box()
        assert search["height"] < 50 and search["width"] > 300, search  # one line across the menu
        screenshot(page, "menu-390")
        page.get_by_text("Settings", exact=True).click()
        page.get_by_role("link", name="Amplitude setup", exact=True).click()
        expect(page.locator("h1")).to_contain_text("Amplitude")
        expect(page.locator(".nav-main")).to_be_hidden()  # the new page starts with the menu closed
    finally:
        context.close()


def test_a_missing_page_is_the_branded_404(page, bob, acme):
    sign_in(page, "bob", PASSWORD)
    response = page.goto("/segments/987654/")
    assert response.status == 404
    expect(page.locator("#error-page h1")).to_have_text("This page does not exist")
    expect(page.locator(".brand")).to_contain_text("Cohort Console")
    expect(page.locator("header nav")).to_be_visible()  # the shell, so the way on is one click
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page).to_have_url(re.compile(r"/$"))
    screenshot(page, "not-found")


def test_the_sign_in_page_names_the_product(page, bob):
    page.goto("/login/")
    expect(page.locator(".login-brand")).to_have_text("Cohort Console")
    expect(page).to_have_title(re.compile("Sign in · Cohort Console"))
    screenshot(page, "sign-in")
