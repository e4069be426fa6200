"""The Campaigns pages: the list (CleverTap campaigns with their counts, Kahuna's adaptive campaigns),
the create form and its refusals, a campaign's page (live count, enrollments), roles, the person timeline."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.models import MembershipChange
from campaigns.models import PARTNER_SYNC_NOT_SDK, Campaign, Enrollment, EnrollmentStatus, Status
from campaigns.status import set_status
from console.views import campaigns as campaign_views
from integrations.connectors.kahuna.models import ExportStatus, KahunaCampaign, KahunaExport
from tests.console.test_partner_sections import KAHUNA_SECRETS, kahuna
from tests.delivery.helpers import add_members, destination, make_profiles, make_segment

CLEVERTAP_PASSCODE = "ct-passcode-s3cret"


def test_campaigns_page_lists_enabled_adaptive_kahuna_campaigns_with_their_exports(client, vera, acme, globex):
    dest = kahuna(acme)
    welcome = KahunaCampaign.objects.create(
        workspace=acme, destination=dest, name="Welcome back", campaign_id="c-1", environment="p"
    )
    KahunaCampaign.objects.create(
        workspace=acme, destination=dest, name="Sandbox test", campaign_id="c-4", environment="s"
    )
    KahunaCampaign.objects.create(workspace=acme, destination=dest, name="Old promo", campaign_id="c-2", enabled=False)
    KahunaCampaign.objects.create(
        workspace=acme, destination=dest, name="Push blast", campaign_id="c-3", campaign_type="push"
    )
    carts = make_segment(acme, name="Cart abandoners", external_id="11")
    trials = make_segment(acme, name="Trial users", external_id="12")
    KahunaExport.objects.create(
        workspace=acme,
        segment=carts,
        campaign=welcome,
        environment="p",
        status=ExportStatus.FAILED,
        error="an earlier timeout",
    )
    KahunaExport.objects.create(
        workspace=acme,
        segment=carts,
        campaign=welcome,
        environment="p",
        status=ExportStatus.SUCCEEDED,
        users_total=30,
        users_sent=29,
    )
    KahunaExport.objects.create(workspace=acme, segment=trials, campaign=welcome, environment="p")
    client.force_login(vera)
    response = client.get("/campaigns/")
    assert response.status_code == 200
    html = response.content.decode()
    section = html.split('id="kahuna-adaptive-campaigns"')[1].split("</table>")[0]
    assert "Welcome back" in section and "Sandbox test" in section
    assert "Old promo" not in section and "Push blast" not in section  # only enabled Adaptive ones
    assert "Staging (Sandbox)" in section and "Production" in section
    welcome_row = section.split("Welcome back")[1]  # rows by name: "Sandbox test" comes first
    assert "Cart abandoners" in welcome_row and "Trial users" in welcome_row
    assert "29 of 30 sent" in welcome_row and "(2 exports)" in welcome_row  # the latest of two, counted
    assert "Succeeded" in welcome_row and "an earlier timeout" not in welcome_row
    assert "2 other campaigns" in html  # disabled or not Adaptive: on the destination page
    assert "No segment exported yet" in section.split("Sandbox test")[1].split("Welcome back")[0]
    for secret in KAHUNA_SECRETS.values():
        assert secret not in html


def test_campaigns_page_shows_no_other_workspace_and_costs_the_same_with_more_exports(client, vera, acme, globex):
    dest = kahuna(acme)
    other = kahuna(globex)
    KahunaCampaign.objects.create(workspace=globex, destination=other, name="Globex only", campaign_id="g-1")
    campaign = KahunaCampaign.objects.create(workspace=acme, destination=dest, name="Welcome", campaign_id="c-1")
    client.force_login(vera)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/campaigns/").status_code == 200
        return len(captured)

    segment = make_segment(acme, name="S0", external_id="100")
    KahunaExport.objects.create(workspace=acme, segment=segment, campaign=campaign, environment="p")
    few = queries()
    for index in range(1, 6):
        segment = make_segment(acme, name=f"S{index}", external_id=str(100 + index))
        KahunaExport.objects.create(workspace=acme, segment=segment, campaign=campaign, environment="p")
    assert queries() == few
    assert "Globex only" not in client.get("/campaigns/").content.decode()


# ---- CleverTap campaigns ---------------------------------------------------------------------------


def clevertap(acme, name="CleverTap"):
    return destination(acme, "clevertap", {}, secrets={"passcode": CLEVERTAP_PASSCODE}, name=name)


def campaign(acme, segment, dest, **fields) -> Campaign:
    defaults = {
        "name": "Cart drop-off push",
        "kind": "live",
        "channel": "push",
        "content": {"title": "Still thinking?", "body": "Your cart misses you"},
    }
    return Campaign.objects.create(workspace=acme, segment=segment, destination=dest, **{**defaults, **fields})


def enroll(camp: Campaign, profile_ids: list[int], **fields) -> list[Enrollment]:
    changes = MembershipChange.objects.filter(segment=camp.segment, profile_id__in=profile_ids, action="added")
    return Enrollment.objects.bulk_create(
        [
            Enrollment(
                workspace=camp.workspace,
                campaign=camp,
                profile_id=change.profile_id,
                change=change,
                change_at=change.occurred_at,
                to_kind="identity",
                to_value=f"u{index}",
                **fields,
            )
            for index, change in enumerate(changes.order_by("profile_id"))
        ]
    )


@pytest.fixture
def cart_campaign(acme):
    segment = make_segment(acme, name="Cart drop off")
    people = make_profiles(acme, range(1, 8))
    add_members(segment, people)
    camp = campaign(acme, segment, clevertap(acme))
    set_status(camp, Status.RUNNING)
    enroll(camp, people[:4], status=EnrollmentStatus.SENT, sent_at=timezone.now(), answer="accepted")
    enroll(camp, people[4:6], status=EnrollmentStatus.FAILED, answer="invalid token")
    enroll(camp, people[6:], status=EnrollmentStatus.UNKNOWN)
    return camp, people


def test_list_shows_each_campaign_with_its_counts_for_every_member(client, vera, acme, globex, cart_campaign):
    camp, _ = cart_campaign
    other = campaign(globex, make_segment(globex, name="Globex seg"), clevertap(globex), name="Globex only")
    client.force_login(vera)
    html = client.get("/campaigns/").content.decode()
    row = html.split(f'data-campaign="{camp.pk}"')[1].split("</tr>")[0]
    assert "Cart drop-off push" in row and "Live behaviour" in row and "Cart drop off" in row
    assert "Mobile push" in row and "Running" in row
    assert '<td class="enrolled">7</td>' in row and '<td class="sent">4</td>' in row
    assert '<td class="failed">2</td>' in row
    assert other.name not in html
    assert "New campaign" not in html  # viewers read
    assert CLEVERTAP_PASSCODE not in html


def test_list_filters_by_status_and_kind(client, vera, acme, cart_campaign):
    camp, _ = cart_campaign
    draft = campaign(
        acme,
        camp.segment,
        camp.destination,
        name="Weekly digest",
        kind="past",
        channel="email",
        content={"subject": "Hi", "body": "News"},
    )
    client.force_login(vera)
    assert draft.name in client.get("/campaigns/?status=draft").content.decode()
    assert camp.name not in client.get("/campaigns/?status=draft").content.decode()
    html = client.get("/campaigns/?kind=live").content.decode()
    assert camp.name in html and draft.name not in html


def test_campaign_page_shows_live_counts_and_enrollments_searchable_by_person(client, vera, acme, cart_campaign):
    camp, people = cart_campaign
    client.force_login(vera)
    html = client.get(f"/campaigns/{camp.pk}/").content.decode()
    assert 'id="count-enrolled">7<' in html and 'id="count-sent">4<' in html and 'id="count-failed">2<' in html
    assert "1 unknown — checking" in html
    assert "every 2s" in html  # a send whose fate is unknown keeps the count live
    assert "Stop campaign" not in html  # viewers read
    table = html.split('id="enrollments"')[1].split("</table>")[0]
    assert table.count("<tr>") == 7 + 1
    html = client.get(f"/campaigns/{camp.pk}/", {"q": "u5"}).content.decode()  # a person's user id
    table = html.split('id="enrollments"')[1].split("</table>")[0]
    assert f"Person #{people[4]}" in table and table.count("<tr>") == 2
    html = client.get(f"/campaigns/{camp.pk}/", {"q": str(people[0])}).content.decode()  # the person's number
    assert f"Person #{people[0]}" in html.split('id="enrollments"')[1].split("</table>")[0]
    html = client.get(f"/campaigns/{camp.pk}/", {"q": "nobody-here"}).content.decode()
    assert "Nobody matching “nobody-here” entered this campaign." in html


def test_enrollments_page_by_keyset(client, vera, acme, cart_campaign, monkeypatch):
    camp, people = cart_campaign
    monkeypatch.setattr(campaign_views, "ENROLLMENTS_PAGE", 3)
    client.force_login(vera)
    seen = []
    url = f"/campaigns/{camp.pk}/"
    params: dict = {}
    while True:
        response = client.get(url, params)
        html = response.content.decode()
        table = html.split('id="enrollments"')[1].split("</table>")[0]
        seen += re.findall(r"Person #(\d+)", table)
        next_link = re.search(r'href="\?([^"#]*e_after[^"#]*)(?:#[^"]*)?" rel="next"', html)
        if not next_link:
            break
        params = dict(QueryDict(next_link.group(1).replace("&amp;", "&")).items())
    assert sorted(map(int, seen)) == sorted(people) and len(seen) == len(set(seen))  # each once
    assert client.get(url, {"e_after": "not-a-cursor"}).status_code == 400


def test_progress_part_triggers_a_reload_when_the_count_changed(client, vera, acme, cart_campaign):
    camp, _ = cart_campaign
    client.force_login(vera)
    first = client.get(f"/campaigns/{camp.pk}/progress/")
    seen = re.search(r'data-seen="([^"]+)"', first.content.decode()).group(1)
    assert "HX-Trigger" not in client.get(f"/campaigns/{camp.pk}/progress/", {"seen": seen})
    Enrollment.objects.filter(campaign=camp, status=EnrollmentStatus.UNKNOWN).update(
        status=EnrollmentStatus.SENT, sent_at=timezone.now()
    )
    changed = client.get(f"/campaigns/{camp.pk}/progress/", {"seen": seen})
    assert changed["HX-Trigger"] == "campaign-changed"
    assert 'id="count-sent">5<' in changed.content.decode()
    assert "every 10s" in changed.content.decode()  # nothing in flight: it asks less often


def test_finished_campaign_stops_polling_and_says_done(client, vera, acme, cart_campaign):
    camp, _ = cart_campaign
    Enrollment.objects.filter(campaign=camp, status=EnrollmentStatus.UNKNOWN).update(status=EnrollmentStatus.SENT)
    set_status(camp, Status.FINISHED)
    client.force_login(vera)
    html = client.get(f"/campaigns/{camp.pk}/").content.decode()
    assert "Done: 5 sent, 2 failed of 7 enrolled." in html
    assert 'hx-trigger="every' not in html


def test_viewer_cannot_create_launch_or_stop(client, vera, acme, cart_campaign):
    camp, _ = cart_campaign
    client.force_login(vera)
    assert "Viewers read campaigns" in client.get("/campaigns/new/").content.decode()
    for action in ("stop", "launch", "estimate", "delete"):
        assert client.post(f"/campaigns/{camp.pk}/{action}/").status_code == 403
    assert client.post("/campaigns/new/", {"name": "x", "channel": "push"}).status_code == 403
    camp.refresh_from_db()
    assert camp.status == Status.RUNNING


def test_another_workspace_cannot_open_a_campaign(client, charlie, cart_campaign):
    camp, _ = cart_campaign
    client.force_login(charlie)
    assert client.get(f"/campaigns/{camp.pk}/").status_code == 404
    assert client.get(f"/campaigns/{camp.pk}/progress/").status_code == 404
    assert client.post(f"/campaigns/{camp.pk}/stop/").status_code == 404


@pytest.mark.parametrize("channel", ["in_app", "web_popup", "web_exit_intent", "app_inbox", "native_display"])
def test_form_refuses_partner_sync_on_sdk_channels_next_to_the_field(client, bob, acme, channel):
    segment = make_segment(acme)
    dest = clevertap(acme)
    client.force_login(bob)
    response = client.post(
        "/campaigns/new/",
        {
            "channel": channel,
            "kind": "live",
            "segment": segment.pk,
            "destination": dest.pk,
            "name": "Pop it",
            "content_title": "Hi",
            "content_body": "There",
            "when": "now",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    field = html.split('id="channel-errors"')[1].split("</div>")[0]
    assert "cannot be triggered by Partner Sync" in field and PARTNER_SYNC_NOT_SDK in field
    assert 'value="Pop it"' in html  # nothing typed is lost
    assert not Campaign.objects.exists()


def test_form_names_every_missing_field(client, bob, acme):
    clevertap(acme)
    client.force_login(bob)
    response = client.post("/campaigns/new/", {"kind": "past", "when": "at", "send_at": "tomorrow"})
    assert response.status_code == 400
    html = response.content.decode()
    for message in (
        "Choose the messaging channel.",
        "Give the campaign a name",
        "Choose the segment",
        "Give the date and time",
    ):
        assert message in html
    assert not Campaign.objects.exists()


def test_new_campaign_without_a_clevertap_destination_says_what_to_do(client, bob, acme):
    client.force_login(bob)
    html = client.get("/campaigns/new/").content.decode()
    assert "no CleverTap destination yet" in html and 'id="campaign-form"' not in html


def test_person_timeline_shows_the_enrollment_its_ledger_change_and_the_send_in_the_workspace_zone(
    client, vera, acme, cart_campaign
):
    camp, people = cart_campaign
    enrollment = Enrollment.objects.get(campaign=camp, profile_id=people[0])
    added = datetime(2026, 12, 4, 15, 2, tzinfo=UTC)  # 10:02 in New York, Acme's zone
    MembershipChange.objects.filter(pk=enrollment.change_id).update(occurred_at=added)
    Enrollment.objects.filter(pk=enrollment.pk).update(
        change_at=added, created_at=added, sent_at=added + timedelta(minutes=1)
    )
    client.force_login(vera)
    html = client.get(f"/people/{people[0]}/").content.decode()
    timeline = html.split('id="timeline"')[1]
    assert "Entered “Cart drop-off push” because they were added to “Cart drop off” at 10:02, sent 10:03" in timeline
    assert "Sent “Cart drop-off push” (Mobile push) through CleverTap" in timeline
    assert "4 Dec 2026, 10:03:00 EST" in timeline  # the entry's time, in America/New_York
    assert "Times in America/New_York" in timeline
    # Sent on another day than the entry: that time carries its date and zone, in the console's format.
    Enrollment.objects.filter(pk=enrollment.pk).update(sent_at=added + timedelta(days=1, minutes=1))
    timeline = client.get(f"/people/{people[0]}/").content.decode().split('id="timeline"')[1]
    assert "at 10:02, sent 5 Dec 2026, 10:03 EST" in timeline
    failed = Enrollment.objects.get(campaign=camp, profile_id=people[4])
    html = client.get(f"/people/{failed.profile_id}/").content.decode()
    assert "not sent: invalid token" in html
