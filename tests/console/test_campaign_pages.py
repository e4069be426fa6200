"""The Campaigns page: Kahuna's adaptive campaigns with the segments exported to them."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.connectors.kahuna.models import ExportStatus, KahunaCampaign, KahunaExport
from tests.console.test_partner_sections import KAHUNA_SECRETS, kahuna
from tests.delivery.helpers import make_segment


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
