"""From an inbound Amplitude push to each partner's sandbox receiving the right payload."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from audiences.models import Event, Identity, Segment
from integrations.connectors.kahuna.actions import ExportRefused, request_export
from integrations.connectors.kahuna.export import refresh_campaigns, run_export
from integrations.connectors.kahuna.models import KahunaCampaign
from integrations.connectors.kochava.models import KochavaEventOutcome, KochavaStream, KochavaUserLink, LinkStatus
from integrations.connectors.kochava.stream import link_due_users, stream_events, sweep_held_back_rows
from integrations.models import ApiKey
from tests.conftest import key_client
from tests.delivery.helpers import destination, job_for, sync
from tests.inbound.conftest import drain, fixture, push

KOCHAVA_MAPPING = {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"}


def kochava_destination(acme, base_url: str, **config):
    """A Kochava destination streaming Purchase events to `base_url`, device ids as adid."""
    return destination(
        acme,
        "kochava",
        {
            "base_url": base_url,
            "app_guid": "koapp-1",
            "mapping": KOCHAVA_MAPPING,
            "event_types": ["Purchase"],
            **config,
        },
        secrets={},
    )


def purchases(acme, prefix: str, count: int) -> list[Event]:
    """`count` Purchase events of devices k0, k1, … (uuids prefix0, prefix1, …)."""
    return Event.objects.bulk_create(
        [
            Event(workspace=acme, uuid=f"{prefix}{i}", event_type="Purchase", device_id=f"k{i}", ip_address="10.0.0.1")
            for i in range(count)
        ]
    )


SCENARIO_DEVICE = "543C-3455-4555-3SRD"  # CleverTap's scenario 3 (docs/partner-apis.md 6): never identified


@pytest.fixture
def pushed(acme, acme_inbound_key):
    """Amplitude creates the list and pushes two known users; a device-id key pushes an anonymous one."""
    device_key = ApiKey.issue(acme, scope="inbound", name="amplitude devices", identity_kind="device_id")[1]
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key).json()[
        "listId"
    ]
    assert (
        push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["Clevertap1", "ada"]}, acme_inbound_key).status_code
        == 200
    )
    assert push(f"/api/amplitude/lists/{list_id}/add", {"userIds": [SCENARIO_DEVICE]}, device_key).status_code == 200
    drain()
    segment = Segment.objects.get(workspace=acme, external_id="26umsb5")
    assert segment.size == 3
    return segment, list_id, acme_inbound_key


def test_clevertap_gets_profiles_and_partner_sync_events(pushed, partners, acme):
    segment, list_id, key = pushed
    partner = partners("clevertap", account_id="ACC-9", passcode="pass-9")
    dest = destination(
        acme,
        "clevertap",
        {"base_url": partner.base_url, "user_properties": []},
        secrets={"passcode": "pass-9"},
        fields={"account_id": "ACC-9"},
    )
    job = job_for(segment, dest)
    run = sync(job)
    assert (run.status, run.delivered) == ("succeeded", 3), run.error
    flag = "[Amplitude] Power users: 26umsb5"
    # Scenarios 1-2: the user id is CleverTap's identity; scenario 3: the device id is the CleverTap ID.
    assert {who: data[flag] for who, data in partner.fake.profiles.items()} == {
        "Clevertap1": True,
        "ada": True,
        SCENARIO_DEVICE: True,
    }
    upload = partner.fake.find("/1/upload")[0]
    assert upload["headers"]["x-clevertap-account-id"] == "ACC-9"
    anonymous = [r for r in upload["body"]["d"] if r.get("objectId") == SCENARIO_DEVICE]
    assert {r["type"] for r in anonymous} == {"profile", "event"} and all("identity" not in r for r in anonymous)
    added = {e["key"]: e["evtData"] for e in partner.fake.events}
    assert added["ada"] == {
        "Partner Segment Name": "Power users",
        "Action": "Added",
        "Partner Segment ID": "26umsb5",
        "Source": "Amplitude",
        "Partner Name": "Amplitude",
    }

    # Amplitude removes ada: the next (incremental) run sends only her, as "Removed".
    push(f"/api/amplitude/lists/{list_id}/remove", {"userIds": ["ada"]}, key)
    drain()
    second = sync(job)
    assert (second.status, second.delivered, second.full) == ("succeeded", 1, False)
    assert partner.fake.profiles["ada"][flag] is False
    assert partner.fake.events[-1]["evtData"]["Action"] == "Removed" and partner.fake.events[-1]["key"] == "ada"


def test_clevertap_profiles_carry_only_the_selected_user_properties(pushed, partners, acme):
    segment, _, key = pushed
    # Segment-style identify: other traits become profile properties, as Amplitude's user properties do.
    push("/v1/identify", {"userId": "ada", "traits": {"plan": "pro", "city": "Paris", "internal_score": 7}}, key)
    drain()
    partner = partners("clevertap", account_id="ACC-9", passcode="pass-9")
    dest = destination(
        acme,
        "clevertap",
        {"base_url": partner.base_url, "user_properties": ["plan", "city"]},
        secrets={"passcode": "pass-9"},
        fields={"account_id": "ACC-9"},
    )
    run = sync(job_for(segment, dest))
    assert run.status == "succeeded", run.error
    flag = "[Amplitude] Power users: 26umsb5"
    assert partner.fake.profiles["ada"] == {"plan": "pro", "city": "Paris", flag: True}
    assert partner.fake.profiles["Clevertap1"] == {flag: True}  # nothing selected is known about them


def test_two_clevertap_destinations_on_one_account_share_its_15_request_cap(acme):
    from integrations.connectors.base import SegmentInfo
    from integrations.delivery.models import Destination

    def connector(account):
        dest = destination(
            acme,
            "clevertap",
            {"base_url": "http://127.0.0.1:9"},
            secrets={"passcode": "p"},
            fields={"account_id": account},
            name=f"CleverTap {Destination.objects.count()}",
        )
        return dest, dest.connector_class(
            dest.config, {"passcode": "p"}, auth_fields={"account_id": account}, segment=SegmentInfo(1, "s", "1")
        )

    (first, a), (second, b), (third, c) = connector("ACC-1"), connector("ACC-1"), connector("ACC-2")
    assert a.concurrency_key(first.pk) == b.concurrency_key(second.pk) == "clevertap:ACC-1"
    assert c.concurrency_key(third.pk) == "clevertap:ACC-2"


def test_clevertap_401_disables_the_destination_with_clevertaps_message(pushed, partners, acme):
    segment, _, _ = pushed
    partner = partners("clevertap", account_id="ACC-9", passcode="pass-9")
    dest = destination(
        acme, "clevertap", {"base_url": partner.base_url}, secrets={"passcode": "old"}, fields={"account_id": "ACC-9"}
    )
    sync(job_for(segment, dest))
    dest.refresh_from_db()
    assert dest.health == "disabled" and "Account ID is not valid" in dest.last_error


def test_kahuna_credential_sync_and_export_to_an_enabled_adaptive_campaign(pushed, partners, acme, acme_management_key):
    segment, _, _ = pushed
    partner = partners("kahuna", secret_key="ks", api_key="ka")
    dest = destination(
        acme,
        "kahuna",
        {"base_url": partner.base_url, "environment": "p"},
        secrets={"secret_key": "ks", "api_key": "ka"},
    )
    run = sync(job_for(segment, dest))
    assert (run.status, run.delivered) == ("succeeded", 3), run.error
    targets = [
        item["target"]
        for call in partner.fake.find("/api/userattributes")
        for item in call["body"]["user_attributes_array"]
    ]
    assert {"user_id": "Clevertap1"} in targets and {"install_token": SCENARIO_DEVICE} in targets
    assert partner.fake.find("/api/userattributes")[0]["query"] == {"env": "p"}

    assert refresh_campaigns(dest) == 3  # two in production (one disabled), one in staging
    disabled = KahunaCampaign.objects.get(destination=dest, campaign_id="camp-p-2")
    with pytest.raises(ExportRefused, match="disabled in Production"):
        request_export(segment, disabled)
    refused = key_client(acme_management_key).post(
        "/api/v1/kahuna-exports/", {"segment": segment.pk, "campaign": disabled.pk}, format="json"
    )
    assert refused.status_code == 400 and "campaign" in refused.json()["error"]["fields"]

    enabled = KahunaCampaign.objects.get(destination=dest, campaign_id="camp-p-1")
    created = key_client(acme_management_key).post(
        "/api/v1/kahuna-exports/", {"segment": segment.pk, "campaign": enabled.pk}, format="json"
    )
    assert created.status_code == 201, created.json()
    export = run_export(created.json()["id"])
    assert (export.status, export.users_sent, export.job_id) == ("succeeded", 3, "job-1")
    job = partner.fake.jobs[0]
    assert job["env"] == "p" and job["body"]["campaign_config"] == {"campaign_id": "camp-p-1"}
    assert {"install_token": SCENARIO_DEVICE} in job["body"]["user_list"]


def test_kochava_send_users_holds_back_devices_without_an_install(acme, acme_inbound_key, partners, settings):
    device_key = ApiKey.issue(acme, scope="inbound", name="devices", identity_kind="device_id")[1]
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key).json()[
        "listId"
    ]
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["dev-installed", "dev-later"]}, device_key)
    drain()
    segment = Segment.objects.get(workspace=acme, external_id="26umsb5")
    partner = partners("kochava", installed=["dev-installed"])
    dest = kochava_destination(acme, partner.base_url)
    run = sync(job_for(segment, dest))
    assert (run.delivered, run.rejected) == (1, 1)
    assert run.rows.get(device_id="dev-later").partner_code == "held_back"
    assert "dev-installed" in partner.fake.identities

    assert sweep_held_back_rows(dest) == 1
    held = KochavaUserLink.objects.get(destination=dest, kochava_device_id="dev-later")
    assert held.status == LinkStatus.PENDING and held.next_attempt_at > timezone.now()
    later = timezone.now() + dt.timedelta(hours=1)
    assert link_due_users(dest, now=later)["held_back"] == 1  # still no install: pushed further out
    held.refresh_from_db()
    assert held.next_attempt_at > later and held.attempts == 2
    partner.fake.register_install("dev-later")
    assert link_due_users(dest, now=later + dt.timedelta(days=1))["linked"] == 1
    assert partner.fake.identities["dev-later"]["Amplitude cohort Power users (26umsb5)"] == "true"


def test_kochava_members_without_a_device_id_are_invalid_rows_never_sent(acme, acme_inbound_key, partners):
    """Kochava links people by device: a member known by user id only is an invalid row with the
    reason, never sent, not a partner rejection, and it alone does not make the run partially failed."""
    device_key = ApiKey.issue(acme, scope="inbound", name="devices", identity_kind="device_id")[1]
    list_id = push("/api/amplitude/lists", fixture("amplitude_cohort_sync/lists_create.json"), acme_inbound_key).json()[
        "listId"
    ]
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["dev-installed"]}, device_key)
    push(f"/api/amplitude/lists/{list_id}/add", {"userIds": ["ada"]}, acme_inbound_key)  # a user id, no device
    drain()
    segment = Segment.objects.get(workspace=acme, external_id="26umsb5")
    partner = partners("kochava", installed=["dev-installed"])
    dest = kochava_destination(acme, partner.base_url)
    run = sync(job_for(segment, dest))
    assert run.status == "succeeded", run.error
    assert (run.delivered, run.rejected, run.failed, run.invalid) == (1, 0, 0, 1)
    invalid = run.rows.get(user_id="ada")
    assert invalid.status == "invalid" and invalid.partner_code == "" and "device" in invalid.reason
    assert len(partner.fake.find("/track/json")) == 1  # Kochava was asked about the device only


def test_kochava_streams_selected_events_one_per_request(acme, partners):
    partner = partners("kochava")
    mapping = {
        "kochava_device_id": "device_id",
        "origination_ip": "ip_address",
        "idfa": "data.idfa",
        "device_ua": "user_properties.ua",
    }
    dest = destination(
        acme,
        "kochava",
        {
            "base_url": partner.base_url,
            "app_guid": "koapp-1",
            "mapping": mapping,
            "event_types": ["Purchase"],
            "user_properties": ["plan"],
        },
        secrets={},
    )
    when = timezone.now().replace(microsecond=0)
    identity = Identity.objects.create(workspace=acme, profile=_profile(acme), kind="user_id", value="ada")
    events = Event.objects.bulk_create(
        [
            Event(
                workspace=acme,
                profile=identity.profile,
                source="push",
                uuid=f"e{i}",
                event_type=kind,
                event_time=when,
                user_id="ada",
                device_id="kdev-1",
                ip_address="104.219.46.66",
                event_properties={"price": 9.99},
                user_properties={"plan": "pro", "ua": "Mozilla/5.0"},
                data={"idfa": "IDFA-1"} if i != 2 else {},
            )
            for i, kind in enumerate(["Purchase", "Login", "Purchase", "Purchase"])
        ]
    )
    result = stream_events(dest)
    assert (result.sent, result.skipped) == (2, 1)  # Login not selected; the third has no device ids
    assert result.last_event_id == events[-1].id
    sent = partner.fake.events[0]
    assert sent["action"] == "event" and sent["kochava_app_id"] == "koapp-1" and sent["kochava_device_id"] == "kdev-1"
    assert sent["data"] == {
        "usertime": int(when.timestamp()),
        "device_ids": {"idfa": "IDFA-1"},
        "origination_ip": "104.219.46.66",
        "device_ua": "Mozilla/5.0",
        "device_ver": "",
        "event_name": "Purchase",
        "event_data": {"price": 9.99, "plan": "pro"},
    }
    assert all(isinstance(call["body"], dict) for call in partner.fake.find("/track/json"))  # never a batch
    outcome = KochavaEventOutcome.objects.get()
    assert outcome.event_id == events[2].id and outcome.status == "skipped"
    assert KochavaUserLink.objects.filter(destination=dest, kochava_device_id="kdev-1").exists()
    assert stream_events(dest).sent == 0  # the cursor moved: nothing twice


def test_kochava_long_429_parks_the_stream_without_losing_events(acme, partners, settings):
    settings.DELIVERY_SHORT_WAIT_SECONDS = 2
    partner = partners("kochava")
    dest = kochava_destination(acme, partner.base_url, concurrency=1)
    purchases(acme, "x", 3)
    partner.fake.set_faults(
        script=[{"status": 200, "body": {"success": "1"}}, {"status": 429, "headers": {"Retry-After": "600"}}]
    )
    first = stream_events(dest)
    assert first.sent == 1 and "429" in first.stopped
    stream = KochavaStream.objects.get(destination=dest)
    assert stream.next_run_at > timezone.now() + dt.timedelta(minutes=5)
    second = stream_events(dest)
    assert second.sent == 2 and len(partner.fake.events) == 2  # the scripted 200 stored nothing itself


def test_kochava_stream_keeps_up_to_its_concurrency_in_flight(acme, partners):
    """One event per request: the rate is requests in flight / round trip, so a pass must overlap them.

    No timing assertion: the sandbox holds each call 50 ms and counts how many it held at once.
    """
    partner = partners("kochava", latency=0.05)
    dest = kochava_destination(acme, partner.base_url, concurrency=4)
    events = purchases(acme, "c", 24)
    result = stream_events(dest)
    assert result.sent == 24 and result.last_event_id == events[-1].id
    stats = partner.fake.stats()
    assert 1 < stats["max_in_flight"] <= 4, stats  # concurrent, and never over the destination's cap


def test_kochava_concurrent_stop_leaves_the_cursor_before_the_first_unanswered_event(acme, partners, settings):
    settings.DELIVERY_SHORT_WAIT_SECONDS = 2
    partner = partners("kochava", latency=0.02)
    dest = kochava_destination(acme, partner.base_url, concurrency=4)
    events = purchases(acme, "s", 20)
    device_of = {e.id: e.device_id for e in events}
    partner.fake.set_faults(script=[{}] * 6 + [{"status": 429, "headers": {"Retry-After": "600"}}])
    first = stream_events(dest)
    assert "429" in first.stopped and first.last_event_id < events[-1].id
    received = {e["kochava_device_id"] for e in partner.fake.events}
    # Everything up to the cursor was answered; what was answered beyond it is resent (at least once).
    assert {device_of[i] for i in device_of if i <= first.last_event_id} <= received
    assert KochavaStream.objects.get(destination=dest).last_event_id == first.last_event_id
    second = stream_events(dest)
    assert not second.stopped and second.last_event_id == events[-1].id
    received = [e["kochava_device_id"] for e in partner.fake.events]
    assert set(received) == set(device_of.values())
    resent = {d for d in received if received.count(d) > 1}
    assert all(i > first.last_event_id for i, d in device_of.items() if d in resent)


def _profile(workspace):
    from audiences.models import Profile

    return Profile.objects.create(workspace=workspace)


def test_demo_configures_the_three_partners_on_their_sandboxes(acme, partners, monkeypatch):
    import io

    from demo.partners import populate_demo
    from demo.servers import _PARTNER_OPTIONS

    for kind in ("clevertap", "kahuna", "kochava"):
        monkeypatch.setenv(f"SANDBOX_{kind.upper()}_URL", partners(kind, **_PARTNER_OPTIONS[kind]).base_url)
    out = io.StringIO()
    populate_demo(acme, {}, out)
    populate_demo(acme, {}, out)  # idempotent
    kinds = sorted(acme.destinations.values_list("kind", flat=True))
    assert kinds == ["clevertap", "kahuna", "kochava"]
    assert KahunaCampaign.objects.filter(destination__workspace=acme, enabled=True).count() == 2


def test_kochava_a_second_pass_of_one_stream_is_refused_while_the_first_runs(acme, partners):
    import psycopg

    from tests.conftest import test_database_url

    partner = partners("kochava")
    dest = kochava_destination(acme, partner.base_url)
    Event.objects.create(workspace=acme, uuid="p1", event_type="Purchase", device_id="k1", ip_address="10.0.0.1")
    running = psycopg.connect(test_database_url(), autocommit=True)  # a pass in progress on another worker
    running.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"kochava-stream:{dest.pk}"])
    try:
        refused = stream_events(dest)
    finally:
        running.close()
    assert refused.stopped == "another pass of this stream is running" and partner.fake.events == []
    # The server ends a closed session's backend (and its locks) a moment after the client hangs
    # up: wait for that, as a real second pass would find it, instead of racing it under load.
    with psycopg.connect(test_database_url(), autocommit=True) as probe:
        deadline = time.monotonic() + 10
        key = f"kochava-stream:{dest.pk}"
        while not probe.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key]).fetchone()[0]:
            assert time.monotonic() < deadline, "the closed session's lock was never released"
            time.sleep(0.05)
        probe.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])
    assert stream_events(dest).sent == 1  # the lock went with the other session


def test_kochava_stream_and_syncs_share_the_destinations_request_slots(acme):
    from integrations.connectors.base import SegmentInfo
    from integrations.delivery.semaphore import connector_slots

    dest = kochava_destination(acme, "http://127.0.0.1:9", concurrency=3)  # never called
    from integrations.connectors.kochava.stream import connector_for

    stream_slots = connector_slots(connector_for(dest), dest.pk)
    sync_slots = connector_slots(dest.connector_class(dest.config, {}, segment=SegmentInfo(1, "s", "1")), dest.pk)
    assert (stream_slots.key, stream_slots.cap) == (sync_slots.key, 3)
    tokens = [stream_slots.try_acquire() for _ in range(3)]
    try:
        assert all(tokens) and sync_slots.try_acquire() is None  # the stream's 3 in flight fill the cap
    finally:
        for token in tokens:
            stream_slots.release(token)


def test_kahuna_campaigns_api_marketers_read_and_refresh_only_ops_edit(acme, bob, vera, oscar, partners):
    from rest_framework.test import APIClient

    from demo.servers import _PARTNER_OPTIONS

    partner = partners("kahuna", **_PARTNER_OPTIONS["kahuna"])
    dest = destination(
        acme,
        "kahuna",
        {"base_url": partner.base_url, "environment": "p"},
        secrets={"secret_key": "demo-kahuna-secret", "api_key": "demo-kahuna-api"},
    )

    def client(user):
        api = APIClient()
        api.force_login(user)
        return api

    marketer, viewer, ops = client(bob), client(vera), client(oscar)
    assert viewer.post(f"/api/v1/kahuna-campaigns/refresh/{dest.pk}/").status_code == 403
    assert marketer.post(f"/api/v1/kahuna-campaigns/refresh/{dest.pk}/").json() == {"listed": 3}
    listed = viewer.get("/api/v1/kahuna-campaigns/?environment=p&enabled=true").json()
    assert [c["name"] for c in listed["results"]] == ["Welcome back"]
    new = {"name": "By hand", "campaign_id": "hand-1", "environment": "p", "enabled": True, "destination": dest.pk}
    assert marketer.post("/api/v1/kahuna-campaigns/", new, format="json").status_code == 403
    assert ops.post("/api/v1/kahuna-campaigns/", new, format="json").status_code == 201
