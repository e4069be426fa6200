"""Destination pages, partner sections: Kahuna campaigns and exports, the Kochava event stream and Send Users."""

import datetime as dt

import pytest
from django.utils import timezone

from audiences.models import Event, Profile
from integrations.connectors.kahuna.models import ExportStatus, KahunaCampaign, KahunaExport
from integrations.connectors.kochava.models import KochavaStream, KochavaUserLink, LinkStatus
from integrations.connectors.kochava.stream import link_due_users, stream_events
from integrations.connectors.kochava.views import capped_count
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401  (fixtures)
from tests.delivery.helpers import destination, make_segment

KAHUNA_SECRETS = {"secret_key": "kahuna-s3cret-key", "api_key": "kahuna-api-k3y"}
KOCHAVA_SECRET = "kochava-api-s3cret"
MAPPING = {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"}


def kahuna(acme, base_url="http://127.0.0.1:9"):  # nothing listens: these pages call nobody
    return destination(
        acme, "kahuna", {"base_url": base_url, "environment": "p"}, secrets=KAHUNA_SECRETS, name="Kahuna"
    )


def kochava(acme, base_url="http://127.0.0.1:9", name="Kochava", **config):
    return destination(
        acme,
        "kochava",
        {"base_url": base_url, "app_guid": "koapp-1", "mapping": MAPPING, "event_types": ["Purchase"], **config},
        secrets={"api_key": KOCHAVA_SECRET},
        name=name,
    )


def page(client, dest) -> str:
    response = client.get(f"/destinations/{dest.pk}/")
    assert response.status_code == 200
    return response.content.decode()


# ---- Kahuna --------------------------------------------------------------------------------------


def test_kahuna_page_lists_campaigns_and_exports_linking_to_the_segment(client, vera, acme):
    dest = kahuna(acme)
    welcome = KahunaCampaign.objects.create(
        workspace=acme,
        destination=dest,
        name="Welcome back",
        campaign_id="c-1",
        environment="p",
        refreshed_at=timezone.now(),
    )
    KahunaCampaign.objects.create(
        workspace=acme, destination=dest, name="Old promo", campaign_id="c-2", environment="s", enabled=False
    )
    KahunaCampaign.objects.create(
        workspace=acme, destination=dest, name="Push blast", campaign_id="c-3", campaign_type="push"
    )
    segment = make_segment(acme, name="Cart abandoners")
    KahunaExport.objects.create(
        workspace=acme,
        segment=segment,
        campaign=welcome,
        environment="p",
        status=ExportStatus.SUCCEEDED,
        job_id="job-42",
        job_ids=["job-42"],
        users_total=120,
        users_sent=118,
        invalid=2,
    )
    KahunaExport.objects.create(
        workspace=acme,
        segment=segment,
        campaign=welcome,
        environment="p",
        status=ExportStatus.FAILED,
        error="Kahuna: campaign is not running",
    )
    client.force_login(vera)
    html = page(client, dest)
    assert 'id="campaigns"' in html and "Welcome back" in html and "Old promo" in html
    assert "Production" in html and "Staging (Sandbox)" in html
    assert "Disabled" in html and "Enabled" in html and "Adaptive" in html and "(cannot receive exports)" in html
    assert "entered by hand" in html  # Old promo was never listed by Kahuna
    assert f'href="/segments/{segment.pk}/">Cart abandoners</a>' in html
    assert "118 of 120" in html and "job-42" in html and "Kahuna: campaign is not running" in html
    # Viewers read: no refresh button; nobody sees the credentials.
    assert "Refresh from Kahuna" not in html
    for secret in KAHUNA_SECRETS.values():
        assert secret not in html


def test_kahuna_empty_states_say_what_to_do(client, bob, vera, acme):
    dest = kahuna(acme)
    client.force_login(bob)
    html = page(client, dest)
    assert "No campaigns yet." in html and "Refresh from Kahuna to list this account's campaigns" in html
    assert "No exports to this destination's campaigns yet." in html and 'href="/segments/"' in html
    client.force_login(vera)
    assert "A marketer can refresh the list from Kahuna" in page(client, dest)


def test_marketer_refreshes_campaigns_from_kahuna(client, bob, acme, partners):  # noqa: F811
    partner = partners(
        "kahuna",
        secret_key=KAHUNA_SECRETS["secret_key"],
        api_key=KAHUNA_SECRETS["api_key"],
        campaigns={
            "p": [{"id": "adaptive-1", "name": "Win back", "enabled": True}],
            "s": [{"id": "adaptive-2", "name": "Staging try", "enabled": False}],
        },
    )
    dest = kahuna(acme, partner.base_url)
    client.force_login(bob)
    html = page(client, dest)
    assert "Refresh from Kahuna" in html
    response = client.post(f"/destinations/{dest.pk}/kahuna-campaigns/refresh/")
    assert response.status_code == 302 and response["Location"] == f"/destinations/{dest.pk}/#campaigns"
    html = client.get(response["Location"]).content.decode()
    assert "Kahuna listed 2 campaigns." in html and "Win back" in html and "Staging try" in html
    assert set(KahunaCampaign.objects.filter(destination=dest).values_list("campaign_id", flat=True)) == {
        "adaptive-1",
        "adaptive-2",
    }


def test_refresh_failure_is_explained_and_viewers_cannot_refresh(client, bob, vera, acme, partners):  # noqa: F811
    partner = partners("kahuna", secret_key="other", api_key="other")
    dest = kahuna(acme, partner.base_url)
    client.force_login(bob)
    html = client.post(f"/destinations/{dest.pk}/kahuna-campaigns/refresh/", follow=True).content.decode()
    assert "Kahuna did not list the campaigns:" in html
    for secret in KAHUNA_SECRETS.values():
        assert secret not in html
    client.force_login(vera)
    assert client.post(f"/destinations/{dest.pk}/kahuna-campaigns/refresh/").status_code == 403
    assert not KahunaCampaign.objects.exists()


def test_refresh_is_for_kahuna_destinations_of_this_workspace(client, bob, charlie, acme):
    client.force_login(bob)
    assert client.post(f"/destinations/{kochava(acme).pk}/kahuna-campaigns/refresh/").status_code == 404
    client.force_login(charlie)
    assert client.post(f"/destinations/{kahuna(acme).pk}/kahuna-campaigns/refresh/").status_code == 404


# ---- Kochava -------------------------------------------------------------------------------------


@pytest.fixture
def streamed(acme, partners):  # noqa: F811
    """A real pass against the sandbox: 3 sent (one device installed), 1 skipped, 1 rejected; links tried."""
    partner = partners("kochava", installed=["kdev-1"], reject_ids=["kdev-bad"])
    dest = kochava(acme, partner.base_url)
    profiles = [Profile.objects.create(workspace=acme) for _ in range(5)]
    devices = ["kdev-1", "kdev-2", None, "kdev-bad", "kdev-3"]
    Event.objects.bulk_create(
        [
            Event(
                workspace=acme,
                profile=profile,
                uuid=f"k{i}",
                event_type="Purchase",
                user_id=f"user-{i}",
                device_id=device,
                ip_address="104.219.46.66",
                event_time=timezone.now(),
            )
            for i, (profile, device) in enumerate(zip(profiles, devices, strict=True))
        ]
    )
    result = stream_events(dest)
    assert (result.sent, result.skipped, result.rejected) == (3, 1, 1)
    counts = link_due_users(dest)
    assert (counts["linked"], counts["held_back"]) == (1, 2)
    # A link Kochava refuses for good (not "device not found"): the fake refuses kdev-bad.
    KochavaUserLink.objects.create(
        workspace=acme,
        destination=dest,
        profile_id=profiles[3].pk,
        kochava_device_id="kdev-bad",
        identities={"User ID": "user-3"},
        next_attempt_at=timezone.now(),
    )
    assert link_due_users(dest)["failed"] == 1
    return dest


def test_kochava_page_shows_the_stream_and_send_users(client, vera, streamed):
    client.force_login(vera)
    html = page(client, streamed)
    stream = KochavaStream.objects.get(destination=streamed)
    assert 'id="events-sent">3<' in html and 'id="events-skipped">1<' in html and 'id="events-rejected">1<' in html
    assert f'id="stream-cursor">#{stream.last_event_id}<' in html
    assert "mapping found no Kochava device id" in html  # the skipped event's reason
    assert "invalid kochava_device_id" in html  # Kochava's words for the rejected event and the refused link
    assert 'id="links-pending">2<' in html and 'id="links-linked">1<' in html and 'id="links-failed">1<' in html
    assert "Latest refused" in html and "Next to try" in html and "device not found" in html
    assert "Paused until" not in html
    assert KOCHAVA_SECRET not in html and "koapp-1" not in html.split('id="event-stream"')[1]


def test_kochava_long_429_shows_paused_until(client, bob, acme):
    dest = kochava(acme)
    KochavaStream.objects.create(
        workspace=acme,
        destination=dest,
        last_event_id=41,
        events_sent=41,
        next_run_at=timezone.now() + dt.timedelta(minutes=10),
        last_error="Kochava answered 429: slow down",
    )
    client.force_login(bob)
    html = page(client, dest)
    assert 'id="stream-paused"' in html and "Kochava answered 429: slow down" in html
    assert "resumes from event #41" in html


def test_kochava_scheduled_next_run_is_not_a_pause(client, bob, acme):
    dest = kochava(acme)  # the scheduler's claim also sets next_run_at: without an error it is not a pause
    KochavaStream.objects.create(workspace=acme, destination=dest, next_run_at=timezone.now() + dt.timedelta(minutes=1))
    client.force_login(bob)
    html = page(client, dest)
    assert "Paused until" not in html and "None: every event answered so far was sent." in html


def test_kochava_empty_states_say_what_to_do(client, alice, vera, acme):
    dest = kochava(acme)
    client.force_login(vera)
    html = page(client, dest)
    assert 'id="stream-empty"' in html and "Nothing streamed yet." in html and "Purchase" in html
    assert 'id="links-empty"' in html and f"/syncs/new/?destination={dest.pk}" in html
    off = kochava(acme, name="Kochava, links only", send_events=False, send_users=False)
    html = page(client, off)
    assert 'id="stream-off"' in html and "owners and ops can turn it on" in html and 'id="users-off"' in html
    assert f"/destinations/{off.pk}/edit/" not in html
    client.force_login(alice)
    assert f'/destinations/{off.pk}/edit/">Edit</a> it and turn on' in page(client, off)


def test_other_kinds_have_no_partner_sections(client, vera, acme):
    dest = destination(acme, "list_api", {"base_url": "http://x.example"}, secrets={"api_key": "k" * 8})
    client.force_login(vera)
    html = page(client, dest)
    assert 'id="campaigns"' not in html and 'id="event-stream"' not in html and 'id="send-users"' not in html


def test_link_counts_are_capped(acme):
    dest = kochava(acme)
    now = timezone.now()
    KochavaUserLink.objects.bulk_create(
        [
            KochavaUserLink(
                workspace=acme,
                destination=dest,
                profile_id=i,
                kochava_device_id=f"d{i}",
                status=LinkStatus.LINKED,
                next_attempt_at=now,
            )
            for i in range(12)
        ]
    )
    linked = KochavaUserLink.objects.filter(destination=dest, status=LinkStatus.LINKED)
    assert str(capped_count(linked, cap=10)) == "10+"
    assert str(capped_count(linked, cap=12)) == "12"


def test_partner_sections_cost_the_same_queries_whatever_the_volume(client, vera, acme):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations.connectors.kochava.models import KochavaEventOutcome

    dest = kochava(acme)
    stream = KochavaStream.objects.create(workspace=acme, destination=dest, last_event_id=10)
    client.force_login(vera)

    def queries_with(n: int) -> int:
        now = timezone.now()
        start = KochavaUserLink.objects.count()
        KochavaUserLink.objects.bulk_create(
            [
                KochavaUserLink(
                    workspace=acme,
                    destination=dest,
                    profile_id=start + i,
                    kochava_device_id=f"d{start + i}",
                    status=(LinkStatus.PENDING, LinkStatus.LINKED, LinkStatus.FAILED)[i % 3],
                    next_attempt_at=now,
                    last_error="x",
                )
                for i in range(n)
            ]
        )
        KochavaEventOutcome.objects.bulk_create(
            [KochavaEventOutcome(stream=stream, event_id=start + i, status="skipped", reason="r") for i in range(n)]
        )
        with CaptureQueriesContext(connection) as captured:
            page(client, dest)
        return len(captured)

    assert queries_with(5) == queries_with(60)
