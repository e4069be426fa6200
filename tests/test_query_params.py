"""Integer query and form parameters: anything but a plain number is a 400 naming it, never a 500."""

import pytest

from audiences.models import Segment
from integrations.delivery.models import Destination, SyncJob
from tests.conftest import key_client

BAD = ["abc", "²", "1e3", "-1", "9" * 40, "1 OR 1=1"]


@pytest.fixture
def segment(acme):
    return Segment.objects.create(workspace=acme, name="Fans", type="cohort", external_id="c1")


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/kahuna-campaigns/?destination={}", "destination"),
        ("/api/v1/sync-runs/?job={}", "job"),
        ("/api/v1/import-runs/?job={}", "job"),
        ("/api/v1/import-runs/?kind=event&job={}", "job"),
    ],
)
def test_api_list_filters_answer_400_naming_the_parameter(acme, acme_management_key, path, name, value):
    response = key_client(acme_management_key).get(path.format(value))
    assert response.status_code == 400, response.content
    assert name in response.json()["error"]["fields"]


def test_a_good_filter_still_filters(acme, acme_management_key):
    response = key_client(acme_management_key).get("/api/v1/kahuna-campaigns/?destination=12345")
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.parametrize("value", BAD)
def test_console_kahuna_export_with_a_bad_campaign_is_400(client, bob, segment, value):
    client.force_login(bob)
    response = client.post(f"/segments/{segment.pk}/export-to-kahuna/", {"campaign": value})
    assert response.status_code == 400


@pytest.mark.parametrize("value", ["abc", "²"])
@pytest.mark.parametrize(
    "query",
    ["/segments/{seg}/?before={v}", "/segments/{seg}/?after={v}", "/people/?segment={v}", "/syncs/new/?segment={v}"],
)
def test_console_paging_and_filters_are_400(client, bob, segment, query, value):
    client.force_login(bob)
    assert client.get(query.format(seg=segment.pk, v=value)).status_code == 400


def test_a_superscript_digit_is_not_an_id_in_searches(client, bob, segment):
    client.force_login(bob)
    assert client.get("/people/search/?q=²").status_code == 200


def test_sync_failures_paging_is_400(client, bob, acme, segment):
    destination = Destination.objects.create(workspace=acme, kind="list_api", name="L", config={})
    job = SyncJob.objects.create(workspace=acme, segment=segment, destination=destination, cadence="one_time")
    client.force_login(bob)
    assert client.get(f"/syncs/{job.pk}/?before=abc").status_code == 400
    assert client.get(f"/syncs/{job.pk}/?q=²").status_code == 200


JUNK = "?job=²&destination=abc&segment=abc&before=²&after=x&page=²&page_size=abc&cursor=abc&status=%00&kind=x&q=²"


def test_no_api_list_answers_500_to_junk_parameters(acme, acme_management_key):
    """Every list of the OpenAPI schema, with every filter name this API uses set to junk."""
    client = key_client(acme_management_key)
    schema = client.get("/api/schema/?format=json").json()
    lists = [p for p, ops in schema["paths"].items() if "get" in ops and "{" not in p]
    assert len(lists) > 10
    answers = {path: client.get(path + JUNK).status_code for path in lists}
    assert {path: code for path, code in answers.items() if code >= 500} == {}


@pytest.mark.parametrize(
    "page", ["/", "/segments/", "/syncs/", "/syncs/new/", "/people/", "/people/search/", "/sources/"]
)
def test_no_console_list_answers_500_to_junk_parameters(client, bob, segment, page):
    client.force_login(bob)
    assert client.get(page + JUNK).status_code < 500
