"""Each connector says where a sync's data landed at its partner and how to use it there (the sync
page shows it after a run; no page names a partner)."""

import pytest

from integrations.connectors.base import Arrival, SegmentInfo
from integrations.connectors.registry import CONNECTORS, connector_class

SEGMENT = SegmentInfo(7, "Power users", "c-26", "Amplitude")


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_every_partner_describes_where_the_data_landed(kind):
    arrival = connector_class(kind).describe_arrival({}, SEGMENT, partner_state={}, auth_fields={})
    assert isinstance(arrival, Arrival)
    assert "Power users" in arrival.where and arrival.how
    assert not arrival.dashboard_url or arrival.dashboard_url.startswith("https://")


def test_clevertap_names_the_property_and_the_partner_sync_event_and_its_region():
    cls = connector_class("clevertap")
    arrival = cls.describe_arrival({"region": "in1"}, SEGMENT, partner_state={}, auth_fields={})
    names = dict(arrival.names)
    assert names["Profile property"] == "[Amplitude] Power users: c-26"
    assert names["Event"] == "Partner Sync" and names["Event property “Partner Segment Name”"] == "Power users"
    assert arrival.dashboard_url == "https://in1.dashboard.clevertap.com/"
    own = cls.describe_arrival(
        {"region": "us1", "membership_property": "vip", "send_partner_sync_event": False},
        SEGMENT,
        partner_state={},
        auth_fields={},
    )
    assert dict(own.names) == {"Profile property": "vip"} and "Partner Sync" not in own.where
    assert own.dashboard_url == "https://us1.dashboard.clevertap.com/"
    odd = cls.describe_arrival({"region": "evil.example/"}, SEGMENT, partner_state={}, auth_fields={})
    assert odd.dashboard_url == "https://eu1.dashboard.clevertap.com/"  # never a host built from input


def test_kahuna_names_the_attribute_to_target_a_campaign_on():
    arrival = connector_class("kahuna").describe_arrival(
        {"environment": "s"}, SEGMENT, partner_state={}, auth_fields={}
    )
    assert dict(arrival.names)["User attribute"] == "amplitude_cohort_c-26"
    assert "Staging" in arrival.where and any("campaign" in step for step in arrival.how)


def test_kochava_names_the_identity_link_and_the_streamed_events():
    arrival = connector_class("kochava").describe_arrival(
        {"event_types": ["Purchase", "Signup"]}, SEGMENT, partner_state={}, auth_fields={"app_guid": "kochava-app"}
    )
    names = dict(arrival.names)
    assert names["IdentityLink of the segment"] == "Amplitude cohort Power users (c-26)"
    assert names["Post-install events"] == "Purchase, Signup" and "kochava-app" in arrival.where


def test_list_api_names_the_list_it_created():
    arrival = connector_class("list_api").describe_arrival({}, SEGMENT, partner_state={"list_id": 42}, auth_fields={})
    assert dict(arrival.names) == {"List": "[Amplitude] Power users: c-26", "List id": "42"}
