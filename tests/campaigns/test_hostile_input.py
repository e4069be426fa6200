"""What a sloppy or hostile sender gives the campaigns API and pages: a clear 400 (or 404), never a
500, and nothing half-saved."""

from __future__ import annotations

import json

import pytest

from campaigns.models import Campaign
from integrations.models import ApiKey
from tests.campaigns.test_api import body
from tests.conftest import key_client
from tests.console.test_campaign_actions import form

BAD_TEXT = ["nul\u0000here", "x" * 5000]


@pytest.fixture
def api(world):
    return key_client(ApiKey.issue(world.workspace, scope="management", name="t", access="write")[1])


@pytest.mark.parametrize(("field", "value"), [("name", BAD_TEXT[0]), ("name", BAD_TEXT[1]), ("content", BAD_TEXT[0])])
def test_bad_text_in_a_campaign_is_a_400_naming_the_field(world, api, field, value):
    fields = {field: value} if field == "name" else {"content": {"title": value, "body": "b"}}
    response = api.post("/api/v1/campaigns/", body(world, **fields), format="json")
    assert response.status_code == 400, response.content
    assert field in json.dumps(response.json())
    assert Campaign.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "\\ud800", "kind": "live"}',  # a lone surrogate, escaped
        '{"name": NaN}',
        "[" * 100_000 + "]" * 100_000,  # nesting far past any parser's recursion limit
        '{"name": "a", "segment": 1e400}',
    ],
    ids=["surrogate", "nan", "deep", "huge-number"],
)
def test_malformed_json_is_a_400(world, api, raw):
    response = api.generic("POST", "/api/v1/campaigns/", raw, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert Campaign.objects.count() == 0


@pytest.mark.parametrize(
    "query", ["segment=abc", "destination=1e9", "status=%00", "kind=nope", "channel=" + "x" * 3000, "cursor=zzz"]
)
def test_bad_list_filters_never_500(world, api, query):
    response = api.get(f"/api/v1/campaigns/?{query}")
    # 404 is DRF's answer to a cursor it did not issue ("Invalid cursor"), as on every list.
    assert response.status_code in (200, 400, 404), (query, response.status_code, response.content[:300])


@pytest.mark.parametrize("path", ["/api/v1/campaigns/abc/", "/api/v1/campaigns/99999999999999999999/"])
def test_bad_ids_are_404(world, api, path):
    assert api.get(path).status_code == 404


@pytest.mark.parametrize("query", ["q=%00", "q=%ED%A0%80", "e_after=garbage", "e_after=-1", "q=" + "9" * 40])
def test_the_campaign_page_with_bad_search_or_cursor_never_500s(world, client, vera, query):
    campaign = world.campaign()
    client.force_login(vera)
    response = client.get(f"/campaigns/{campaign.pk}/?{query}")
    assert response.status_code in (200, 400), (query, response.status_code)


@pytest.mark.parametrize("query", ["status=%00", "kind=" + "k" * 500, "segment=abc", "page=-3"])
def test_the_campaigns_list_with_bad_filters_never_500s(world, client, vera, query):
    client.force_login(vera)
    assert client.get(f"/campaigns/?{query}").status_code in (200, 400)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "nul\u0000"},
        {"content_title": "nul\u0000"},
        {"segment": "abc"},
        {"destination": "99999999999999999999"},
        {"send_at": "2026-13-45T99:99"},
        {"when": "at", "send_at": ""},
        {"channel": "carrier_pigeon"},
    ],
)
def test_the_console_form_answers_bad_fields_with_the_form_not_a_500(world, client, bob, fields):
    client.force_login(bob)
    response = client.post("/campaigns/new/", form(world, **fields))
    assert response.status_code in (200, 400), response.status_code
    assert Campaign.objects.count() == 0
