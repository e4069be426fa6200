"""Browser: a marketer refreshes a Kahuna destination's campaigns, exports a segment to one and sees the
export on the destination page; a viewer reads a Kochava destination's event stream and Send Users."""

from django.utils import timezone
from playwright.sync_api import expect

from audiences.models import Event, Profile
from integrations.connectors.kahuna.models import KahunaExport
from integrations.connectors.kochava.stream import link_due_users, stream_events
from tests.browser.conftest import screenshot, sign_in
from tests.conftest import PASSWORD
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import add_members, destination, make_profiles, make_segment

KAHUNA = {"secret_key": "kahuna-browser-secret", "api_key": "kahuna-browser-api"}


def test_marketer_refreshes_kahuna_campaigns_and_exports_a_segment(page, bob, acme, partners):  # noqa: F811
    partner = partners(
        "kahuna",
        **KAHUNA,
        campaigns={
            "p": [
                {"id": "adaptive-welcome", "name": "Welcome back", "enabled": True},
                {"id": "adaptive-old", "name": "Old promo", "enabled": False},
            ],
            "s": [{"id": "adaptive-test", "name": "Sandbox test campaign", "enabled": True}],
        },
    )
    dest = destination(
        acme, "kahuna", {"base_url": partner.base_url, "environment": "p"}, secrets=KAHUNA, name="Kahuna"
    )
    segment = make_segment(acme, name="Cart abandoners")
    add_members(segment, make_profiles(acme, range(1, 31)))
    sign_in(page, "bob", PASSWORD)
    page.goto(f"/destinations/{dest.pk}/")
    expect(page.locator("#kahuna-campaigns")).to_contain_text("No campaigns yet.")
    page.get_by_role("button", name="Refresh from Kahuna").click()
    expect(page.get_by_text("Kahuna listed 3 campaigns.")).to_be_visible()
    expect(page.locator("#kahuna-campaigns tbody tr")).to_have_count(3)

    page.goto(f"/segments/{segment.pk}/export-to-kahuna/")
    page.select_option("#kahuna-campaign", label="Welcome back (Kahuna)")
    page.get_by_role("button", name="Export").click()
    export = KahunaExport.objects.get(segment=segment)
    assert export.status == "succeeded" and export.users_sent == 30  # eager Celery ran it in the request

    page.goto(f"/destinations/{dest.pk}/")
    row = page.locator("#kahuna-exports tbody tr").first
    expect(row).to_contain_text("Succeeded")
    expect(row).to_contain_text("30 of 30")
    for secret in KAHUNA.values():
        assert secret not in page.content()
    screenshot(page, "kahuna-destination")
    row.get_by_role("link", name="Cart abandoners").click()
    expect(page).to_have_url(f"{page.url.split('/segments/')[0]}/segments/{segment.pk}/")


def test_viewer_reads_the_kochava_event_stream_and_send_users(page, vera, acme, partners):  # noqa: F811
    partner = partners("kochava", installed=[f"kdev-{i}" for i in range(0, 12, 3)], reject_ids=["kdev-bad"])
    dest = destination(
        acme,
        "kochava",
        {
            "base_url": partner.base_url,
            "app_guid": "koapp-1",
            "event_types": ["Purchase", "Sign Up"],
            "mapping": {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"},
        },
        secrets={},
        name="Kochava Post Install",
    )
    now = timezone.now()
    devices = [f"kdev-{i}" for i in range(12)] + [None, "kdev-bad"]
    Event.objects.bulk_create(
        [
            Event(
                workspace=acme,
                profile=Profile.objects.create(workspace=acme),
                uuid=f"b{i}",
                event_type="Purchase" if i % 2 else "Sign Up",
                user_id=f"user-{i}",
                device_id=device,
                ip_address="104.219.46.66",
                event_time=now,
                event_properties={"revenue": 9.99},
            )
            for i, device in enumerate(devices)
        ]
    )
    # What the scheduler's pass does: stream the events, then send the due IdentityLinks.
    result = stream_events(dest)
    assert (result.sent, result.skipped, result.rejected) == (12, 1, 1)
    assert link_due_users(dest)["linked"] == 4
    sign_in(page, "vera", PASSWORD)
    page.goto(f"/destinations/{dest.pk}/")
    expect(page.locator("#events-sent")).to_have_text("12")
    expect(page.locator("#events-skipped")).to_have_text("1")
    expect(page.locator("#events-rejected")).to_have_text("1")
    expect(page.locator("#stream-outcomes")).to_contain_text("invalid kochava_device_id")
    expect(page.locator("#links-linked")).to_have_text("4")
    expect(page.locator("#links-pending")).to_have_text("8")
    expect(page.locator("#links-pending-list")).to_contain_text("device not found")
    expect(page.get_by_role("button", name="Test connection")).to_have_count(0)  # viewers read
    screenshot(page, "kochava-destination")
