"""The dashboard's people tile: an exact count for a usual workspace, the planner's estimate (said so)
for a very big one, where an exact count would cost every dashboard view over a second."""

import re

from django.core.cache import cache
from django.db import connection

from audiences.identity import resolve
from audiences.models import Segment
from console.views import dashboard


def people_tile(client) -> tuple[str, str]:
    cache.clear()  # the count is cached for a minute
    html = client.get("/").content.decode()
    return re.search(r'id="dash-people">([^<]*)</span><span>([^<]*)<', html).groups()


def test_exact_count_below_the_threshold_and_estimate_above_it(client, bob, acme, monkeypatch):
    Segment.objects.create(workspace=acme, name="Listeners", type="manual", external_id="L1")  # not "empty"
    resolve(acme.pk, "user_id", [f"p{n}" for n in range(1234)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audiences_profile")
    client.force_login(bob)

    assert people_tile(client) == ("1,234", "people")

    monkeypatch.setattr(dashboard, "EXACT_COUNT_UP_TO", 1000)
    shown, label = people_tile(client)
    assert label == "people (estimated)"
    # The estimate comes from the statistics ANALYZE gathered: close to the truth, said to be one.
    assert shown.startswith("≈ ") and 1100 <= int(shown[2:].replace(",", "")) <= 1400
