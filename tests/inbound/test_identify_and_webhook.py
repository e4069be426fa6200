"""Property-based sync (identify), cohort webhooks and the Segment-compatible /v1 API, from fixtures."""

import pytest

from audiences.models import Identity, MembershipChange, Profile, ProfileMerge, Segment, SegmentMember
from integrations.inbound.apply import track_calls
from integrations.inbound.models import BatchStatus, InboundBatch
from tests.inbound.conftest import drain, fixture, fixture_bytes, push


def in_segment(external_id: str) -> set[str]:
    segment = Segment.objects.get(external_id=external_id)
    return set(
        Identity.objects.filter(profile__memberships__segment=segment)
        .exclude(kind="device_id")
        .values_list("value", flat=True)
    )


def profile_of(value: str) -> Profile:
    return Identity.objects.get(value=value).profile


def test_single_identify_creates_the_segment_when_first_seen(acme, acme_inbound_key):
    response = push("/api/amplitude/identify", fixture("amplitude_cohort_sync/identify_single.json"), acme_inbound_key)
    assert response.status_code == 200
    drain()
    segment = Segment.objects.get(external_id="26umsb5")
    assert (segment.name, segment.type, segment.size) == ("Power users", "partner_amplitude", 1)
    assert in_segment("26umsb5") == {"u1"}


def test_batch_identify_adds_removes_and_reports_blocked_rows(acme, acme_inbound_key):
    response = push("/api/amplitude/identify", fixture("amplitude_cohort_sync/identify_batch.json"), acme_inbound_key)
    assert [row["position"] for row in response.json()["invalid"]] == [3]
    drain()
    assert in_segment("26umsb5") == {"u1", "u2"}
    # u3 left a cohort it was never in: a segment exists, nothing is written to the ledger for it.
    assert Segment.objects.get(external_id="7khm89cz").size == 0
    assert MembershipChange.objects.count() == 2
    assert not Identity.objects.filter(value="anonymous").exists()


def test_the_doc_testing_sample_with_a_bare_key_and_an_api_key_header(acme, acme_inbound_key):
    body = fixture_bytes("amplitude_cohort_sync/identify_test_sample_bare_key.json")
    response = push("/api/amplitude/identify", body, acme_inbound_key, auth="header", HTTP_APP_ID="TEST_APP_ID")
    assert response.status_code == 200
    drain()
    segment = Segment.objects.get(external_id="123")
    assert segment.name == "cohort name" and in_segment("123") == {"test.user@email.com"}


def test_string_booleans_of_the_doc_samples_count(acme, acme_inbound_key):
    push("/api/amplitude/identify", fixture("amplitude_cohort_sync/identify_string_booleans.json"), acme_inbound_key)
    drain()
    assert in_segment("26umsb5") == {"u9"}


def test_identify_true_then_false_in_later_requests(acme, acme_inbound_key):
    enter = {"type": "identify", "userId": "u1", "traits": {"[Amplitude] Power users: 26umsb5": True}}
    leave = {"type": "identify", "userId": "u1", "traits": {"[Amplitude] Power users: 26umsb5": False}}
    push("/api/amplitude/identify", enter, acme_inbound_key)
    push("/api/amplitude/identify", leave, acme_inbound_key)
    drain()
    assert list(MembershipChange.objects.order_by("id").values_list("action", flat=True)) == ["added", "removed"]
    assert Segment.objects.get(external_id="26umsb5").size == 0


def test_cohort_webhook_enter_exit_and_dedupe_on_message_id(acme, acme_inbound_key):
    enter = fixture("cohort_webhook/enter.json")
    first = push("/api/amplitude/cohort-webhook", enter, acme_inbound_key, HTTP_USER_AGENT="Amplitude/Webhook/1.0")
    # A retry with the same message_id (even re-serialised differently) is a duplicate.
    retry = push("/api/amplitude/cohort-webhook", {**enter, "computed_time": "1692206999"}, acme_inbound_key)
    assert first.status_code == retry.status_code == 200 and retry.json()["duplicate"] is True
    assert first.json()["invalid"][0]["position"] == 2
    push("/api/amplitude/cohort-webhook", fixture("cohort_webhook/exit.json"), acme_inbound_key)
    drain()
    assert in_segment("7khm89cz") == {"w1"}
    assert profile_of("w1").properties == {"plan": "pro", "country": "DE"}
    assert InboundBatch.objects.filter(endpoint="cohort_webhook").count() == 2


def test_cohort_webhook_missing_fields_are_named(acme, acme_inbound_key):
    response = push("/api/amplitude/cohort-webhook", {"cohort_id": "x", "users": []}, acme_inbound_key)
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"in_cohort", "message_id"}


def test_segment_identify_links_device_sets_traits_and_membership(acme, acme_inbound_key):
    response = push("/v1/identify", fixture("segment/identify.json"), acme_inbound_key)
    assert response.status_code == 200 and response.json()["success"] is True
    drain()
    profile = profile_of("s-user-1")
    assert set(profile.identities.values_list("kind", "value")) == {("user_id", "s-user-1"), ("device_id", "dev-abc-1")}
    assert profile.properties == {"email": "ada@example.com", "plan": "pro"}
    assert in_segment("26umsb5") == {"s-user-1"}


def test_segment_batch_counts_other_calls_and_keeps_track_calls_raw(acme, acme_inbound_key):
    response = push("/v1/batch", fixture("segment/batch.json"), acme_inbound_key, gzipped=True)
    assert response.status_code == 200 and response.json()["invalid"] == []
    drain()
    batch = InboundBatch.objects.get()
    assert batch.status == BatchStatus.APPLIED
    assert batch.other_calls == {"track": 1, "page": 1, "screen": 1, "group": 1, "alias": 1}
    assert [call["event"] for call in track_calls(batch)] == ["Song Played"]
    # On /v1 a bare "plan:pro" trait is an ordinary property, not a cohort.
    assert profile_of("s-user-2").properties == {"plan": "team", "plan:pro": True}
    assert Segment.objects.filter(external_id="pro").count() == 0
    assert SegmentMember.objects.get().profile == profile_of("dev-only-9")


@pytest.mark.parametrize("call", ["track", "page", "screen", "group", "alias"])
def test_other_v1_calls_are_acknowledged(acme, acme_inbound_key, call):
    response = push(
        f"/v1/{call}", fixture("segment/alias.json" if call == "alias" else "segment/track.json"), acme_inbound_key
    )
    assert response.status_code == 200
    drain()
    batch = InboundBatch.objects.get()
    assert batch.other_calls == {call: 1} and batch.status == BatchStatus.APPLIED
    assert (len(track_calls(batch)) == 1) == (call == "track")


def test_v1_identify_of_a_known_user_from_a_new_device_merges_the_anonymous_profile(acme, acme_inbound_key):
    push("/v1/identify", {"userId": "ada", "traits": {"plan": "pro"}}, acme_inbound_key)
    push(
        "/v1/identify",
        {"anonymousId": "phone-1", "traits": {"[Amplitude] Power users: 26umsb5": True, "color": "red"}},
        acme_inbound_key,
    )
    push("/v1/identify", {"userId": "ada", "anonymousId": "phone-1"}, acme_inbound_key)
    drain()
    ada = profile_of("ada")
    assert profile_of("phone-1") == ada and Profile.objects.count() == 1
    assert ada.properties == {"plan": "pro", "color": "red"}
    assert in_segment("26umsb5") == {"ada"}
    batch = InboundBatch.objects.order_by("id").last()
    assert batch.merges == 1 and ProfileMerge.objects.get().cause_id == batch.pk


def test_v1_alias_merges_the_anonymous_profile_into_the_known_user(acme, acme_inbound_key):
    push(
        "/v1/identify",
        {"anonymousId": "anon-7f3c2a", "traits": {"[Amplitude] Power users: 26umsb5": True, "color": "red"}},
        acme_inbound_key,
    )
    push("/v1/identify", {"userId": "s-user-2", "traits": {"plan": "pro"}}, acme_inbound_key)
    push("/v1/alias", fixture("segment/alias.json"), acme_inbound_key)
    drain()
    user = profile_of("s-user-2")
    assert profile_of("anon-7f3c2a") == user and Profile.objects.count() == 1
    assert user.properties == {"plan": "pro", "color": "red"} and in_segment("26umsb5") == {"s-user-2"}
    batch = InboundBatch.objects.order_by("id").last()
    assert (batch.merges, batch.other_calls) == (1, {"alias": 1})
    push("/v1/alias", fixture("segment/alias.json") | {"messageId": "again"}, acme_inbound_key)
    drain()  # a replayed or repeated alias changes nothing
    assert Profile.objects.count() == 1 and ProfileMerge.objects.count() == 1


def test_v1_alias_of_an_old_user_id_gives_the_person_the_new_one_and_never_merges_two_known_people(
    acme, acme_inbound_key
):
    push("/v1/identify", {"userId": "old-id", "traits": {"plan": "pro"}}, acme_inbound_key)
    push("/v1/identify", {"userId": "taken", "traits": {}}, acme_inbound_key)
    push(
        "/v1/batch",
        {
            "batch": [
                {"type": "alias", "previousId": "old-id", "userId": "new-id"},
                {"type": "alias", "previousId": "old-id", "userId": "taken"},
                {"type": "alias", "userId": "no-previous"},
            ]
        },
        acme_inbound_key,
    )
    drain()
    assert profile_of("new-id") == profile_of("old-id") != profile_of("taken")
    batch = InboundBatch.objects.order_by("id").last()
    assert len(batch.conflicts) == 1 and "never merged automatically" in batch.conflicts[0]["reason"]
    assert batch.invalid == [[2, "no-previous", "alias needs both userId and previousId"]]
