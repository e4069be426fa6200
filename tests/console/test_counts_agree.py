"""A segment's size and 24 h movement are the same number on every screen and in the API."""

import re

from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes
from audiences.models import Segment
from tests.conftest import key_client

PUSH = Cause("push", "inbound_batch", 1)


def test_size_agrees_on_list_page_chart_api_and_dashboard(client, bob, acme, acme_management_key):
    segment = Segment.objects.create(workspace=acme, name="Listeners", type="partner_amplitude", external_id="L1")
    ids = list(resolve(acme.pk, "user_id", [f"p{n}" for n in range(37)]).profile_ids.values())
    apply_changes(segment, add=ids, cause=PUSH)
    apply_changes(segment, remove=ids[:5], cause=PUSH)
    apply_changes(segment, add=ids[:2], cause=PUSH)
    expected = len(set(ids)) - 5 + 2  # 34

    client.force_login(bob)
    listed = re.search(r'data-size="(\d+)"', client.get("/segments/").content.decode()).group(1)
    page = client.get(f"/segments/{segment.pk}/")
    shown = re.search(r'id="segment-size">([\d,]+)<', page.content.decode()).group(1).replace(",", "")
    chart = page.context["chart"]["size"][-1]
    dashboard = re.search(r'data-size="(\d+)"', client.get("/").content.decode()).group(1)
    api = key_client(acme_management_key).get("/api/v1/segments/").json()["results"][0]
    assert {int(listed), int(shown), chart, int(dashboard), api["size"]} == {expected}

    activity = page.context["activity"]
    assert (api["added_24h"], api["removed_24h"]) == (activity.added_24h, activity.removed_24h) == (39, 5)
