"""Tables that page (issue 19.6): keyset pages that cover every row once, totals that are exact when
counting is cheap and labelled estimates when it is not, cursors that refuse tampering (400),
and the person search by the start of an identity value through the unique index."""

import base64
import json

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from audiences.identity import resolve
from audiences.ledger import Cause, apply_changes
from audiences.models import Identity, MembershipChange, Segment
from console.paging import count_total, encode_cursor

PUSH = Cause("push", "inbound_batch", 7)


@pytest.fixture
def busy_segment(acme):
    """250 people entered; 30 of them left again: 280 Partner Sync events."""
    segment = Segment.objects.create(workspace=acme, name="Weekend", type="partner_amplitude", external_id="c-250")
    ids = resolve(acme.pk, "user_id", [f"fan-{n:03d}" for n in range(250)]).profile_ids
    apply_changes(segment, add=list(ids.values()), cause=PUSH)
    apply_changes(segment, remove=[ids[f"fan-{n:03d}"] for n in range(30)], cause=PUSH)
    return segment


def test_find_people_pages_past_200_with_every_event_once_and_the_total(client, bob, busy_segment):
    client.force_login(bob)
    seen, url, pages = [], "/people/", []
    while url:
        response = client.get(url if url.startswith("/") else "/people/" + url)
        assert response.status_code == 200
        page = response.context["page"]
        pages.append((page.first_row, page.last_row, str(page.total)))
        seen += [change.pk for change, _, _ in response.context["rows"]]
        url = page.next_url
    assert pages == [(1, 100, "280"), (101, 200, "280"), (201, 280, "280")]
    assert seen == list(
        MembershipChange.objects.filter(segment=busy_segment).order_by("-id").values_list("pk", flat=True)
    )
    html = response.content.decode()
    assert "Rows 201–280 of <strong" in html and "First page" in html and "Next rows" not in html


def test_find_people_paging_keeps_the_filters(client, bob, busy_segment):
    client.force_login(bob)
    first = client.get(f"/people/?segment={busy_segment.pk}&action=added")
    assert str(first.context["page"].total) == "250"
    second = client.get("/people/" + first.context["page"].next_url)
    assert {change.action for change, _, _ in second.context["rows"]} == {"added"}
    assert f"segment={busy_segment.pk}" in second.context["page"].next_url


def test_total_is_a_labelled_estimate_past_the_exact_limit(acme, busy_segment):
    changes = MembershipChange.objects.filter(segment=busy_segment)
    total = count_total(changes, exact_up_to=100)
    assert not total.exact and total.value > 100 and str(total).startswith("about ")
    assert count_total(changes, exact_up_to=1000).exact


def test_a_count_slower_than_its_timeout_falls_back_to_the_estimate_and_the_connection_stays_usable(acme, busy_segment):
    slow = MembershipChange.objects.filter(segment=busy_segment).extra(where=["pg_sleep(0.01) IS NOT NULL"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        before = cursor.fetchone()[0]
    total = count_total(slow, timeout_ms=50)  # 280 rows x 10 ms: cancelled
    assert not total.exact and str(total).startswith("about ")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        assert cursor.fetchone()[0] == before
    assert MembershipChange.objects.filter(segment=busy_segment).count() == 280


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"\x00\xff").decode(),
        base64.urlsafe_b64encode(json.dumps({"id": 1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, 2]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([True]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([10**30]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["\x00"]).encode()).decode(),
        base64.urlsafe_b64encode(b'["\\ud800"]').decode(),
        base64.urlsafe_b64encode(json.dumps(["twelve"]).encode()).decode(),
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
        "é",
    ],
)
def test_a_tampered_cursor_is_a_400(client, bob, busy_segment, cursor):
    client.force_login(bob)
    assert client.get("/people/", {"after": cursor}).status_code == 400


def test_a_cursor_keyed_on_a_date_is_read_back_as_a_date(acme, busy_segment, rf):
    from console.paging import keyset_page

    changes = MembershipChange.objects.filter(segment=busy_segment).annotate(when=F("occurred_at"))
    first = keyset_page(changes, ("-occurred_at", "-id"), rf.get("/").GET, size=100)
    rest = keyset_page(changes, ("-occurred_at", "-id"), rf.get("/" + first.next_url).GET, size=1000)
    assert len(first.rows) + len(rest.rows) == 280
    assert {c.pk for c in first.rows}.isdisjoint({c.pk for c in rest.rows})
    bad = encode_cursor(["yesterday", 5])
    from config.params import BadParameter

    with pytest.raises(BadParameter):
        keyset_page(changes, ("-occurred_at", "-id"), rf.get("/", {"after": bad}).GET)


# -- the person search by prefix --------------------------------------------------------------------


@pytest.fixture
def people(acme):
    resolve(acme.pk, "email", ["anna@example.com", "annabel@example.com", "bert@example.com"])
    resolve(acme.pk, "user_id", ["anna-1", "ANNA-2"])
    return acme


def test_person_search_finds_identities_by_their_beginning(client, bob, people):
    client.force_login(bob)
    response = client.get("/people/search/?q=anna")
    assert response.status_code == 200
    found = sorted(i.value for i in response.context["prefixed"])
    assert found == ["anna-1", "anna@example.com", "annabel@example.com"]
    assert "starts with “anna”" in response.content.decode()
    capitals = client.get("/people/search/?q=ANNA")
    assert sorted(i.value for i in capitals.context["prefixed"]) == [
        "ANNA-2",
        "anna-1",
        "anna@example.com",
        "annabel@example.com",
    ]


def test_an_exact_match_still_goes_straight_to_the_person(client, bob, people):
    client.force_login(bob)
    response = client.get("/people/search/?q=annabel@example.com")
    assert response.status_code == 302
    assert response["Location"] == f"/people/{Identity.objects.get(value='annabel@example.com').profile_id}/"


def test_a_long_prefix_list_is_cut_and_says_so(client, bob, acme):
    resolve(acme.pk, "user_id", [f"zed-{n:03d}" for n in range(80)])
    client.force_login(bob)
    response = client.get("/people/search/?q=zed-")
    assert len(response.context["prefixed"]) == 50 and response.context["more"]
    assert "type more of the value" in response.content.decode()


def test_prefix_search_is_a_range_of_the_unique_identity_index(client, bob, people):
    client.force_login(bob)
    with CaptureQueriesContext(connection) as queries:
        client.get("/people/search/?q=ann")
    prefix_sql = [q["sql"] for q in queries if 'FROM "audiences_identity"' in q["sql"] and "LIKE" in q["sql"]]
    assert prefix_sql
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + prefix_sql[0])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # The prefix bounds the index scan (value >= 'ann' AND value < 'ano'), not a filter over every entry.
    assert "identity_unique" in plan and "(value)::text >= 'ann'" in plan, plan
