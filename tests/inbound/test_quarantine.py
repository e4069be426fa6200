"""Row-level quarantine: a value that cannot be stored (NUL, lone surrogate, NaN/Infinity, too long,
nested too deep) is refused with a 400 naming it, or set aside as one row with its reason, and
every valid row of the same request is applied; no batch holds up its list or the workspace."""

import gzip
import json

import pytest
from django.db import connection

from audiences.models import Identity, Profile, Segment
from integrations.inbound.apply import apply_pending
from integrations.inbound.models import BatchStatus, InboundBatch, InboundRequest
from tests.conftest import key_client
from tests.delivery.helpers import destination
from tests.inbound.conftest import drain, fixture, push

BAD_IDS = {
    "nul": '"bad\\u0000id"',
    "lone surrogate": '"\\ud800"',
    "low surrogate": '"x\\udc00y"',
    "NaN": "NaN",
    "Infinity": "-Infinity",
    "1e400": "1e400",
    "too long": json.dumps("x" * 600),
    "too long with a nul": json.dumps("x" * 600 + "\u0000"),
}


def members(segment_id) -> set[str]:
    return set(
        Identity.objects.filter(profile__memberships__segment_id=segment_id, kind="user_id").values_list(
            "value", flat=True
        )
    )


def list_body(ids: list[str], bad: str, at: int) -> bytes:
    parts = [json.dumps(value) for value in ids]
    parts.insert(at, bad)
    return ('{"userIds": [' + ", ".join(parts) + "]}").encode()


@pytest.mark.parametrize("bad", list(BAD_IDS), ids=list(BAD_IDS))
def test_one_bad_id_is_set_aside_and_the_valid_ids_are_applied(acme, acme_inbound_key, list_id, bad):
    valid = [f"ok-{n}" for n in range(999)]
    response = push(f"/api/amplitude/lists/{list_id}/add", list_body(valid, BAD_IDS[bad], 500), acme_inbound_key)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["received"] == 1000
    assert [row["position"] for row in answer["invalid"]] == [500]
    drain()
    batch = InboundBatch.objects.get(pk=answer["batchId"])
    assert batch.status == BatchStatus.APPLIED and batch.added == 999 and batch.invalid_count == 1
    assert members(list_id) == set(valid)


def test_cesu_encoded_surrogates_inside_a_gzipped_v1_batch_are_rows_set_aside(acme, acme_inbound_key):
    good = {"type": "identify", "userId": "u-good", "traits": {"[Amplitude] Churn: c1": True, "plan": "pro"}}
    body = json.dumps({"batch": [good, {"type": "identify", "userId": "PLACEHOLDER", "traits": {}}]}).encode()
    # The UTF-8 encoding of U+D800 (ED A0 80): invalid UTF-8, which json.loads of bytes lets through.
    body = body.replace(b"PLACEHOLDER", b"u-\xed\xa0\x80")
    response = push("/v1/batch", gzip.compress(body), acme_inbound_key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200, response.content
    assert [(row["position"], "surrogate" in row["reason"]) for row in response.json()["invalid"]] == [(1, True)]
    drain()
    batch = InboundBatch.objects.get()
    assert batch.status == BatchStatus.APPLIED and batch.added == 1
    segment = Segment.objects.get(external_id="c1")
    assert members(segment.pk) == {"u-good"}
    assert Profile.objects.get(identities__value="u-good").properties == {"plan": "pro"}


@pytest.mark.parametrize(
    ("traits", "names"),
    [
        ('{"plan": "a\\u0000b"}', "traits.plan"),
        ('{"bad\\u0000key": 1}', "traits"),
        ('{"score": NaN}', "traits.score"),
        ('{"nested": {"deep": ["\\udfff"]}}', "traits.nested.deep[0]"),
        ('{"[Amplitude] Churn: ' + "9" * 300 + '": true}', "cohort id longer"),
    ],
)
def test_an_identify_with_an_unstorable_trait_is_set_aside_whole(acme, acme_inbound_key, traits, names):
    body = (
        '{"batch": [{"type": "identify", "userId": "u1", "traits": {"[Amplitude] Churn: c1": true}},'
        ' {"type": "identify", "userId": "u2", "traits": ' + traits + "}]}"
    ).encode()
    response = push("/v1/batch", body, acme_inbound_key)
    assert response.status_code == 200, response.content
    (row,) = response.json()["invalid"]
    assert row["position"] == 1 and names in row["reason"]
    drain()
    assert InboundBatch.objects.get().status == BatchStatus.APPLIED
    assert members(Segment.objects.get(external_id="c1").pk) == {"u1"}
    assert not Identity.objects.filter(value="u2").exists()


def test_a_track_call_with_a_nul_is_set_aside_and_the_other_becomes_an_event(acme, acme_inbound_key):
    from audiences.models import Event

    body = (
        b'{"batch": [{"type": "track", "event": "Bad", "userId": "u1", "messageId": "m1", "properties": {"x": "\\u0000"}},'
        b' {"type": "track", "event": "Good", "userId": "u1", "messageId": "m2"}]}'
    )
    response = push("/v1/batch", body, acme_inbound_key)
    assert response.status_code == 200 and [row["position"] for row in response.json()["invalid"]] == [0]
    drain()
    assert list(Event.objects.values_list("event_type", flat=True)) == ["Good"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "[Amplitude] Churn\u0000: 42"}, "name"),
        ({"name": "[Amplitude] Churn: 4\u00002"}, "name"),
        ({"name": "[Amplitude] Churn: \ud800"}, "name"),
        ({"name": "[Amplitude] Churn: " + "7" * 300}, "name"),
    ],
)
def test_a_list_name_that_cannot_be_stored_is_a_400_naming_it(acme, acme_inbound_key, body, field):
    raw = json.dumps(body).encode()  # ensure_ascii: NUL and the surrogate travel as \\u escapes
    response = push("/api/amplitude/lists", raw, acme_inbound_key)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Segment.objects.exists()


@pytest.mark.parametrize("field", ["message_id", "cohort_id", "cohort_name"])
def test_a_cohort_webhook_header_with_a_nul_is_a_400_naming_it(acme, acme_inbound_key, field):
    body = fixture("cohort_webhook/enter.json")
    body[field] = "x\u0000y"
    response = push("/api/amplitude/cohort-webhook", body, acme_inbound_key)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_a_cohort_webhook_user_with_a_nul_is_set_aside(acme, acme_inbound_key):
    body = fixture("cohort_webhook/enter.json")
    first = len(body["users"])
    body["users"].append({"user_id": "bad\u0000", "user_properties": {}})
    body["users"].append({"user_id": "fine", "user_properties": {"x": "\ud800"}})
    response = push("/api/amplitude/cohort-webhook", body, acme_inbound_key)
    assert response.status_code == 200
    reasons = {row["position"]: row["reason"] for row in response.json()["invalid"] if row["position"] >= first}
    assert set(reasons) == {first, first + 1}
    assert "NUL" in reasons[first] and "user_properties.x" in reasons[first + 1]
    drain()
    assert InboundBatch.objects.get().status == BatchStatus.APPLIED


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/amplitude/lists/{list_id}/add", b'{"userIds": ' + DEEP + b"}", "userIds[0][0]"),
        ("/v1/batch", b'{"batch": [{"type": "identify", "userId": "u", "traits": {"x": ' + DEEP + b"}}]}", "batch[0]"),
        ("/api/amplitude/identify", DEEP, "[0][0]"),
    ],
)
def test_json_nested_100000_deep_is_a_400_naming_where(acme, acme_inbound_key, list_id, path, body, field):
    response = push(path.format(list_id=list_id), body, acme_inbound_key)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "too_deep" and any(name.startswith(field) for name in error["fields"])
    assert not InboundBatch.objects.exists()
    assert InboundRequest.objects.filter(status_code=400, error_code="too_deep").count() == 1  # logged


def test_a_management_api_body_nested_100000_deep_or_with_a_nul_is_a_400(acme, acme_management_key):
    dest = destination(acme, "list_api", {"base_url": "http://127.0.0.1:9/x"})
    api = key_client(acme_management_key)
    url = f"/api/v1/destinations/{dest.pk}/"
    deep = b'{"config": {"base_url": "http://127.0.0.1:9/x", "extra": ' + DEEP + b"}}"
    for body, field in (
        (deep, "config"),
        (b'{"name": "a\\u0000b"}', "name"),
        (b'{"config": {"base_url": "http://127.0.0.1:9/\\ud800"}}', "config.base_url"),
        (b'{"name": NaN}', None),
    ):
        response = api.patch(url, body, content_type="application/json")
        assert response.status_code == 400, (body[:40], response.content[:300])
        error = response.json()["error"]
        if field:
            assert any(name.startswith(field) for name in error["fields"]), error
    dest.refresh_from_db()
    assert dest.name == "list_api"


def test_a_row_the_database_refuses_is_set_aside_and_the_rest_applied(acme, acme_inbound_key, list_id):
    """Beyond what the parsers catch: any row PostgreSQL refuses (here a trigger refusing one value
    with a data exception) is found by halving the batch, set aside with the error, the rest applied."""
    with connection.cursor() as cursor:
        cursor.execute(
            """CREATE FUNCTION pg_temp.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN IF NEW.value = 'poison' THEN
                   RAISE EXCEPTION 'value refused' USING ERRCODE = '22023'; END IF; RETURN NEW; END $$"""
        )
        cursor.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON audiences_identity "
            "FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_poison()"
        )
    valid = [f"v{n}" for n in range(999)]
    answer = push(
        f"/api/amplitude/lists/{list_id}/add", {"userIds": [*valid[:300], "poison", *valid[300:]]}, acme_inbound_key
    )
    assert answer.json()["invalid"] == []  # nothing wrong with it at receipt
    drain()
    batch = InboundBatch.objects.get()
    assert batch.status == BatchStatus.APPLIED and batch.added == 999 and batch.attempts == 1
    assert batch.invalid_count == 1 and batch.invalid[0][:2] == [300, "poison"]
    assert "value refused" in batch.invalid[0][2]
    assert members(list_id) == set(valid)


def test_a_bad_batch_holds_up_neither_its_list_nor_another_list_nor_identifies(acme, acme_inbound_key, list_id):
    """Two adds of 999 valid ids and one lone surrogate each, then valid pushes to the same list, to
    another list and an identify: one pass of each scope's apply (what the queued tasks run) applies all."""
    other = push("/api/amplitude/lists", {"name": "[Amplitude] Other: o1"}, acme_inbound_key).json()["listId"]
    from config.celery import app

    app.conf.task_always_eager = False  # apply only when this test says so
    try:
        for batch in range(2):
            ids = [f"b{batch}-{n}" for n in range(999)]
            push(f"/api/amplitude/lists/{list_id}/add", list_body(ids, '"\\ud800"', 10), acme_inbound_key)
        push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["later"]}, acme_inbound_key)
        push(f"/api/amplitude/lists/{other}/add", {"userIds": ["elsewhere"]}, acme_inbound_key)
        push("/v1/identify", {"userId": "someone", "traits": {"plan": "pro"}}, acme_inbound_key)
    finally:
        app.conf.task_always_eager = True
    assert apply_pending(acme.pk, list_id) == 3
    assert apply_pending(acme.pk, other) == 1
    assert apply_pending(acme.pk, None) == 1
    assert not InboundBatch.objects.exclude(status=BatchStatus.APPLIED).exists()
    assert len(members(list_id)) == 2 * 999 + 1 and members(other) == {"elsewhere"}


def test_a_raw_nul_byte_in_a_body_is_a_400_and_still_logged(acme, acme_inbound_key, list_id):
    response = push(f"/api/amplitude/lists/{list_id}/add", b'{"userIds": ["a\x00b"]}', acme_inbound_key)
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"
    entry = InboundRequest.objects.filter(status_code=400).get()
    assert entry.body_preview == '{"userIds": ["a\\u0000b"]}'


def test_set_aside_rows_are_shown_to_ops_in_the_admin_with_their_reason(
    client, acme, acme_inbound_key, list_id, django_user_model
):
    push(f"/api/amplitude/lists/{list_id}/add", list_body(["fine"], '"nul\\u0000here"', 1), acme_inbound_key)
    drain()
    batch = InboundBatch.objects.get()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    listing = client.get("/admin/inbound/inboundbatch/?set_aside=yes").content.decode()
    assert f"/admin/inbound/inboundbatch/{batch.pk}/change/" in listing
    page = client.get(f"/admin/inbound/inboundbatch/{batch.pk}/change/").content.decode()
    assert "nul\\u0000here" in page and "contains a NUL character" in page


def test_the_demo_shows_a_set_aside_row_and_pushes_once(acme, acme_inbound_key):
    import io

    from demo.inbound import populate_demo

    out = io.StringIO()
    populate_demo(acme, {"inbound_key": acme_inbound_key}, out)
    batches = InboundBatch.objects.count()
    populate_demo(acme, {"inbound_key": acme_inbound_key}, out)
    assert InboundBatch.objects.count() == batches and "already pushed" in out.getvalue()
    assert not InboundBatch.objects.exclude(status=BatchStatus.APPLIED).exists()
    reasons = [row[2] for batch in InboundBatch.objects.filter(invalid_count__gt=0) for row in batch.invalid]
    assert any("NUL" in reason for reason in reasons)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/profiles/lookup/?identity=a%00b",
        "/api/v1/profiles/lookup/?identity=u1&kind=user%00id",
        "/api/v1/segments/?type=x%00",
    ],
)
def test_a_nul_in_a_query_parameter_is_a_400_naming_it(acme, acme_management_key, url):
    response = key_client(acme_management_key).get(url)
    assert response.status_code == 400, response.content[:300]
    fields = response.json()["error"]["fields"]
    assert list(fields) == [url.split("?")[1].split("&")[-1].split("=")[0]]


def test_a_nul_in_a_console_search_is_a_400(client, alice):
    client.force_login(alice)
    assert client.get("/segments/?q=a%00b").status_code == 400
