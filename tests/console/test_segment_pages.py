import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes
from audiences.models import MembershipChange, Segment
from audiences.stats import activity_24h, daily_history

PUSH = Cause("push", "inbound_batch", 11)


@pytest.fixture
def power_users(acme):
    segment = Segment.objects.create(workspace=acme, name="Power users", type="partner_amplitude", external_id="c-77")
    ids = resolve(acme.pk, "user_id", [f"user-{n}" for n in range(120)]).profile_ids
    apply_changes(segment, add=list(ids.values()), cause=PUSH)
    apply_changes(segment, remove=[ids["user-0"], ids["user-1"]], cause=PUSH)
    segment.refresh_from_db()
    return segment


def test_segment_list_shows_type_size_and_24h_activity(client, bob, power_users):
    client.force_login(bob)
    html = client.get("/segments/").content.decode()
    assert "Power users" in html and "Pushed by Amplitude" in html
    assert 'data-size="118"' in html and "+120" in html and "−2" in html


def test_two_segments_of_one_name_are_told_apart_by_their_source(client, bob, acme, power_users):
    imported = Segment.objects.create(workspace=acme, name="Power users", type="amplitude_import", external_id="c-9")
    client.force_login(bob)
    listed = client.get("/segments/").content.decode()
    assert "Pushed by Amplitude" in listed and "Imported from Amplitude" in listed
    wizard = client.get("/syncs/new/").content.decode()
    assert f'<option value="{power_users.pk}">Power users · pushed by Amplitude (118 members)</option>' in wizard
    assert f'<option value="{imported.pk}">Power users · imported from Amplitude (0 members)</option>' in wizard
    activity = client.get("/people/").content.decode()
    assert "Power users · pushed by Amplitude" in activity and "Power users · imported from Amplitude" in activity


def test_segment_page_numbers_agree_with_ledger_and_chart(client, bob, power_users):
    client.force_login(bob)
    response = client.get(f"/segments/{power_users.pk}/")
    html = response.content.decode()
    assert '<span class="num" id="segment-size">118</span>' in html
    chart = response.context["chart"]
    assert chart["size"][-1] == 118 and chart["added"][-1] == 120 and chart["removed"][-1] == 2
    assert power_users.changes.count() == 122


def test_history_walks_back_from_the_current_size(acme, power_users):
    yesterday = timezone.now() - timedelta(days=1)
    MembershipChange.objects.filter(segment=power_users, action="added").update(occurred_at=yesterday)
    history = daily_history(power_users, days=3)
    assert [point.size for point in history] == [0, 120, 118]
    assert activity_24h([power_users.pk])[power_users.pk].added_24h == 0


def test_member_search_and_keyset_pagination(client, bob, power_users):
    client.force_login(bob)
    first = client.get(f"/segments/{power_users.pk}/")
    assert len(first.context["members"]) == 50 and first.context["next_after"]
    second = client.get(f"/segments/{power_users.pk}/?after={first.context['next_after']}")
    assert {m.pk for m, _ in first.context["members"]}.isdisjoint({m.pk for m, _ in second.context["members"]})
    found = client.get(f"/segments/{power_users.pk}/?member=user-42")
    assert [ids[0].value for _, ids in found.context["members"]] == ["user-42"]
    gone = client.get(f"/segments/{power_users.pk}/?member=user-0")
    assert "No member has the identity" in gone.content.decode()


def test_ledger_filter_by_action(client, bob, power_users):
    client.force_login(bob)
    response = client.get(f"/segments/{power_users.pk}/?action=removed")
    assert {c.action for c in response.context["ledger"]} == {"removed"}
    assert len(response.context["ledger"]) == 2


def test_members_csv_streams_every_member(client, bob, power_users):
    client.force_login(bob)
    response = client.get(f"/segments/{power_users.pk}/members.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 118
    assert {row["user_id"] for row in rows} == {f"user-{n}" for n in range(2, 120)}


def test_outsider_cannot_see_the_segment(client, charlie, power_users):
    client.force_login(charlie)
    assert client.get(f"/segments/{power_users.pk}/").status_code == 404
    assert client.get(f"/segments/{power_users.pk}/members.csv").status_code == 404
    assert "Power users" not in client.get("/segments/").content.decode()


def test_segment_activity_filters_who_joined_and_left(client, bob, power_users):
    client.force_login(bob)
    response = client.get(f"/people/?segment={power_users.pk}&action=removed")
    assert len(response.context["rows"]) == 2
    html = response.content.decode()
    assert "<h1>Segment activity</h1>" in html and html.count('<span class="tag removed">Left</span>') == 2


def test_person_search_by_identity_goes_to_the_trace(client, bob, power_users, acme):
    client.force_login(bob)
    response = client.get("/people/search/?q=user-5")
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "In “Power users” since" in page and "added by push (inbound_batch #11)" in page
    assert "Added to segment “Power users”" in page


def test_person_search_without_match_says_so(client, bob, db):
    client.force_login(bob)
    assert "Nobody has an identity" in client.get("/people/search/?q=ghost").content.decode()


def test_person_search_finds_a_value_typed_with_capitals_through_the_unique_index(client, bob, power_users, acme):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/people/search/?q=USER-5")
    assert response.status_code == 302 and response["Location"].startswith("/people/")
    search = next(q["sql"] for q in queries if 'FROM "audiences_identity"' in q["sql"] and "IN" in q["sql"])
    assert "UPPER" not in search and "LIKE" not in search  # no case-folded scan of every identity
