"""The per-person trace end to end: an Amplitude push, then a sync to a list partner."""

import pytest

from integrations.redis_client import redis_client
from integrations.sandbox.partners import running_partner
from tests.conftest import key_client
from tests.delivery.helpers import destination, job_for, sync


@pytest.fixture
def list_partner(settings):
    settings.DELIVERY_BACKOFF_BASE_MS = 5
    for key in redis_client().scan_iter("delivery:slots:*"):
        redis_client().delete(key)
    with running_partner("list_api", api_key="partner-key", reject_ids=["u-bad"], reject_mode="row") as partner:
        yield partner


def push(raw_key, django_capture_on_commit_callbacks):
    client = key_client(raw_key, "Bearer")
    with django_capture_on_commit_callbacks(execute=True):
        list_id = client.post("/api/amplitude/lists", {"name": "[Amplitude] VIPs: c-9"}, format="json").json()["listId"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["u-good", "u-bad"]}, format="json")
    assert response.status_code == 200, response.content
    return list_id


def test_trace_explains_membership_and_each_destination(
    client, bob, acme, acme_inbound_key, list_partner, django_capture_on_commit_callbacks
):
    from audiences.models import Identity, Segment

    push(acme_inbound_key, django_capture_on_commit_callbacks)
    segment = Segment.objects.get(workspace=acme, external_id="c-9")
    dest = destination(
        acme, "list_api", {"base_url": list_partner.base_url}, secrets={"api_key": "partner-key"}, name="Partner lists"
    )
    job = job_for(segment, dest)
    good = Identity.objects.get(workspace=acme, value="u-good").profile_id
    bad = Identity.objects.get(workspace=acme, value="u-bad").profile_id

    client.force_login(bob)
    before = client.get(f"/people/{good}/").content.decode()
    assert "In “VIPs” since" in before and "added by push (inbound_batch #" in before
    assert "Not yet in “Partner lists” (sync of “VIPs”)" in before
    assert "Inbound push #" in before and "Amplitude list add" in before

    sync(job)
    after_good = client.get(f"/people/{good}/").content.decode()
    assert "In “Partner lists” (sync of “VIPs”): delivered (add)" in after_good
    after_bad = client.get(f"/people/{bad}/").content.decode()
    assert "Not in “Partner lists” (sync of “VIPs”): the partner rejected them" in after_bad
    assert "Rejected by the partner: add “VIPs” → Partner lists" in after_bad
    assert "Partner lists" in client.get("/segments/").content.decode()
