"""Track calls on the Segment-compatible endpoints are stored as events, linked to their person."""

from audiences.models import Event, Identity, Profile
from tests.inbound.conftest import drain, fixture, push


def test_track_in_a_batch_becomes_one_linked_event_even_when_replayed(acme, acme_inbound_key):
    body = fixture("segment/batch.json")
    assert push("/v1/batch", body, acme_inbound_key).status_code == 200
    drain()
    event = Event.objects.get(workspace=acme)
    assert (event.event_type, event.uuid, event.user_id, event.source) == ("Song Played", "m3", "s-user-2", "track")
    assert event.event_properties == {"title": "Blue"}
    person = Identity.objects.get(workspace=acme, kind="user_id", value="s-user-2").profile_id
    assert event.profile_id == person
    assert Profile.objects.get(pk=person).event_counts == {"Song Played": 1}

    body["batch"][2]["properties"] = {"title": "Blue"}  # a retry with a new body: same messageId
    body["sentAt"] = "2026-11-20T10:00:09.000Z"
    push("/v1/batch", body, acme_inbound_key)
    drain()
    assert Event.objects.filter(workspace=acme).count() == 1


def test_single_track_call_with_context(acme, acme_inbound_key):
    call = {
        "type": "track",
        "anonymousId": "dev-42",
        "event": "Add To Cart",
        "messageId": "t-1",
        "timestamp": "2026-11-21T08:30:00Z",
        "properties": {"sku": "A1"},
        "context": {"ip": "203.0.113.9", "os": {"name": "iOS"}, "device": {"type": "ios"}},
    }
    assert push("/v1/track", call, acme_inbound_key).status_code == 200
    drain()
    event = Event.objects.get(workspace=acme, uuid="t-1")
    assert (event.device_id, event.ip_address, event.os_name, event.platform) == ("dev-42", "203.0.113.9", "iOS", "ios")
    assert event.event_time.isoformat().startswith("2026-11-21T08:30:00")
    assert event.profile_id == Identity.objects.get(workspace=acme, value="dev-42").profile_id
