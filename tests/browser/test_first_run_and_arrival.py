"""Browser (issue 19 items 1, 4, 6): a one-time sync saved in the wizard reaches done on its page
without a reload and says where it landed; the checklist of a fresh workspace ticks itself off;
Find People pages past 200; a marketer reads a setup page and asks an owner in one click."""

import pytest
from django.core import mail
from django.test import override_settings
from playwright.sync_api import expect

from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes
from audiences.models import Segment
from config.celery import QUEUES, app
from integrations.delivery.engine import execute_run
from integrations.delivery.models import SyncJob, SyncRun
from integrations.redis_client import redis_client
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, make_profiles, make_segment
from workspaces.models import SetupRequest


@pytest.fixture
def queued_not_run():
    """Celery as in production: a queued run waits in Redis for a worker (the test plays the worker)."""
    client = redis_client()
    keys = [queue + suffix for queue in QUEUES for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")]
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        app.conf.task_always_eager = False
        try:
            yield
        finally:
            app.conf.task_always_eager = True
            client.delete(*keys)  # the message no worker took


def test_a_one_time_sync_saved_in_the_wizard_reaches_done_without_a_reload(
    page,
    bob,
    acme,
    partners,  # noqa: F811
    queued_not_run,
):
    partner = partners("clevertap", account_id="ACC-1", passcode="pass-1")
    segment = make_segment(acme)
    add_members(segment, make_profiles(acme, range(1, 31)))
    dest = destination(
        acme,
        "clevertap",
        {"base_url": partner.base_url},
        secrets={"passcode": "pass-1"},
        fields={"account_id": "ACC-1", "region": "eu1"},
        name="CleverTap EU",
    )
    sign_in(page, "bob", PASSWORD)
    page.goto(f"/syncs/new/?segment={segment.pk}&destination={dest.pk}")
    page.check("input[name=cadence][value=daily]")
    expect(page.locator("#save-sync")).to_have_text("Save sync")
    page.check("input[name=cadence][value=one_time]")
    expect(page.locator("#save-sync")).to_have_text("Save and sync now")
    page.locator("#save-sync").click()

    expect(page.locator("#run-status")).to_have_attribute("data-status", "queued")
    expect(page.locator("#run-words")).to_contain_text("starts within a minute")
    expect(page.locator("#failures-empty")).to_contain_text("No run has finished yet")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    screenshot(page, "sync-queued")

    run = SyncRun.objects.get(job__segment=segment)
    execute_run(run.pk)  # what the worker does when it takes the queued run

    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(page.locator("#run-done")).to_contain_text("30 delivered")
    expect(page.locator("#arrival")).to_contain_text("Partner Sync")
    expect(page.locator("#arrival")).to_contain_text(f"[Amplitude] {segment.name}: {segment.external_id}")
    expect(page.locator("#arrival a")).to_have_attribute("href", "https://eu1.dashboard.clevertap.com/")
    expect(page.locator("#runs")).to_contain_text("Succeeded")  # the run history reloaded itself
    expect(page.locator("#failures-empty")).to_contain_text("Every row was delivered")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    assert len(partner.fake.profiles) == 30
    assert SyncJob.objects.get(pk=run.job_id).next_run_at is None
    screenshot(page, "sync-arrived")


def test_the_checklist_ticks_itself_off_on_a_fresh_workspace(page, alice, acme, partners):  # noqa: F811
    partner = partners("list_api")

    def done() -> list[str]:
        page.goto("/")
        return page.locator("#first-run li").evaluate_all("items => items.map(li => li.dataset.done)")

    sign_in(page, "alice", PASSWORD)
    expect(page.locator("#first-run h2")).to_have_text("Get started: 0 of 5 done")
    screenshot(page, "first-run-checklist")
    page.get_by_role("link", name="Connect Amplitude").click()
    page.goto("/settings/api-keys/")
    page.fill("#id_name", "Amplitude cohort sync")
    page.select_option("#id_scope", "inbound")
    page.get_by_role("button", name="Create key").click()
    assert done() == ["true", "false", "false", "false", "false"]

    segment = make_segment(acme)  # as a push from Amplitude would make it
    add_members(segment, make_profiles(acme, range(1, 6)))
    assert done() == ["true", "true", "false", "false", "false"]

    page.get_by_role("link", name="Add a destination").click()
    page.get_by_role("link", name="List API (Amplitude list-based cohort sync)").click()
    page.fill("#name", "Partner list")
    page.fill("#secret_api_key", "test-api-key")
    page.fill("#cfg_base_url", partner.base_url)
    page.get_by_role("button", name="Save destination").click()
    assert done() == ["true", "true", "true", "false", "false"]
    screenshot(page, "first-run-checklist-half")

    page.get_by_role("link", name="New sync").click()
    page.select_option("#segment", str(segment.pk))
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Save and sync now").click()  # runs at once (eager Celery in tests)
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    page.goto("/")
    expect(page.locator("#first-run")).to_have_count(0)  # every step done: the checklist is gone


@pytest.fixture
def busy_segment(acme):
    segment = Segment.objects.create(workspace=acme, name="Weekend", type="partner_amplitude", external_id="c-250")
    ids = resolve(acme.pk, "user_id", [f"fan-{n:03d}" for n in range(250)]).profile_ids
    apply_changes(segment, add=list(ids.values()), cause=Cause("push", "inbound_batch", 1))
    return segment


def test_find_people_pages_past_200(page, bob, busy_segment):
    sign_in(page, "bob", PASSWORD)
    page.get_by_role("link", name="Activity", exact=True).click()
    expect(page.locator(".pager").first).to_contain_text("Rows 1–100 of 250")
    page.get_by_role("link", name="Next rows →").first.click()
    expect(page.locator(".pager").first).to_contain_text("Rows 101–200 of 250")
    page.get_by_role("link", name="Next rows →").first.click()
    expect(page.locator(".pager").first).to_contain_text("Rows 201–250 of 250")
    expect(page.locator("#changes tbody tr")).to_have_count(50)
    expect(page.get_by_role("link", name="Next rows →")).to_have_count(0)
    screenshot(page, "find-people-paging")


def test_a_marketer_reads_a_setup_page_and_asks_an_owner(page, browser, live_server, bob, alice, acme):
    sign_in(page, "bob", PASSWORD)
    page.get_by_role("link", name="Destinations", exact=True).click()
    page.get_by_role("link", name="CleverTap (profile upload + Partner Sync event)").click()
    expect(page.locator("#ask-owner")).to_contain_text("read-only for you")
    expect(page.locator("#name")).to_be_disabled()
    expect(page.get_by_role("button", name="Save destination")).to_have_count(0)
    screenshot(page, "marketer-read-only-setup")
    page.locator("#ask-button").click()
    expect(page.locator(".messages")).to_contain_text("the owners and ops of this workspace have been told")
    expect(page.locator("#asked")).to_contain_text("You asked")
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    assert SetupRequest.objects.get().requested_by == bob

    owner = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860}).new_page()
    sign_in(owner, "alice", PASSWORD)
    expect(owner.locator("#setup-requests")).to_contain_text("bob asks you to add a destination")
    screenshot(owner, "owner-asked")
    owner.get_by_role("button", name="Mark done").click()
    expect(owner.locator("#setup-requests")).to_have_count(0)
    owner.context.close()


def test_the_cohort_picker_searches_pages_and_keeps_the_chosen_cohorts(page, bob, acme):
    from integrations.models import Authorization
    from integrations.sources.cohorts import remember_listing
    from integrations.sources.models import AmplitudeProject, CohortImportJob

    auth = Authorization(workspace=acme, provider="amplitude", label="Music app")
    auth.set_secrets({"api_key": "k", "secret_key": "s"})
    auth.save()
    project = AmplitudeProject.objects.create(workspace=acme, label="Music app", authorization=auth)
    remember_listing(project, [{"id": f"c{n:03d}", "name": f"Fans {n:03d}", "size": n * 10} for n in range(120)])
    sign_in(page, "bob", PASSWORD)
    page.goto(f"/sources/{project.pk}/")
    expect(page.locator("#cohort-rows .pager")).to_contain_text("Rows 1–25 of 120")
    page.get_by_role("checkbox", name="Fans 003").check()
    page.locator("#cohort-rows").get_by_role("link", name="Next cohorts →").click()  # htmx: only the rows change
    expect(page.locator("#cohort-rows .pager")).to_contain_text("Rows 26–50 of 120")
    page.get_by_role("checkbox", name="Fans 030").check()
    page.select_option("#csort", "size")
    expect(page.locator("#cohort-rows tbody tr").first).to_contain_text("Fans 119")
    page.fill("#cq", "fans 00")
    expect(page.locator("#cohort-rows tbody tr")).to_have_count(10)
    expect(page.get_by_role("checkbox", name="Fans 003")).to_be_checked()  # chosen on another page, still chosen here
    expect(page.locator("#chosen-count")).to_have_text("2 chosen")
    screenshot(page, "cohort-picker")
    page.select_option("#id_cadence", "daily")
    page.fill("#id_time_of_day", "06:00")
    page.locator("#cohort-form").get_by_role("button", name="Save import job").click()
    expect(page.locator(".messages")).to_contain_text("its first run starts")
    assert CohortImportJob.objects.get(project=project).cohort_ids == ["c003", "c030"]
