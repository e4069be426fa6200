"""Each partner's real answer shapes (tests/fixtures/partners/<partner>/) read by its connector."""

import json
from pathlib import Path

import pytest
import responses

from integrations.connectors.base import Batch, ConnectorError, OutRow, Policy, SegmentInfo
from integrations.connectors.clevertap import CleverTapConnector
from integrations.connectors.kahuna.connector import KahunaConnector
from integrations.connectors.kochava.connector import HELD_BACK, KochavaConnector

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "partners"
SEGMENT = SegmentInfo(7, "Cart Drop off", "1638361188")


@pytest.fixture(autouse=True)
def operator_hosts(settings):
    """The fake hosts `responses` answers for stand in for partner hosts: the operator allows them (a
    partner's fixed host is overridden only for a host in OUTBOUND_ALLOWED_NETWORKS)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = [
        *settings.OUTBOUND_ALLOWED_NETWORKS,
        "ct.test:443",
        "kahuna.test:443",
        "ko.test:443",
    ]


def answer(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def rows(n: int, action: str = "add") -> list[OutRow]:
    return [OutRow(100 + i, i, action, f"u{i}" if i % 2 == 0 else None, f"d{i}") for i in range(n)]


def clevertap(**config) -> CleverTapConnector:
    config = CleverTapConnector.validate_config({"base_url": "https://ct.test", **config})
    return CleverTapConnector(config, {"passcode": "pass-123"}, auth_fields={"account_id": "ACC"}, segment=SEGMENT)


@responses.activate
def test_clevertap_unprocessed_record_number_maps_back_to_its_row():
    # Record 3 is the second row's profile (each row = profile + Partner Sync event).
    responses.post("https://ct.test/1/upload", json=answer("clevertap/upload_partial.json"))
    rejections = clevertap().send(Batch("add", rows(2)))
    assert [(r.seq, r.code) for r in rejections] == [(101, "523")]
    assert "identity" in rejections[0].reason and rejections[0].reason.startswith("CleverTap 523")


@responses.activate
def test_clevertap_unprocessed_without_a_number_is_matched_by_the_echoed_record():
    responses.post("https://ct.test/1/upload", json=answer("clevertap/upload_all_failed.json"))
    rejections = clevertap().send(Batch("add", rows(3)))
    assert [(r.seq, r.code) for r in rejections] == [(102, "515")]


@responses.activate
def test_clevertap_401_is_an_auth_stop_with_clevertaps_words():
    responses.post("https://ct.test/1/upload", json=answer("clevertap/unauthorized.json"), status=401)
    with pytest.raises(ConnectorError) as caught:
        clevertap().send(Batch("add", rows(1)))
    assert caught.value.policy == Policy.AUTH and "Account ID is not valid" in caught.value.message


def test_clevertap_payload_identity_object_id_and_partner_sync_event():
    body = clevertap().build_request(Batch("remove", rows(2, "remove"))).json["d"]
    assert body[0]["identity"] == "u0" and "objectId" not in body[0]
    assert body[2]["objectId"] == "d1" and "identity" not in body[2]  # anonymous: device id as CleverTap ID
    assert body[0]["profileData"] == {"[Amplitude] Cart Drop off: 1638361188": False}
    assert body[1]["evtName"] == "Partner Sync" and body[1]["evtData"] == {
        "Partner Segment Name": "Cart Drop off",
        "Action": "Removed",
        "Partner Segment ID": "1638361188",
        "Source": "Amplitude",
        "Partner Name": "Amplitude",
    }
    assert isinstance(body[1]["ts"], int) and body[1]["ts"] < 10**11  # epoch seconds


def test_clevertap_regions_and_record_cap():
    from integrations.connectors.clevertap import region_base_url

    assert region_base_url("") == region_base_url("eu1") == "https://api.clevertap.com"
    assert region_base_url("sk1") == "https://sk1.api.clevertap.com"
    with pytest.raises(ConnectorError):
        region_base_url("mars1")
    assert clevertap().records_per_request() == 500  # 1,000 records = 500 members (profile + event)
    assert clevertap(send_partner_sync_event=False).records_per_request() == 1000
    with pytest.raises(Exception) as caught:
        CleverTapConnector.validate_config({"send_profile": False, "send_partner_sync_event": False})
    assert "send_profile" in caught.value.detail


@responses.activate
@pytest.mark.parametrize(
    ("fixture", "status", "policy"),
    [("kahuna/auth_failed.json", 401, Policy.AUTH), ("kahuna/user_not_found.json", 404, Policy.PERMANENT)],
)
def test_kahuna_error_bodies_become_readable_messages(fixture, status, policy):
    responses.post("https://kahuna.test/api/userattributes", json=answer(fixture), status=status)
    config = KahunaConnector.validate_config({"base_url": "https://kahuna.test"})
    connector = KahunaConnector(config, {"secret_key": "s", "api_key": "a"}, segment=SEGMENT)
    with pytest.raises(ConnectorError) as caught:
        connector.send(Batch("add", rows(1)))
    assert caught.value.policy == policy
    assert answer(fixture)["error"] in caught.value.message and f"error_code {status}" in caught.value.message


def test_kahuna_credential_sync_targets():
    config = KahunaConnector.validate_config({"user_credential": "fb_id"})
    connector = KahunaConnector(config, {}, segment=SEGMENT)
    items = connector.build_request(Batch("add", rows(2))).json["user_attributes_array"]
    assert items[0]["target"] == {"install_token": "d0", "fbid": "u0"}  # known: install token + credential
    assert items[1]["target"] == {"install_token": "d1"}  # anonymous: install token only
    assert items[0]["attributes"] == {"amplitude_cohort_1638361188": "true"}


@responses.activate
def test_kochava_success_one_and_device_not_found_hold():
    config = KochavaConnector.validate_config(
        {
            "base_url": "https://ko.test",
            "app_guid": "koapp",
            "event_types": ["Purchase"],
            "mapping": {"kochava_device_id": "device_id", "origination_ip": "ip_address", "idfa": "data.idfa"},
        }
    )
    connector = KochavaConnector(config, {}, segment=SEGMENT)
    responses.post("https://ko.test/track/json", json=answer("kochava/success.json"))
    responses.post("https://ko.test/track/json", json=answer("kochava/device_not_found.json"))
    assert connector.send(Batch("add", rows(1))) == []
    held = connector.send(Batch("add", rows(1)))
    assert [(r.seq, r.code) for r in held] == [(100, HELD_BACK)]


def test_kochava_mapping_is_refused_with_a_message_per_field():
    from rest_framework.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        KochavaConnector.validate_config({"app_guid": "x", "event_types": ["Purchase"], "mapping": {"adid": ""}})
    errors = caught.value.detail["mapping"]
    assert set(errors) == {"kochava_device_id", "origination_ip"}
    with pytest.raises(ValidationError) as caught:
        KochavaConnector.validate_config(
            {
                "app_guid": "x",
                "event_types": ["Purchase"],
                "mapping": {"kochava_device_id": "device_id", "origination_ip": "ip_address"},
            }
        )
    assert set(caught.value.detail["mapping"]) == {"idfa", "idfv", "adid", "android_id"}
    with pytest.raises(ValidationError) as caught:
        KochavaConnector.validate_config(
            {
                "app_guid": "x",
                "mapping": {"kochava_device_id": "device_id", "origination_ip": "ip_address", "adid": "device_id"},
            }
        )
    assert "event_types" in caught.value.detail
