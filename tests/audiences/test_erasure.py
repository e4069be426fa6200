"""Erasing a person: nothing in any table of any app names them afterwards, others keep their data,
partners with a deletion API are asked, one audit row says that (and who asked), never whom."""

import io
import json
import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audiences.erasure import Redactor, erase, reference_columns, scrub_batch_body
from audiences.models import Erasure, Event, Identity, MembershipChange, Profile, ProfileMerge, Segment, SegmentMember
from demo.erasure import DEMO_PERSON, populate_demo
from integrations.connectors.kahuna.actions import request_export
from integrations.connectors.kahuna.export import refresh_campaigns, run_export
from integrations.connectors.kahuna.models import KahunaCampaign
from integrations.connectors.kochava.models import KochavaUserLink
from integrations.connectors.kochava.stream import link_due_users, stream_events
from integrations.inbound.models import BatchStatus, InboundBatch
from tests.conftest import key_client
from tests.delivery.conftest import fast_delivery, partners  # noqa: F401 - the sandboxes, per test
from tests.delivery.helpers import add_members, destination, job_for, make_profiles, make_segment, remove_members, sync
from tests.inbound.conftest import drain, fixture, push
from tests.partners.test_end_to_end import kochava_destination

BOB = "ersd-u-7f3a9c"  # the person erased: a user id,
BOB_DEVICE = "ersd-d-1b2c3d"  # the device they use,
BOB_OLD_DEVICE = "ersd-d-0a0a0a"  # and the one they used anonymously before signing in (then merged)
BOB_IDS = (BOB, BOB_DEVICE, BOB_OLD_DEVICE)


def rows_naming(values) -> list[str]:
    """Every column of every table, of every app (read from the database's own catalogue), holding
    one of the values: text, varchar, json and jsonb as text, bytea as bytes."""
    hits = []
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
               JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema
               WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                 AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea')
               ORDER BY 1, 2"""
        )
        columns = cursor.fetchall()
        assert len(columns) > 50, columns  # the whole schema, not a handful of tables
        for table, column, data_type in columns:
            for value in values:
                if data_type == "bytea":
                    where, param = f'position(%s::bytea IN "{column}") > 0', value.encode()
                else:
                    # As a whole token: a short id such as "d16" also turns up by chance inside a
                    # password hash, a signed session or an encrypted secret, where no id is stored.
                    cast = "::text" if data_type in ("json", "jsonb") else ""
                    where, param = f'"{column}"{cast} ~ %s', rf"(^|[^A-Za-z0-9]){re.escape(value)}($|[^A-Za-z0-9])"
                cursor.execute(f'SELECT count(*) FROM "{table}" WHERE {where}', [param])
                if count := cursor.fetchone()[0]:
                    hits.append(f"{table}.{column} holds {value!r} ({count})")
    return hits


def owner_api(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(acme, alice, acme_inbound_key, partners):  # noqa: F811
    """Bob (BOB_IDS) reaches every corner: list pushes, identify batches with a merge and a conflict,
    track events (one by Alice on Bob's device), a refused push, syncs to CleverTap (rejected once,
    then delivered), Kahuna and Kochava (events streamed, an IdentityLink queued), an admin log entry,
    and a push naming him that is not applied yet. Carol, Alice, Dave and Erin share his pushes."""
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key).json()[
        "listId"
    ]
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [BOB, "carol-ok"]}, acme_inbound_key)
    track = {"type": "track", "event": "Purchase", "context": {"ip": "198.51.100.7"}}
    push(
        "/v1/batch",
        {"batch": [{**track, "anonymousId": BOB_OLD_DEVICE, "messageId": "m-old"}]},
        acme_inbound_key,
    )
    push("/v1/identify", {"userId": "erin-ok", "anonymousId": "erin-dev"}, acme_inbound_key)
    drain()
    push(
        "/v1/batch",
        {
            "batch": [
                {"type": "identify", "userId": BOB, "anonymousId": BOB_OLD_DEVICE, "traits": {"plan": "pro"}},
                {"type": "identify", "userId": BOB, "anonymousId": BOB_DEVICE},
                {"type": "identify", "userId": BOB, "anonymousId": "erin-dev"},  # Erin's device: a conflict
                {**track, "userId": BOB, "anonymousId": BOB_DEVICE, "messageId": "m-bob", "properties": {"sku": "b1"}},
                {**track, "event": "Skipped", "userId": BOB, "messageId": "m-bob-2"},
                {**track, "userId": "alice-ok", "anonymousId": BOB_DEVICE, "messageId": "m-alice"},  # shared device
                {"type": "identify", "userId": "alice-ok", "traits": {"plan": "team"}},
            ]
        },
        acme_inbound_key,
    )
    assert push("/api/amplitude/lists/999999/add", {"userIds": [BOB]}, acme_inbound_key).status_code == 404
    drain()
    segment = Segment.objects.get(workspace=acme, external_id="26umsb5")
    assert ProfileMerge.objects.filter(workspace=acme).count() == 1
    assert InboundBatch.objects.filter(workspace=acme).exclude(conflicts=[]).exists()

    clevertap = partners("clevertap", account_id="ACC-E", passcode="pass-e", reject_ids=[BOB])
    ct = destination(
        acme,
        "clevertap",
        {"base_url": clevertap.base_url},
        secrets={"passcode": "pass-e"},
        fields={"account_id": "ACC-E"},
    )
    ct_job = job_for(segment, ct)
    assert sync(ct_job).rejected == 1  # CleverTap's answer, in the call log, echoes Bob's record
    clevertap.fake.reject_ids = set()
    assert sync(ct_job, mode="full").delivered == 2
    kahuna = partners("kahuna", secret_key="ks", api_key="ka")
    kh = destination(
        acme, "kahuna", {"base_url": kahuna.base_url}, secrets={"secret_key": "ks", "api_key": "ka"}, name="Kahuna"
    )
    assert sync(job_for(segment, kh)).delivered == 2
    kochava = partners("kochava")
    ko = kochava_destination(acme, kochava.base_url)
    stream_events(ko)
    link_due_users(ko)
    assert KochavaUserLink.objects.filter(destination=ko).exists()
    destination(acme, "list_api", {"base_url": "http://127.0.0.1:9/unused"}, secrets={"api_key": "k"}, name="Unused")

    identity = Identity.objects.get(workspace=acme, value=BOB)
    LogEntry.objects.create(
        user=alice,
        content_type=ContentType.objects.get_for_model(Identity),
        object_id=str(identity.pk),
        object_repr=str(identity)[:200],
        action_flag=CHANGE,
        change_message="[]",
    )
    # Amplitude pushes again; no worker has applied it yet when the erasure comes.
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [BOB, "dave-ok"]}, acme_inbound_key)
    return {"segment": segment, "clevertap": clevertap, "list_id": list_id}


def test_erasure_leaves_no_row_naming_the_person_in_any_table(world, acme, alice):
    before = rows_naming(BOB_IDS)
    for place in (
        "audiences_identity.value",
        "audiences_event.user_id",
        "audiences_event.device_id",
        "audiences_profilemerge.identities",
        "inbound_inboundbatch.body",
        "inbound_inboundbatch.conflicts",
        "inbound_inboundrequest.body_preview",
        "delivery_deliveryrow.user_id",
        "delivery_partnercall.response_excerpt",
        "campaigns_kochavauserlink.kochava_device_id",
        "django_admin_log.object_repr",
    ):
        assert any(hit.startswith(place) for hit in before), (place, before)  # the search does find them

    response = owner_api(alice).post(
        "/api/v1/erasures/", {"identity": BOB_DEVICE}, content_type="application/json"
    )  # any of the person's ids names the person

    assert response.status_code == 201, response.content
    assert rows_naming(BOB_IDS) == []
    body = response.json()
    outcomes = {d["destination"]: (d["outcome"], d["message"]) for d in body["destinations"]}
    assert outcomes["clevertap"][0] == "deleted", outcomes
    assert outcomes["Kahuna"] == ("not_supported", "Not supported by Kahuna: remove this person there by hand.")
    assert outcomes["kochava"][0] == "not_supported" and "Data Subject Request" in outcomes["kochava"][1]
    assert outcomes["Unused"][0] == "not_sent"
    assert body["counts"]["profiles"] == 1 and body["counts"]["events"] == 3


def test_others_keep_their_data_and_the_unapplied_push_applies_without_the_person(world, acme, alice):
    segment = world["segment"]
    erase(acme, value=BOB, user=alice, label="alice")

    assert set(Identity.objects.filter(workspace=acme, kind="user_id").values_list("value", flat=True)) == {
        "carol-ok",
        "alice-ok",
        "erin-ok",
    }
    segment.refresh_from_db()
    assert segment.size == SegmentMember.objects.filter(segment=segment).count() == 1  # Carol
    shared = Event.objects.get(workspace=acme, uuid="m-alice")  # Alice's event on Bob's device stays,
    assert (shared.user_id, shared.device_id) == ("alice-ok", None)  # without his device id
    assert Profile.objects.get(identities__value="alice-ok").properties == {"plan": "team"}

    pending = InboundBatch.objects.get(workspace=acme, status=BatchStatus.ACCEPTED)
    assert pending.body_text() == '{"userIds":["dave-ok"]}'
    drain()
    assert not Identity.objects.filter(value=BOB).exists()  # the old push did not bring Bob back
    members = set(
        Identity.objects.filter(profile__memberships__segment=segment, kind="user_id").values_list("value", flat=True)
    )
    assert members == {"carol-ok", "dave-ok"}
    segment.refresh_from_db()
    assert segment.size == 2


def test_the_partner_with_a_deletion_api_is_asked_at_its_sandbox(world, acme, alice):
    clevertap = world["clevertap"].fake
    assert BOB in clevertap.profiles and "carol-ok" in clevertap.profiles

    result = erase(acme, value=BOB, user=alice, label="alice")

    calls = clevertap.find("/1/delete/profiles.json")
    assert [call["body"] for call in calls] == [{"identity": [BOB]}]
    assert calls[0]["headers"]["x-clevertap-account-id"] == "ACC-E"
    assert BOB not in clevertap.profiles and "carol-ok" in clevertap.profiles
    assert all(event["key"] != BOB for event in clevertap.events)
    assert [d["outcome"] for d in result.destinations if d["partner"] == "CleverTap"] == ["deleted"]


def test_one_audit_row_says_who_asked_and_when_but_not_whom(world, acme, alice, acme_management_key):
    response = key_client(acme_management_key).post("/api/v1/erasures/", {"identity": BOB}, format="json")
    assert response.status_code == 201

    erasure = Erasure.objects.get(workspace=acme)
    assert erasure.via == "api" and erasure.requested_by is None
    assert erasure.requested_by_label.startswith("API key ccm_")
    assert erasure.finished_at is not None and erasure.created_at <= erasure.finished_at
    assert not Redactor(values=BOB_IDS).mentions([erasure.counts, erasure.destinations, erasure.requested_by_label])
    listed = key_client(acme_management_key).get("/api/v1/erasures/").json()["results"]
    assert [row["id"] for row in listed] == [erasure.pk]


def test_a_later_push_of_the_same_id_creates_a_new_clean_person(world, acme, alice, acme_inbound_key):
    old = Identity.objects.get(workspace=acme, value=BOB).profile_id
    erase(acme, value=BOB, user=alice, label="alice")
    drain()  # the pending push, without Bob

    push(f"/api/amplitude/lists/{world['list_id']}/add", {"userIds": [BOB]}, acme_inbound_key)
    drain()

    new = Profile.objects.get(identities__value=BOB)
    assert new.pk != old
    assert (new.properties, new.event_counts) == ({}, {})
    assert list(new.identities.values_list("kind", "value")) == [("user_id", BOB)]
    assert list(MembershipChange.objects.filter(profile=new).values_list("segment_id", "action")) == [
        (world["segment"].pk, "added")
    ]
    assert not Event.objects.filter(profile=new).exists() and not ProfileMerge.objects.filter(kept_profile=new).exists()


def test_a_person_only_in_an_unapplied_push_is_erased_from_it(acme, alice, acme_inbound_key):
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key).json()[
        "listId"
    ]
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["newcomer-42", "other-7"]}, acme_inbound_key)
    assert not Identity.objects.filter(value="newcomer-42").exists()  # nobody holds it yet

    result = erase(acme, value="newcomer-42", user=alice, label="alice")
    drain()

    assert result.counts["inbound batches rewritten"] == 1 and result.counts["profiles"] == 0
    assert set(Identity.objects.filter(workspace=acme).values_list("value", flat=True)) == {"other-7"}
    assert rows_naming(["newcomer-42"]) == []


def test_a_value_several_people_hold_asks_for_the_kind(acme, alice):
    make_profiles(acme, range(1, 3))  # u1/d1, u2/d2
    Identity.objects.filter(value="d2").update(value="u1")  # u1 is one person's user id, another's device
    api = owner_api(alice)

    ambiguous = api.post("/api/v1/erasures/", {"identity": "u1"}, content_type="application/json")
    assert ambiguous.status_code == 400 and "kind" in ambiguous.json()["error"]["fields"]
    assert Profile.objects.filter(workspace=acme).count() == 2

    chosen = api.post("/api/v1/erasures/", {"identity": "u1", "kind": "device_id"}, content_type="application/json")
    assert chosen.status_code == 201
    assert list(Identity.objects.filter(workspace=acme).values_list("value", flat=True).order_by("value")) == [
        "d1",
        "u1",
    ]


@pytest.mark.parametrize(
    "body",
    [{}, {"identity": ""}, {"identity": "x" * 600}, {"identity": "a\u0000b"}, {"identity": ["a"]}],
    ids=["missing", "blank", "too-long", "nul", "not-text"],
)
def test_bad_requests_are_400_naming_the_field(acme, alice, body):
    response = owner_api(alice).post("/api/v1/erasures/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "identity" in response.json()["error"]["fields"]
    assert not Erasure.objects.exists()


def test_lone_surrogate_and_nan_are_400(acme, alice):
    api = owner_api(alice)
    response = api.post("/api/v1/erasures/", b'{"identity": "ab\\ud800"}', content_type="application/json")
    assert response.status_code == 400 and "identity" in response.json()["error"]["fields"]
    assert api.post("/api/v1/erasures/", b'{"identity": NaN}', content_type="application/json").status_code == 400
    assert not Erasure.objects.exists()


# ---- who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("persona", "allowed"), [("alice", True), ("oscar", True), ("bob", False), ("vera", False)])
def test_api_role_check(request, acme, persona, allowed):
    user = request.getfixturevalue(persona)
    make_profiles(acme, range(1, 2))
    api = owner_api(user)
    response = api.post("/api/v1/erasures/", {"identity": "u1"}, content_type="application/json")
    assert response.status_code == (201 if allowed else 403)
    assert Identity.objects.filter(value="u1").exists() is not allowed
    assert api.get("/api/v1/erasures/").status_code == (200 if allowed else 403)


def test_another_workspace_cannot_erase_or_read(acme, globex_management_key, charlie, alice):
    make_profiles(acme, range(1, 2))
    erase(acme, value="u1", user=alice, label="alice")
    api = key_client(globex_management_key)
    assert api.post("/api/v1/erasures/", {"identity": "d1"}, format="json").status_code == 201  # nobody in Globex
    assert Identity.objects.filter(workspace=acme).count() == 0  # (already erased) and nothing of Acme touched
    assert [row["via"] for row in api.get("/api/v1/erasures/").json()["results"]] == ["api"]
    erasure = Erasure.objects.get(workspace=acme)
    assert api.get(f"/api/v1/erasures/{erasure.pk}/").status_code == 404


@pytest.mark.parametrize(("persona", "allowed"), [("alice", True), ("oscar", True), ("bob", False), ("vera", False)])
def test_console_role_check(request, acme, persona, allowed):
    user = request.getfixturevalue(persona)
    [profile_id] = make_profiles(acme, range(1, 2))
    client = owner_api(user)
    page = client.get(f"/people/{profile_id}/")
    assert (b"Erase this person" in page.content) is allowed
    response = client.post(f"/people/{profile_id}/erase/")
    if allowed:
        erasure = Erasure.objects.get(workspace=acme)
        assert response.status_code == 302 and response["Location"] == f"/erasures/{erasure.pk}/"
        assert (erasure.via, erasure.requested_by) == ("console", user)
        assert client.get(response["Location"]).status_code == 200
    else:
        assert response.status_code == 403
        assert Profile.objects.filter(pk=profile_id).exists()
    assert client.get("/erasures/").status_code == (200 if allowed else 403)


def test_admin_action_erases_for_owners_and_ops_only(acme, alice, bob, oscar):
    [mine, other] = make_profiles(acme, range(1, 3))
    for user in (alice, bob, oscar):
        user.is_staff = True
        user.save()
        user.user_permissions.add(*Permission.objects.filter(codename__in=["view_profile", "change_profile"]))
    action = {"action": "erase_selected", "_selected_action": [str(mine)]}

    marketer = owner_api(bob)
    refused = marketer.post("/admin/audiences/profile/", action, follow=True)
    assert b"Only owners and ops" in refused.content and Profile.objects.filter(pk=mine).exists()

    ops = owner_api(oscar)
    confirm = ops.post("/admin/audiences/profile/", action)
    assert confirm.status_code == 200 and b"u1" in confirm.content and Profile.objects.filter(pk=mine).exists()
    done = ops.post("/admin/audiences/profile/", {**action, "confirmed": "yes"}, follow=True)
    assert done.status_code == 200 and b"erased (erasure" in done.content
    assert not Profile.objects.filter(pk=mine).exists() and Profile.objects.filter(pk=other).exists()
    assert Erasure.objects.get(workspace=acme).via == "admin"


# ---- the parts ----------------------------------------------------------------------------------


def test_every_column_pointing_at_a_person_is_found_from_the_models():
    tables = {table for table, _ in reference_columns("audiences.Profile", "profile_id")}
    assert {
        "audiences_identity",
        "audiences_segmentmember",
        "audiences_membershipchange",
        "audiences_profilemerge",
        "audiences_event",
        "delivery_deliveryrow",
        "campaigns_kochavauserlink",
    } <= tables
    assert reference_columns("audiences.Event", "event_id") == [("campaigns_kochavaeventoutcome", "event_id")]


@pytest.mark.parametrize(
    ("endpoint", "body", "left"),
    [
        ("list_add", '{"userIds":["p1",42,"k9"],"context":{"a":1}}', '{"userIds":["p1","k9"],"context":{"a":1}}'),
        ("list_remove", '{"userIds":[42.0]}', '{"userIds":[]}'),
        (
            "cohort_webhook",
            '{"cohort_id":"c","message_id":"m","users":[{"user_id":"42"},{"user_id":"p1","user_properties":{"ref":"42"}}]}',
            '{"cohort_id":"c","message_id":"m","users":[{"user_id":"p1","user_properties":{"ref":null}}]}',
        ),
        ("v1_identify", '{"userId":"42","traits":{"plan":"x"}}', '{"batch":[]}'),
        (
            "v1_batch",
            '{"batch":[{"type":"track","anonymousId":"\\u0034\\u0032"},{"type":"track","userId":"p1","anonymousId":"42"}]}',
            '{"batch":[{"type":"track","userId":"p1","anonymousId":null}]}',
        ),
        ("v1_batch", '{"batch":[{"type":"track","userId":"p1","properties":{"note":"met 42 and 1420"}}]}', None),
    ],
    ids=["list", "numbers", "webhook", "single-message", "escaped", "mention-in-text"],
)
def test_scrub_batch_body_keeps_everyone_else(endpoint, body, left):
    cleaned = scrub_batch_body(body.encode(), "user_id", Redactor(values=["42"]))
    if left is None:
        assert (
            cleaned.decode()
            == '{"batch":[{"type":"track","userId":"p1","properties":{"note":"met [erased] and 1420"}}]}'
        )
    else:
        assert cleaned.decode() == left
    assert scrub_batch_body(b'{"userIds":["p1"]}', "user_id", Redactor(values=["42"])) is None


def test_a_large_person_is_erased_with_as_many_statements_as_a_small_one(acme, alice):
    def statements_for(events: int, segments: int) -> int:
        [profile_id] = make_profiles(acme, range(events, events + 1))
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audiences_event (workspace_id, profile_id, source, event_type, event_properties, "
                "user_properties, group_properties, data, loaded_at) "
                "SELECT %s, %s, 'import', 'E', '{}', '{}', '{}', '{}', now() FROM generate_series(1, %s)",
                [acme.pk, profile_id, events],
            )
        for n in range(segments):
            segment = make_segment(acme, f"s{events}-{n}", f"x{events}-{n}")
            add_members(segment, [profile_id])
            remove_members(segment, [profile_id])
            add_members(segment, [profile_id])
        with CaptureQueriesContext(connection) as queries:
            result = erase(acme, profile_id=profile_id, user=alice, label="alice")
        assert result.counts["events"] == events
        assert result.counts["membership changes"] == 3 * segments
        return len(queries)

    assert statements_for(5000, 40) == statements_for(3, 1)


def test_the_demo_shows_one_erasure_and_stays_idempotent(acme):
    out = io.StringIO()
    populate_demo(acme, {}, out)
    populate_demo(acme, {}, out)
    erasure = Erasure.objects.get(workspace=acme)
    assert (erasure.counts["profiles"], erasure.counts["identities"], erasure.requested_by_label) == (1, 1, "demo")
    assert rows_naming([DEMO_PERSON]) == []
    assert "already done" in out.getvalue()


def test_scrub_batch_body_goes_by_kind_where_the_push_says_it():
    # Erasing the person whose *device* id is "42": a list push of user ids naming "42" is someone else.
    redactor = Redactor([("device_id", "42")])
    assert scrub_batch_body(b'{"userIds":["42","p1"]}', "user_id", redactor) is None
    assert scrub_batch_body(b'{"userIds":["42","p1"]}', "device_id", redactor) == b'{"userIds":["p1"]}'
    mixed = b'{"batch":[{"userId":"42","anonymousId":"d9"},{"userId":"p1","anonymousId":"42"}]}'
    assert scrub_batch_body(mixed, "user_id", redactor) == (
        b'{"batch":[{"userId":"42","anonymousId":"d9"},{"userId":"p1","anonymousId":null}]}'
    )


def test_a_kahuna_export_of_their_segment_counts_as_sent_there(acme, alice, partners):  # noqa: F811
    partner = partners("kahuna", secret_key="ks", api_key="ka")
    dest = destination(acme, "kahuna", {"base_url": partner.base_url}, secrets={"secret_key": "ks", "api_key": "ka"})
    refresh_campaigns(dest)
    exported, other = make_segment(acme, "Exported", "e1"), make_segment(acme, "Other", "o1")
    in_export, elsewhere = make_profiles(acme, range(1, 3))
    add_members(exported, [in_export])
    add_members(other, [elsewhere])
    campaign = KahunaCampaign.objects.get(destination=dest, campaign_id="camp-p-1")
    assert run_export(request_export(exported, campaign).pk).status == "succeeded"

    first = erase(acme, value="u1", user=alice, label="alice").destinations
    second = erase(acme, value="u2", user=alice, label="alice").destinations
    assert [d["outcome"] for d in first + second] == ["not_supported", "not_sent"]
